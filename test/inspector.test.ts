import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  createServer,
  get,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from 'node:http';
import { type AddressInfo, connect as netConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { deflateRawSync, gzipSync, constants as zlibConstants } from 'node:zlib';
import fc from 'fast-check';
import { WebSocket, WebSocketServer } from 'ws';
import { packOutgoing, packPairs, packRawHeaders, unpackHeaders } from '../src/agent/traffic-observer.js';
import { CaptureStore } from '../src/inspector/capture-store.js';
import { type Inspector, startInspector } from '../src/inspector/inspector-server.js';
import { type ObservedMessage, WebSocketFrameReader } from '../src/inspector/websocket-frames.js';
import { connect } from '../src/transport/connect.js';
import { localhostLookup } from '../src/transport/localhost-lookup.js';
import { curl, curlResponse } from './helpers/curl.js';
import { startTcpEcho } from './helpers/echo.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startCli } from './helpers/processes.js';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

/** One WebSocket frame as RFC 6455 §5.2 lays it out. */
function frame(opcode: number, payload: Buffer, options: { fin?: boolean; mask?: Buffer } = {}): Buffer {
  const fin = options.fin ?? true;
  const length = payload.length;
  const lengthBytes =
    length < 126
      ? Buffer.from([length])
      : length < 65_536
        ? Buffer.from([126, length >> 8, length & 0xff])
        : Buffer.concat([
            Buffer.from([127]),
            Buffer.from(new BigUint64Array([BigInt(length)]).buffer).reverse(),
          ]);
  if (options.mask !== undefined) lengthBytes[0] = (lengthBytes[0] as number) | 0x80;
  const body = Buffer.from(payload);
  if (options.mask !== undefined)
    for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (options.mask[i & 3] as number);
  return Buffer.concat([
    Buffer.from([(fin ? 0x80 : 0) | opcode]),
    lengthBytes,
    options.mask ?? Buffer.alloc(0),
    body,
  ]);
}

describe('WebSocket frames as the inspector reads them', () => {
  test('any messages, fragmented, masked or not, with pings between fragments, split anywhere: read back whole', () => {
    const message = fc.record({
      binary: fc.boolean(),
      payload: fc.uint8Array({ maxLength: 70_000 }).map((a) => Buffer.from(a)),
      fragments: fc.integer({ min: 1, max: 4 }),
      ping: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(message, { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        fc.array(fc.integer({ min: 1, max: 9_000 }), { minLength: 1, maxLength: 40 }),
        (messages, masked, cuts) => {
          const mask = masked ? Buffer.from([1, 2, 3, 4]) : undefined;
          const expected: Pick<ObservedMessage, 'type' | 'size'>[] = [];
          const frames: Buffer[] = [];
          for (const m of messages) {
            const step = Math.ceil(m.payload.length / m.fragments) || 1;
            const pieces: Buffer[] = [];
            for (let at = 0; at < m.payload.length || pieces.length === 0; at += step)
              pieces.push(m.payload.subarray(at, at + step));
            pieces.forEach((piece, i) => {
              const opcode = i === 0 ? (m.binary ? 2 : 1) : 0;
              // A ping between the fragments of a message (or before a message of one frame).
              const ping = m.ping && i === 0;
              if (ping && pieces.length === 1) frames.push(frame(9, Buffer.from('p'), mask ? { mask } : {}));
              frames.push(frame(opcode, piece, { fin: i === pieces.length - 1, ...(mask ? { mask } : {}) }));
              if (ping && pieces.length > 1) frames.push(frame(9, Buffer.from('p'), mask ? { mask } : {}));
              if (ping) expected.push({ type: 'ping', size: 1 });
            });
            expected.push({ type: m.binary ? 'binary' : 'text', size: m.payload.length });
          }
          const bytes = Buffer.concat(frames);
          const seen: ObservedMessage[] = [];
          const reader = new WebSocketFrameReader(1024, (m) => seen.push(m));
          let at = 0;
          for (let i = 0; at < bytes.length; i++) {
            const size = cuts[i % cuts.length] as number;
            reader.push(bytes.subarray(at, at + size));
            at += size;
          }
          assert.equal(reader.broken, undefined);
          assert.deepEqual(
            seen.map(({ type, size }) => ({ type, size })),
            expected,
          );
          const dataMessages = seen.filter((m) => m.type !== 'ping');
          dataMessages.forEach((m, i) => {
            const payload = messages[i]?.payload as Buffer;
            assert.deepEqual(m.data, payload.subarray(0, 1024), 'kept bytes are the unmasked start');
            assert.equal(m.truncated, payload.length > 1024);
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  test('bytes that are not WebSocket framing stop the reader with a reason, never throw', () => {
    const cases: [Buffer, RegExp][] = [
      [frame(3, Buffer.from('x')), /reserved data opcode 3/],
      [frame(0, Buffer.from('x')), /continuation frame with no message/],
      [frame(9, Buffer.alloc(200)), /oversize control frame/],
      [
        Buffer.concat([frame(1, Buffer.from('a'), { fin: false }), frame(1, Buffer.from('b'))]),
        /new message/,
      ],
    ];
    for (const [bytes, reason] of cases) {
      const reader = new WebSocketFrameReader(64, () => {});
      reader.push(bytes);
      reader.push(Buffer.from('more after it'));
      assert.match(reader.broken ?? '', reason);
    }
  });
});

describe('the capture store keeps within its limits', () => {
  const exchange = (path: string) => ({
    kind: 'http' as const,
    service: 'web',
    method: 'POST',
    path,
    headers: packPairs([['host', 'x']]),
    visitor: undefined,
  });

  test('the oldest entries go past the entry limit; bodies past the cap are counted, not kept', () => {
    const store = new CaptureStore({ entries: 3, bodyBytes: 10 });
    for (let i = 1; i <= 5; i++) {
      const record = store.open(exchange(`/${i}`));
      record.fromVisitor(Buffer.alloc(25, 'a'));
      record.response(200, '');
      record.end();
    }
    assert.deepEqual(
      store.list().map((c) => c.path),
      ['/5', '/4', '/3'],
    );
    const last = store.get('5');
    assert.equal(last?.request.size, 25);
    assert.equal(last?.request.kept, 10);
    assert.equal(last?.request.truncated, true);
  });

  test('over thousands of exchanges, some dropped from the middle for room, the oldest still go first', () => {
    const store = new CaptureStore({ entries: 50, bodyBytes: 64 << 10, totalBytes: 256 << 10 });
    // Open throughout: room is never made by dropping it, so budget evictions drop from behind it.
    const held = store.open(exchange('/held'));
    for (let i = 1; i <= 5_000; i++) {
      const record = store.open(exchange(`/${i}`));
      if (i % 7 === 0) record.toVisitor(Buffer.alloc(60 << 10));
      record.end();
      assert.ok(store.keptBytes <= 256 << 10, `kept ${store.keptBytes} bytes`);
    }
    const paths = store.list().map((c) => c.path);
    assert.equal(paths[0], '/5000', 'newest first');
    assert.equal(paths.at(-1), '/held', 'the open exchange was kept');
    const numbers = paths.slice(0, -1).map((path) => Number(path.slice(1)));
    assert.deepEqual(
      numbers,
      [...numbers].sort((a, b) => b - a),
      'the rest in order',
    );
    assert.equal(store.get('2'), undefined);
    // Past the entry limit the oldest goes whatever its state: the held exchange first.
    for (let i = 0; i < 50; i++) store.open(exchange(`/late-${i}`)).end();
    assert.equal(store.get(held.id), undefined);
    assert.deepEqual(
      store.list().map((c) => c.path),
      Array.from({ length: 50 }, (_, i) => `/late-${49 - i}`),
    );
  });

  test('exchanges dropped for room behind an open one are freed, not kept by the store', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const store = new CaptureStore({ entries: 50, bodyBytes: 64 << 10, totalBytes: 256 << 10 });
    store.open(exchange('/websocket, open throughout'));
    const dropped: WeakRef<object>[] = [];
    for (let i = 0; i < 3_000; i++) {
      const record = store.open(exchange(`/${i}`));
      dropped.push(new WeakRef(store.get(record.id) as object));
      record.toVisitor(Buffer.alloc(60 << 10));
      record.end();
    }
    assert.ok(store.list().length < 10, 'the byte budget, not the entry limit, dropped them');
    for (let i = 0; i < 3; i++) {
      gc();
      await delay(10);
    }
    const alive = dropped.filter((ref) => ref.deref() !== undefined).length;
    assert.ok(alive < 50, `${alive} of 3 000 dropped captures (60 KiB bodies) still in memory`);
  });

  test('past the byte budget the oldest finished exchanges go; a record whose capture went writes nowhere', () => {
    const store = new CaptureStore({ entries: 1000, bodyBytes: 64 << 10, totalBytes: 256 << 10 });
    for (let i = 0; i < 40; i++) {
      const record = store.open(exchange(`/${i}`));
      record.fromVisitor(Buffer.alloc(32 << 10));
      record.end();
      assert.ok(store.keptBytes <= (256 << 10) + 1000, `kept ${store.keptBytes} bytes`);
    }
    assert.equal(store.get('1'), undefined, 'the first exchange was evicted');
    assert.equal(store.get('40')?.request.kept, 32 << 10, 'the newest kept its body');
    const few = new CaptureStore({ entries: 3 });
    const first = few.open(exchange('/first'));
    for (let i = 0; i < 3; i++) few.open(exchange(`/${i}`));
    assert.equal(few.get('1'), undefined, 'the first exchange was evicted by the entry limit');
    const before = few.keptBytes;
    first.fromVisitor(Buffer.alloc(32 << 10));
    first.response(200, packPairs([['x', 'y'.repeat(1000)]]));
    first.end();
    assert.equal(few.keptBytes, before);
  });

  test('header lists come back exactly as given: order, case, repeats, colons and empty values', () => {
    const name = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}$/);
    // Field values: visible characters, spaces and tabs, never CR or LF.
    const value = fc.stringMatching(/^[\t\x20-\x7e]{0,40}$/);
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 30 }), (pairs) => {
        const store = new CaptureStore();
        const record = store.open({ ...exchange('/'), headers: packPairs(pairs) });
        record.response(200, packPairs([...pairs].reverse()));
        const capture = store.get(record.id);
        assert.deepEqual(capture?.requestHeaders, pairs);
        assert.deepEqual(capture?.responseHeaders, [...pairs].reverse());
      }),
    );
    assert.deepEqual(
      unpackHeaders(
        packPairs([
          ['X-A', ': b: c'],
          ['x-a', ''],
          ['Set-Cookie', 'a=1'],
        ]),
      ),
      [
        ['X-A', ': b: c'],
        ['x-a', ''],
        ['Set-Cookie', 'a=1'],
      ],
    );
    assert.equal(packRawHeaders(['Host', 'x', 'X-A', '', 'X-A', 'b']), 'Host: x\r\nX-A: \r\nX-A: b\r\n');
    assert.deepEqual(unpackHeaders(packOutgoing({ a: '1', b: ['x', 'y'], c: 3, d: undefined })), [
      ['a', '1'],
      ['b', 'x'],
      ['b', 'y'],
      ['c', '3'],
    ]);
  });

  test('open exchanges do not evict each other: past the budget their bodies are kept as far as it allows', () => {
    const store = new CaptureStore({ entries: 1000, bodyBytes: 64 << 10, totalBytes: 256 << 10 });
    const open = Array.from({ length: 8 }, (_, i) => store.open(exchange(`/open-${i}`)));
    for (const record of open) record.toVisitor(Buffer.alloc(64 << 10));
    assert.ok(store.keptBytes <= 256 << 10, `kept ${store.keptBytes} bytes`);
    assert.equal(store.list().length, 8, 'every open exchange is still listed');
    const bodies = store.list().map((c) => c.response);
    assert.equal(bodies.at(-1)?.kept, 64 << 10, 'the first body was kept whole');
    assert.equal(bodies[0]?.kept, 0, 'the last found no room');
    assert.equal(bodies[0]?.truncated, true);
    for (const record of open) record.end();
    const late = store.open(exchange('/late'));
    late.toVisitor(Buffer.alloc(64 << 10));
    assert.equal(
      store.get(String(store.list()[0]?.id))?.response.kept,
      64 << 10,
      'a finished exchange made room',
    );
    assert.equal(store.list().length, 8, 'one finished exchange went for it');
  });
});

describe('the inspector API', () => {
  let origin: Origin;
  let tunnel: Tunnel;
  let store: CaptureStore;
  let inspector: Inspector;
  const api = (path: string) => `${inspector.url}${path}`;
  const latest = () => store.list()[0];

  before(async () => {
    origin = await startOrigin();
    const [handle] = origin.server.listeners('request') as ((...args: unknown[]) => void)[];
    origin.server.removeAllListeners('request');
    origin.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url !== '/gzip') return handle?.(req, res);
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(gzipSync(JSON.stringify({ zipped: true })));
      req.resume();
    });
    store = new CaptureStore({ bodyBytes: 1024 });
    tunnel = await startTunnel(origin.url, { agent: { observer: store } });
    inspector = await startInspector({
      store,
      replay: (request) => tunnel.agent.replay(request),
      listen: '127.0.0.1:0',
    });
  });
  after(async () => {
    await inspector.close();
    await tunnel.close();
    await origin.close();
  });

  test('a body over the cap is marked truncated; replaying it as is is refused, with a new body it goes', async () => {
    const big = 'b'.repeat(4096);
    const res = await curlResponse(['--data-binary', big, `${tunnel.service.url}echo`]);
    assert.equal(res.status, 200);
    await until(() => latest()?.state === 'done', 'the capture to end');
    const id = latest()?.id as string;
    const detail = JSON.parse((await curl([api(`/api/requests/${id}`)])).stdout);
    assert.deepEqual(
      [detail.requestBody.size, detail.requestBody.kept, detail.requestBody.truncated],
      [4096, 1024, true],
    );
    const replay = (body: string) =>
      curlResponse([
        '-X',
        'POST',
        '-H',
        'content-type: application/json',
        '--data',
        body,
        api(`/api/requests/${id}/replay`),
      ]);
    const refused = await replay('{}');
    assert.equal(refused.status, 409);
    assert.match(refused.body, /kept only in part \(1024 of 4096 bytes\)/);
    const edited = await replay(JSON.stringify({ body: 'short' }));
    assert.equal(edited.status, 200);
    const answer = JSON.parse(edited.body);
    assert.equal(answer.status, 200);
    const echoed = JSON.parse(store.get(answer.id)?.response.bytes().toString() ?? '{}');
    assert.deepEqual(
      [echoed.size, echoed.headers['content-length']],
      [5, '5'],
      'the new body, its length set anew',
    );
    assert.equal(store.get(answer.id)?.replayOf, id);
  });

  test('a gzip body is shown decoded; search finds text inside it', async () => {
    await curl([`${tunnel.service.url}gzip`]);
    await until(() => latest()?.path === '/gzip' && latest()?.state === 'done', 'the gzip capture');
    const id = latest()?.id as string;
    const detail = JSON.parse((await curl([api(`/api/requests/${id}`)])).stdout);
    assert.equal(detail.responseBody.decodedFrom, 'gzip');
    assert.equal(detail.responseBody.text, '{"zipped":true}');
    const found = JSON.parse((await curl([api('/api/requests?q=ZIPPED')])).stdout);
    assert.deepEqual(
      found.captures.map((c: { id: string }) => c.id),
      [id],
    );
  });

  test('a TCP connection is listed with its byte counts', async () => {
    const echo = await startTcpEcho();
    const tcp = await startTunnel(echo.target, { agent: { observer: store } });
    try {
      const socket = await connect(`tcp://${tcp.service.label}.localhost:${tcp.port}?http_preflight=true`);
      socket.write('x'.repeat(1000));
      let got = 0;
      for await (const chunk of socket) {
        got += (chunk as Buffer).length;
        if (got >= 1000) break;
      }
      socket.destroy();
      await until(() => latest()?.kind === 'tcp' && latest()?.state !== 'open', 'the TCP capture to end');
      const list = JSON.parse((await curl([api('/api/requests?kind=tcp')])).stdout);
      assert.equal(list.captures[0].bytesIn, 1000);
      assert.equal(list.captures[0].bytesOut, 1000);
      assert.equal(list.captures[0].status, 101);
    } finally {
      await tcp.close();
      await echo.close();
    }
  });

  test('live events carry each new capture', async () => {
    const events = await new Promise<import('node:http').IncomingMessage>((resolve, reject) =>
      get(api('/api/events'), resolve).on('error', reject),
    );
    let text = '';
    events.setEncoding('utf8');
    events.on('data', (chunk: string) => {
      text += chunk;
    });
    await curl([`${tunnel.service.url}live-event-path`]);
    await until(() => text.includes('"path":"/live-event-path"'), 'an event naming the new request');
    assert.match(text, /event: capture\ndata: \{/);
    events.destroy();
  });

  test('another site cannot read or change captures: wrong Host 421, no JSON or foreign Origin 403', async () => {
    const port = new URL(inspector.url).port;
    const rebinding = await curlResponse(['-H', `Host: attacker.example:${port}`, api('/api/requests')]);
    assert.equal(rebinding.status, 421);
    const id = latest()?.id as string;
    const form = await curlResponse(['-X', 'POST', '--data', 'x=1', api(`/api/requests/${id}/replay`)]);
    assert.equal(form.status, 403);
    assert.match(form.body, /Content-Type: application\/json/);
    const foreign = await curlResponse([
      '-X',
      'POST',
      '-H',
      'content-type: application/json',
      '-H',
      'Origin: http://attacker.example',
      '--data',
      '{}',
      api(`/api/requests/${id}/replay`),
    ]);
    assert.equal(foreign.status, 403);
    const page = await curlResponse([api('/')]);
    assert.match(page.headers['content-security-policy'] ?? '', /script-src 'self'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
  });

  test('bad replays get a clear status: unknown id 404, bad edits 400, an unreachable target 502', async () => {
    const post = (path: string, body: string) =>
      curlResponse(['-X', 'POST', '-H', 'content-type: application/json', '--data', body, api(path)]);
    assert.equal((await post('/api/requests/99999/replay', '{}')).status, 404);
    await curl([`${tunnel.service.url}plain`]);
    await until(() => latest()?.path === '/plain' && latest()?.state === 'done', 'the capture');
    const id = latest()?.id as string;
    const cases: [string, RegExp][] = [
      ['[1]', /must be a JSON object/],
      ['{"method":"GE T"}', /method must be/],
      ['{"path":"no-slash"}', /path must start with/],
      ['{"headers":[["X","a\\r\\nb"]]}', /may not hold CR, LF or NUL/],
      ['{"verb":"GET"}', /unknown edit "verb"/],
      ['not json', /not JSON/],
    ];
    for (const [body, message] of cases) {
      const res = await post(`/api/requests/${id}/replay`, body);
      assert.equal(res.status, 400, body);
      assert.match(JSON.parse(res.body).error, message);
    }
    await origin.close();
    try {
      const down = await post(`/api/requests/${id}/replay`, '{}');
      assert.equal(down.status, 502);
      assert.match(JSON.parse(down.body).error, /replay to http:\/\/127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/);
    } finally {
      origin = await startOriginOn(origin.port);
    }
  });
});

/** A fresh origin on the port of one that was closed (the tunnel's target stays the same). */
async function startOriginOn(port: number): Promise<Origin> {
  const next = await startOrigin();
  await next.close();
  next.server.listen(port, '127.0.0.1');
  await once(next.server, 'listening');
  return { ...next, port, url: `http://127.0.0.1:${(next.server.address() as AddressInfo).port}` };
}

describe('postern replay and the expose inspector flags', () => {
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(async () => origin.close());

  test('postern replay <id> sends a capture again, with --header and --body edits; errors are one line', async () => {
    const cli = startCli(['expose', origin.url, '--json', '--inspect', '127.0.0.1:0']);
    try {
      const ready = await cli.nextEvent((e) => e.event === 'ready');
      const address = String(ready.inspector).replace('http://', '');
      const url = (ready.services as { url: string }[])[0]?.url as string;
      assert.equal((await curlResponse(['--data', 'first', `${url}echo`])).status, 200);
      const replay = startCli([
        'replay',
        '1',
        '--inspect',
        address,
        '--json',
        '--header',
        'X-Edited: yes',
        '--body',
        'second',
      ]);
      const line = await replay.nextEvent(() => true);
      assert.deepEqual(line, { event: 'replayed', replayOf: '1', id: '2', status: 200 });
      assert.equal(await replay.exited, 0);
      const detail = await new Promise<Record<string, unknown>>((resolve, reject) => {
        request(`http://${address}/api/requests/2`, (res) => {
          let body = '';
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () => resolve(JSON.parse(body)));
        })
          .on('error', reject)
          .end();
      });
      const echoed = JSON.parse((detail.responseBody as { text: string }).text);
      assert.equal(echoed.headers['x-edited'], 'yes');
      assert.equal(echoed.method, 'POST');

      const missing = startCli(['replay', '77', '--inspect', address]);
      assert.equal(await missing.exited, 1);
      assert.equal(
        missing.stderr(),
        'postern replay: the inspector refused: no capture 77 (it may have been dropped)\n',
      );
    } finally {
      await cli.stop();
    }
    const nobody = startCli(['replay', '1', '--inspect', '127.0.0.1:1']);
    assert.equal(await nobody.exited, 1);
    assert.match(
      nobody.stderr(),
      /^postern replay: no inspector at 127\.0\.0\.1:1 \(ECONNREFUSED\); is postern expose running there\?.*\n$/,
    );
    const bad = startCli(['replay', 'abc']);
    assert.equal(await bad.exited, 2);
    assert.match(bad.stderr(), /^postern replay: replay takes one capture id/);
  });

  test('--no-inspect: no inspector and no inspector field; a taken --inspect address is a one-line error', async () => {
    const quiet = startCli(['expose', origin.url, '--json', '--no-inspect']);
    try {
      const ready = await quiet.nextEvent((e) => e.event === 'ready');
      assert.equal(ready.inspector, undefined);
    } finally {
      await quiet.stop();
    }
    const first = startCli(['expose', origin.url, '--json', '--inspect', '127.0.0.1:0']);
    try {
      const ready = await first.nextEvent((e) => e.event === 'ready');
      const taken = String(ready.inspector).replace('http://', '');
      const second = startCli(['expose', origin.url, '--json', '--inspect', taken]);
      assert.equal(await second.exited, 1);
      assert.equal(
        second.stderr(),
        `postern expose: the inspector cannot listen on ${taken}: port ${taken.split(':').pop()} is in use; choose another with --inspect or use --no-inspect\n`,
      );
    } finally {
      await first.stop();
    }
  });
});

describe('permessage-deflate WebSocket messages in the inspector', () => {
  let server: Server;
  let store: CaptureStore;
  let tunnel: Tunnel;

  before(async () => {
    // Two echo endpoints: /takeover keeps each side's window from message to message (what browsers
    // and ws do by default); /reset makes both sides start every message afresh.
    const takeover = new WebSocketServer({ noServer: true, perMessageDeflate: { threshold: 0 } });
    const reset = new WebSocketServer({
      noServer: true,
      perMessageDeflate: { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true },
    });
    for (const wss of [takeover, reset])
      wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
    server = createServer((_req, res) => res.end('ok'));
    server.on('upgrade', (req, socket, head) => {
      const wss = req.url === '/reset' ? reset : takeover;
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    store = new CaptureStore();
    tunnel = await startTunnel(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, {
      agent: { observer: store },
    });
  });
  after(async () => {
    await tunnel?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  /** Sends each message, waits for its echo, closes; returns the capture once every message is in. */
  async function converse(path: string, messages: (string | Buffer)[]) {
    const ws = new WebSocket(`ws://${tunnel.service.label}.localhost:${tunnel.port}${path}`, {
      lookup: localhostLookup,
      perMessageDeflate: { threshold: 0 },
    });
    await once(ws, 'open');
    assert.match(String(ws.extensions), /permessage-deflate/, 'compression was agreed');
    for (const message of messages) {
      ws.send(message);
      const [echo] = await once(ws, 'message');
      assert.equal(Buffer.compare(Buffer.from(echo as Buffer), Buffer.from(message)), 0);
    }
    ws.close(1000);
    await once(ws, 'close');
    const capture = store.list().find((c) => c.path === path) as NonNullable<ReturnType<CaptureStore['get']>>;
    const settled = () =>
      capture.messages.filter(
        (m) => m.compressed && m.inflatedSize === undefined && m.inflateNote === undefined,
      );
    await until(
      () =>
        capture.messages.filter((m) => m.type !== 'close').length === 2 * messages.length &&
        settled().length === 0,
      'every message captured and inflated',
    );
    return capture;
  }

  test('with context takeover, every message both ways is shown and searched as sent before compression', async () => {
    const texts = ['hello inspector', 'hello inspector, again', 'hello inspector, again and again', 'é ✓ 😀'];
    const capture = await converse('/takeover', texts);
    const data = capture.messages.filter((m) => m.type === 'text');
    assert.ok(
      data.every((m) => m.compressed),
      'every message was sent compressed',
    );
    assert.deepEqual(
      data.map((m) => [m.direction, m.data.toString()]),
      texts.flatMap((t) => [
        ['in', t],
        ['out', t],
      ]),
    );
    assert.ok(
      data.some((m) => m.size < (m.inflatedSize as number) / 2),
      'later messages refer back to earlier ones (that is what the window is for)',
    );
    const inspector = await startInspector({
      store,
      replay: () => Promise.reject(new Error('no')),
      listen: '127.0.0.1:0',
    });
    try {
      const detail = JSON.parse((await curl([`${inspector.url}/api/requests/${capture.id}`])).stdout);
      const third = detail.messageList[4];
      assert.deepEqual(
        [third.type, third.compressed, third.text, third.inflatedSize, third.inflateNote],
        ['text', true, 'hello inspector, again and again', 32, null],
      );
      assert.ok(third.size < 32, `${third.size} bytes on the wire`);
      const found = JSON.parse((await curl([`${inspector.url}/api/requests?q=AGAIN+AND`])).stdout);
      assert.deepEqual(
        found.captures.map((c: { id: string }) => c.id),
        [capture.id],
      );
    } finally {
      await inspector.close();
    }
  });

  test('a message that inflates past 1 MiB is shown as sent, and so is every later one of that side (they may refer to it)', async () => {
    const bomb = 'x'.repeat(2 << 20);
    const capture = await converse('/takeover', ['before', bomb, 'after']);
    const side = (direction: string) =>
      capture.messages.filter((m) => m.type === 'text' && m.direction === direction);
    for (const direction of ['in', 'out']) {
      const [before, big, later] = side(direction);
      assert.equal(before?.data.toString(), 'before');
      assert.match(String(big?.inflateNote), /^not decoded: inflates to more than 1024 KiB$/);
      assert.ok((big?.data.length as number) < 64 << 10, 'the compressed payload kept, not 2 MiB');
      assert.match(String(later?.inflateNote), /earlier message that was not decoded/);
      assert.notEqual(later?.data.toString(), 'after');
    }
  });

  test('a burst of compressed messages past the backlog is listed as sent, not queued without end', async () => {
    const socket = netConnect(tunnel.port, '127.0.0.1');
    socket.write(
      `GET /reset HTTP/1.1\r\nHost: ${tunnel.service.label}.localhost:${tunnel.port}\r\nUpgrade: websocket\r\n` +
        'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
        'Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n\r\n',
    );
    const [answer] = await once(socket, 'data');
    assert.match(String(answer), /^HTTP\/1\.1 101 /);
    // 400 masked frames of ~120 bytes, each inflating to 100 KiB: cheap to send, costly to inflate.
    const payload = deflateRawSync(Buffer.alloc(100 << 10, 'z'), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    const compressed = payload.subarray(0, payload.length - 4);
    const frame = Buffer.concat([Buffer.from([0xc1, 0x80 | compressed.length, 0, 0, 0, 0]), compressed]);
    const burst = 400;
    socket.write(Buffer.concat(Array.from({ length: burst }, () => frame)));
    const capture = store.list().find((c) => c.path === '/reset' && c.state === 'open');
    assert.ok(capture);
    await until(
      () =>
        capture.messageCount === 2 * burst &&
        capture.messages.every((m) => m.inflatedSize !== undefined || m.inflateNote !== undefined),
      'every message and its echo listed and settled',
    );
    const sent = capture.messages.filter((m) => m.direction === 'in');
    const decoded = sent.filter((m) => m.inflatedSize === 100 << 10).length;
    const behind = sent.filter(
      (m) => m.inflateNote === 'not decoded: the inspector fell behind decoding',
    ).length;
    assert.equal(decoded + behind, burst);
    assert.ok(decoded >= 64 && behind > 0, `${decoded} decoded, ${behind} shown as sent`);
    socket.destroy();
    // The inspector caught up: the next connection's messages decode again.
    const next = await converse('/reset', ['caught up']);
    assert.deepEqual(
      next.messages.filter((m) => m.type === 'text').map((m) => m.data.toString()),
      ['caught up', 'caught up'],
    );
  });

  test('without context takeover, a message that cannot be decoded costs only itself', async () => {
    const capture = await converse('/reset', ['before', 'y'.repeat(2 << 20), 'after', 'after again']);
    for (const direction of ['in', 'out']) {
      const shown = capture.messages
        .filter((m) => m.type === 'text' && m.direction === direction)
        .map((m) => m.inflateNote ?? m.data.toString());
      assert.deepEqual(shown, [
        'before',
        'not decoded: inflates to more than 1024 KiB',
        'after',
        'after again',
      ]);
    }
  });
});
