import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CaptureStore } from '../src/inspector/capture-store.js';
import { curl, curlResponse } from './helpers/curl.js';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

/**
 * The agent's own HTTP/1.1 client (src/agent/pooled-request.ts) against a target that writes
 * its responses byte by byte as each test scripts them: odd but valid answers pass whole, broken
 * ones get the visitor a 502 or a cut transfer, and no connection that carried one is reused.
 */
describe('what a target answers, as the agent reads it', () => {
  let target: Server;
  let tunnel: Tunnel;
  const captures = new CaptureStore();
  /** Per request: the path, and which target connection (its number) carried it. */
  const seen: { path: string; connection: number; body: string }[] = [];
  /** Every request head the target received, body whole or not. */
  const arrived: string[] = [];
  const closed = new Set<number>();
  const open = new Map<number, Socket>();
  let connections = 0;
  const script: Record<string, (socket: Socket) => void> = {
    '/ok': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
    '/echo-size': (s) => {
      const body = seen.at(-1)?.body ?? '';
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${String(body.length).length}\r\n\r\n${body.length}`);
    },
    '/chunked': (s) => {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n');
      setTimeout(() => s.write('6\r\n world\r\n0\r\n\r\n'), 20);
    },
    '/until-close': (s) => s.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, then FIN'),
    '/close': (s) => s.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok'),
    '/short-keepalive': (s) =>
      s.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok'),
    '/head': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n'),
    '/extra': (s) =>
      s.write(
        'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforged',
      ),
    '/truncated': (s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n');
      s.end(Buffer.alloc(1000, 'x'));
    },
    '/cut-chunked': (s) => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel'),
    '/nothing': (s) => s.end(),
    // As a server whose idle timeout fires just as a request comes in on a kept-alive connection.
    '/closing': (s) => {
      if (seen.filter((one) => one.connection === seen.at(-1)?.connection).length > 1) s.destroy();
      else s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    },
    '/smuggle': (s) =>
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'),
    '/two-lengths': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk'),
    '/folded': (s) => s.write('HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 2\r\n\r\nok'),
    '/bad-chunk': (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnope\r\n'),
    '/huge-head': (s) =>
      s.write(`HTTP/1.1 200 OK\r\n${'X-Filler: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n'.repeat(600)}`),
    '/not-http': (s) => s.write('SSH-2.0-OpenSSH_9.6\r\n\r\n'),
  };

  before(async () => {
    target = createServer((socket) => {
      const connection = ++connections;
      open.set(connection, socket);
      socket.on('close', () => {
        closed.add(connection);
        open.delete(connection);
      });
      socket.on('error', () => {});
      let buffered = '';
      let announced = false;
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        for (let end = buffered.indexOf('\r\n\r\n'); end !== -1; end = buffered.indexOf('\r\n\r\n')) {
          const head = buffered.slice(0, end);
          // Requests here carry a body only with Content-Length; wait until it is whole.
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          if (!announced) arrived.push(head.split(' ')[1] ?? '');
          announced = true;
          if (buffered.length < end + 4 + length) return;
          announced = false;
          const body = buffered.slice(end + 4, end + 4 + length);
          buffered = buffered.slice(end + 4 + length);
          const path = head.split(' ')[1] ?? '';
          seen.push({ path, connection, body });
          const answer = script[path];
          if (answer === undefined) socket.write('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
          else answer(socket);
        }
      });
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    tunnel = await startTunnel(`http://127.0.0.1:${(target.address() as AddressInfo).port}`, {
      agent: { observer: captures },
    });
  });
  after(async () => {
    await tunnel.close();
    target.close();
  });
  const url = (path: string): string => `${tunnel.service.url.replace(/\/$/, '')}${path}`;
  const connectionOf = (path: string): number | undefined =>
    seen.findLast((s) => s.path === path)?.connection;

  test('a chunked body with extensions, in two writes, arrives whole', async () => {
    const res = await curlResponse([url('/chunked')]);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'hello world');
  });

  test('a small POST (Content-Length up to 64 KiB) goes out whole, head and body, on a pooled connection', async () => {
    await curlResponse([url('/ok')]);
    const pooled = connectionOf('/ok');
    const res = await curlResponse(['--data-binary', 'x'.repeat(5000), url('/echo-size')]);
    assert.equal(res.body, '5000');
    assert.equal(connectionOf('/echo-size'), pooled, 'the same connection as the GET before it');
    const capture = captures.list().find((c) => c.path === '/echo-size');
    assert.equal(capture?.request.size, 5000, 'the inspector saw the body');
    // One byte over the bound: streamed by http.request instead, still whole.
    const large = await curlResponse(['--data-binary', 'y'.repeat(64 * 1024 + 1), url('/echo-size')]);
    assert.equal(large.body, String(64 * 1024 + 1));
  });

  test('a visitor who leaves halfway through a small body: the target sees no request at all', async () => {
    const before = arrived.length;
    const visitor = connect(tunnel.port, '127.0.0.1');
    await once(visitor, 'connect');
    visitor.write(
      `POST /abandoned HTTP/1.1\r\nHost: ${new URL(tunnel.service.url).host}\r\nContent-Length: 60000\r\n\r\n${'z'.repeat(30000)}`,
    );
    await until(() => captures.list().some((c) => c.path === '/abandoned'), 'the agent to open the exchange');
    visitor.destroy();
    await until(
      () => captures.list().find((c) => c.path === '/abandoned')?.error !== undefined,
      'the exchange to end cut short',
    );
    // A request after it, on the same tunnel, is answered: the agent sent nothing for the cut one.
    assert.equal((await curlResponse([url('/ok')])).status, 200);
    assert.deepEqual(arrived.slice(before), ['/ok']);
  });

  test('a body that ends when the target closes arrives whole; that connection is not used again', async () => {
    const res = await curlResponse([url('/until-close')]);
    assert.equal(res.body, 'all of it, then FIN');
    assert.notEqual((await curlResponse([url('/ok')])).status, 502);
    assert.notEqual(connectionOf('/ok'), connectionOf('/until-close'));
  });

  test('keep-alive: the next request reuses the connection; after Connection: close it does not', async () => {
    await curlResponse([url('/ok')]);
    const first = connectionOf('/ok');
    await curlResponse([url('/ok')]);
    assert.equal(connectionOf('/ok'), first, 'reused');
    await curlResponse([url('/close')]);
    await until(() => closed.has(connectionOf('/close') ?? 0), 'the agent to close the connection');
    await curlResponse([url('/ok')]);
    assert.notEqual(connectionOf('/ok'), connectionOf('/close'));
  });

  test('a target announcing Keep-Alive: timeout=1 gets a fresh connection next time', async () => {
    await curlResponse([url('/short-keepalive')]);
    await curlResponse([url('/ok')]);
    assert.notEqual(connectionOf('/ok'), connectionOf('/short-keepalive'));
    await until(() => closed.has(connectionOf('/short-keepalive') ?? 0), 'the agent to close it');
  });

  test('a target that closes an idle connection: the next request takes a new one, no 502', async () => {
    await curlResponse([url('/ok')]);
    const idle = connectionOf('/ok') ?? 0;
    // The target's side of that connection closes it, as a server's idle timeout would.
    const socketCount = connections;
    open.get(idle)?.end();
    await until(() => closed.has(idle), 'the idle connection to close');
    const res = await curlResponse([url('/ok')]);
    assert.equal(res.status, 200);
    assert.ok(connections > socketCount, 'a new connection');
  });

  test('HEAD with a Content-Length: no body is awaited, and the connection is reused', async () => {
    const res = await curl(['-sS', '-I', url('/head')], { timeoutMs: 10_000 });
    assert.equal(res.exitCode, 0, res.stderr);
    assert.match(res.stdout, /content-length: 1000/i);
    const used = connectionOf('/head');
    await curlResponse([url('/ok')]);
    assert.equal(connectionOf('/ok'), used);
  });

  test('bytes after a response: the visitor gets only the response, the connection is closed', async () => {
    const res = await curlResponse([url('/extra')]);
    assert.equal(res.body, 'ok');
    await curlResponse([url('/ok')]);
    assert.notEqual(connectionOf('/ok'), connectionOf('/extra'));
    await until(() => closed.has(connectionOf('/extra') ?? 0), 'the agent to close the connection');
  });

  for (const path of ['/truncated', '/cut-chunked']) {
    test(`a body cut short (${path}) is a cut transfer for the visitor, never a clean end`, async () => {
      const res = await curl(['-o', '/dev/null', url(path)]);
      // 18: "transfer closed with outstanding read data remaining"; 56: connection reset.
      assert.ok([18, 56].includes(res.exitCode), `curl exit ${res.exitCode}: ${res.stderr}`);
    });
  }

  test('a reused connection closed before any answer: a GET is sent once more on a new one, a POST is not', async () => {
    await curlResponse([url('/ok')]);
    const before = arrived.length;
    const get = await curlResponse([url('/closing')]);
    assert.equal(get.status, 200, get.body);
    assert.deepEqual(
      arrived.slice(before),
      ['/closing', '/closing'],
      'sent twice, the second time on a new connection',
    );
    assert.equal(seen.filter((one) => one.path === '/closing').at(-1)?.connection, connections);
    await curlResponse([url('/ok')]);
    const beforePost = arrived.length;
    const post = await curlResponse(['--data-binary', 'once', url('/closing')]);
    assert.equal(post.status, 502);
    assert.match(post.body, /ECONNRESET|EPIPE/);
    assert.deepEqual(arrived.slice(beforePost), ['/closing'], 'a POST is never sent twice');
  });

  test('a target that closes without answering: 502 target_unreachable', async () => {
    const res = await curlResponse([url('/nothing')]);
    assert.equal(res.status, 502);
    assert.equal(res.headers['postern-error'], 'target_unreachable');
    assert.match(res.body, /could not reach http:\/\/127\.0\.0\.1:\d+ \(ECONNRESET\)/);
  });

  for (const [path, reason] of [
    ['/smuggle', /both Content-Length and Transfer-Encoding/],
    ['/two-lengths', /conflicting Content-Length/],
    ['/folded', /a folded header line/],
    ['/bad-chunk', /malformed chunk-size/],
    ['/huge-head', /response head over 16384 bytes/],
    ['/not-http', /not an HTTP\/1\.x status line: "SSH-2\.0/],
  ] as const) {
    test(`a malformed response (${path}) gets 502 saying what was wrong; its connection is closed`, async () => {
      const res = await curlResponse([url(path)]);
      if (path === '/bad-chunk') {
        // The head was fine and already passed on: the visitor sees a cut transfer instead (or,
        // when the reset overtakes the head, an empty reply), never a clean end.
        assert.notEqual(res.exitCode, 0);
      } else {
        assert.equal(res.status, 502);
        assert.equal(res.headers['postern-error'], 'target_unreachable');
        assert.match(res.body, /sent a response the agent cannot pass on/);
        assert.match(res.body, reason);
      }
      await until(() => closed.has(connectionOf(path) ?? 0), 'the agent to close the connection');
      const capture = captures.list().findLast((c) => c.path === path);
      assert.ok(capture !== undefined, 'the inspector saw the exchange');
    });
  }
});
