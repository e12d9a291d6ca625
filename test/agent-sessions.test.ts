import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { MuxSession } from '../src/mux/mux-session.js';
import type { MuxStream } from '../src/mux/mux-stream.js';
import type { AgentSession } from '../src/relay/agent-session.js';
import { createRelay } from '../src/relay/relay.js';
import { PROOF_ACCEPTED, signPossession } from '../src/session/possession-proof.js';
import { AGENT_PATH, Header, SESSION_UPGRADE_TOKEN } from '../src/session/protocol.js';
import { curl, curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { signedRegistration } from './helpers/registration.js';
import { startTcpForwarder } from './helpers/tcp-forwarder.js';
import { readyWithin, startTunnel } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

describe('agent sessions and targets', () => {
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(() => origin.close());

  test('a unix:// target: HTTP over a Unix socket', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'postern-unix-'));
    const socketPath = join(dir, 'app.sock');
    const app = createHttpServer((req, res) => res.end(`unix says ${req.url}`));
    await new Promise<void>((resolve) => app.listen(socketPath, resolve));
    const tunnel = await startTunnel(`unix://localhost:0?path=${socketPath}`);
    try {
      const res = await curlResponse([`${tunnel.service.url}hello`]);
      assert.equal(res.body, 'unix says /hello');
    } finally {
      await tunnel.close();
      app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('--host-header rewrite sends the target its own host:port; preserve (default) the visitor Host', async () => {
    const rewrite = await startTunnel(origin.url, {
      agent: { services: [{ target: origin.url, hostHeader: 'rewrite' }] },
    });
    const preserve = await startTunnel(origin.url);
    try {
      const rewritten = JSON.parse((await curlResponse([`${rewrite.service.url}echo`])).body);
      assert.equal(rewritten.headers.host, `127.0.0.1:${origin.port}`);
      const preserved = JSON.parse((await curlResponse([`${preserve.service.url}echo`])).body);
      assert.equal(preserved.headers.host, new URL(preserve.service.url).host);
    } finally {
      await rewrite.close();
      await preserve.close();
    }
  });

  test('two sessions per agent: requests spread over both; losing one loses no request', async () => {
    const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
    const sessions: AgentSession[] = [];
    relay.on('session', (s: AgentSession) => sessions.push(s));
    const agent = createAgent({
      relay: relay.addresses[0] as string,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
      connections: 2,
    });
    try {
      const [service] = await agent.ready;
      await until(() => relay.tunnels()[0]?.sessions === 2, 'both sessions registered');
      const slow = Array.from({ length: 4 }, () => curlResponse([`${service?.url}slow?ms=1000`]));
      // Four curl processes may take a while to start on a busy machine: wait for all four streams.
      await until(
        () => sessions.reduce((sum, s) => sum + s.activeStreams, 0) === 4,
        'the four requests to be open',
        5_000,
      );
      assert.deepEqual(
        sessions.map((s) => s.activeStreams),
        [2, 2],
        'four concurrent requests are spread two and two',
      );
      for (const res of await Promise.all(slow)) assert.equal(res.status, 200);
      sessions[0]?.destroy();
      const after = await Promise.all(
        Array.from({ length: 20 }, () => curlResponse([`${service?.url}echo`])),
      );
      for (const res of after) assert.equal(res.status, 200, 'the other session serves at once');
    } finally {
      await agent.close();
      await relay.close();
    }
  });

  test('several relay addresses: sessions spread over them, each relay serves the tunnel, the session of one going away moves to another', async () => {
    const relayA = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
    const relayB = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
    const agent = createAgent({
      relay: [relayA.addresses[0] as string, (relayB.addresses[0] as string).replace('tcp://', 'ws://')],
      key: generateAgentKey(),
      services: [{ target: origin.url }],
      reconnectInitialMs: 50,
      reconnectMaxMs: 200,
    });
    const reasons: { relay: string; reason: string }[] = [];
    agent.on('disconnected', (event: { relay: string; reason: string }) => reasons.push(event));
    try {
      const [service] = await readyWithin(agent);
      const label = service?.label as string;
      const sessionsOn = (relay: typeof relayA): number =>
        relay.tunnels().find((t) => t.label === label)?.sessions ?? 0;
      await until(() => sessionsOn(relayA) === 1 && sessionsOn(relayB) === 1, 'one session on each relay');
      for (const relay of [relayA, relayB]) {
        const port = (relay.addresses[0] as string).split(':').pop();
        assert.equal((await curlResponse([`http://127.0.0.1:${port}/${label}/echo`])).status, 200);
      }
      await relayA.close();
      const portB = (relayB.addresses[0] as string).split(':').pop();
      assert.equal((await curlResponse([`http://127.0.0.1:${portB}/${label}/echo`])).status, 200);
      await until(() => reasons.length > 0, 'the agent reporting the lost session');
      assert.equal(reasons[0]?.relay, `${relayA.addresses[0]}/_postern/agent?http_preflight=true`);
      // The session that lost relay A dials the next address: both sessions end up on B.
      await until(
        () => sessionsOn(relayB) === 2,
        'the session of the relay that went away moving to the other',
      );
    } finally {
      await agent.close();
      await relayB.close();
    }
    assert.throws(
      () =>
        createAgent({
          relay: ['tcp://127.0.0.1:1', 'tcp://127.0.0.1:2'],
          key: generateAgentKey(),
          services: [{ target: origin.url }],
          connections: 1,
        }),
      /connections must be a whole number of at least one per relay address \(2\), got 1/,
    );
  });

  test('a silent dead path (no FIN, no RST) is found by keepalive; the agent reconnects', async () => {
    const keepalive = { keepaliveIntervalMs: 100, keepaliveTimeoutMs: 200 };
    const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], ...keepalive, reconnectWaitMs: 5000 });
    const relayPort = Number((relay.addresses[0] as string).split(':').pop());
    const forwarder = await startTcpForwarder(relayPort);
    const agent = createAgent({
      relay: `tcp://127.0.0.1:${forwarder.port}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
      reconnectInitialMs: 50,
      reconnectMaxMs: 200,
      ...keepalive,
    });
    try {
      const [service] = await agent.ready;
      const lost = new Promise<{ reason: string }>((resolve) => agent.once('disconnected', resolve));
      const closedOnRelay = new Promise((resolve) => relay.once('session-closed', resolve));
      forwarder.stallAll();
      assert.match((await lost).reason, /PING|session closed/);
      await closedOnRelay;
      // The relay waits for the agent to come back rather than failing the request.
      const res = await curlResponse(['--max-time', '10', `${service?.url}echo`]);
      assert.equal(res.status, 200);
    } finally {
      await agent.close();
      await forwarder.close();
      await relay.close();
    }
  });

  test('a target that dies mid-body: the visitor sees a cut transfer, never a clean end', async () => {
    const liar = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-length': 1_000_000 });
      res.write(Buffer.alloc(300_000, 1), () => setTimeout(() => res.socket?.destroy(), 50));
    });
    const chunkedLiar = createHttpServer((_req, res) => {
      res.write(Buffer.alloc(300_000, 1), () => setTimeout(() => res.socket?.destroy(), 50));
    });
    await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => chunkedLiar.listen(0, '127.0.0.1', resolve));
    const a = await startTunnel(`http://127.0.0.1:${(liar.address() as { port: number }).port}`);
    const b = await startTunnel(`http://127.0.0.1:${(chunkedLiar.address() as { port: number }).port}`);
    try {
      const withLength = await curl(['-o', '/dev/null', a.service.url]);
      assert.equal(withLength.exitCode, 18, withLength.stderr);
      const chunked = await curl(['-o', '/dev/null', b.service.url]);
      assert.ok([18, 56].includes(chunked.exitCode), `curl exit ${chunked.exitCode}: ${chunked.stderr}`);
    } finally {
      await a.close();
      await b.close();
      liar.close();
      chunkedLiar.close();
    }
  });

  test('a visitor that cuts its chunked upload short: the target sees an aborted request, never a whole one', async () => {
    const outcomes: string[] = [];
    let received = 0;
    const target = createHttpServer((req, res) => {
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        received = size;
      });
      req.on('end', () => {
        outcomes.push(`complete ${size}`);
        res.end();
      });
      req.on('aborted', () => outcomes.push(`aborted ${size}`));
      req.on('error', () => {});
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const tunnel = await startTunnel(`http://127.0.0.1:${(target.address() as { port: number }).port}`);
    try {
      const visitor = connect(tunnel.port, '127.0.0.1');
      await new Promise((resolve) => visitor.once('connect', resolve));
      visitor.write(
        `POST /up HTTP/1.1\r\nHost: ${new URL(tunnel.service.url).host}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`,
      );
      // The first chunk travels relay → agent → target; then the visitor vanishes mid-body.
      await until(() => received === 5, 'the first chunk reaching the target');
      visitor.destroy();
      await until(() => outcomes.length > 0, 'the target seeing the request end');
      assert.deepEqual(outcomes, ['aborted 5']);
    } finally {
      await tunnel.close();
      target.closeAllConnections();
      target.close();
    }
  });

  test('bytes the agent sends in the same packet as its proof of possession are kept', async () => {
    const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
    const port = Number((relay.addresses[0] as string).split(':').pop());
    const key = generateAgentKey();
    const socket = connect(port, '127.0.0.1');
    try {
      await new Promise((resolve) => socket.once('connect', resolve));
      const headers = signedRegistration(key, `127.0.0.1:${port}`);
      const head = [
        `GET ${AGENT_PATH} HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        'Connection: Upgrade',
        `Upgrade: ${SESSION_UPGRADE_TOKEN}`,
      ]
        .concat(Object.entries(headers).map(([k, v]) => `${k}: ${v}`))
        .join('\r\n');
      // The test agent's session writes into a bridge that holds its first frames (its
      // SETTINGS) back; their first four bytes then ride in the same write as the proof that
      // follows the 101. If the relay dropped them, the rest would be garbage and the session would fail.
      const held: Buffer[] = [];
      let live = false;
      const bridge = new Duplex({
        read() {},
        write(chunk: Buffer, _encoding, callback) {
          if (live) socket.write(chunk, callback);
          else {
            held.push(chunk);
            callback();
          }
        },
      });
      const session = new MuxSession(bridge, {
        role: 'server',
        streamWindowBytes: 1 << 20,
        connectionWindowBytes: 1 << 20,
        maxConcurrentStreams: 10,
        maxHeaderPairs: 100,
      });
      session.on('stream', (stream: MuxStream) => {
        stream.respond({ ':status': 200 });
        stream.end('hazard avoided');
      });
      await new Promise((resolve) => setImmediate(resolve));
      const preface = Buffer.concat(held);
      assert.ok(preface.length > 4, 'the session wrote its SETTINGS');
      socket.write(`${head}\r\n\r\n`);
      // The relay's answer, then PSOK, then its own frames, which go to the test agent's session.
      let got = Buffer.alloc(0);
      let proven = false;
      const reply = await new Promise<Buffer>((resolve) => {
        socket.on('data', (chunk: Buffer) => {
          if (proven) {
            bridge.push(chunk);
            return;
          }
          got = Buffer.concat([got, chunk]);
          const end = got.indexOf('\r\n\r\n');
          if (end < 0) return;
          const text = got.subarray(0, end).toString();
          const challenge = /postern-challenge: (\S+)/i.exec(text)?.[1] ?? '';
          if (got.length < end + 4 + PROOF_ACCEPTED.length) {
            if (got.length === end + 4)
              socket.write(
                Buffer.concat([
                  signPossession(key.privateKey, challenge, headers[Header.signature] as string),
                  preface.subarray(0, 4),
                ]),
              );
            return;
          }
          proven = true;
          const rest = got.subarray(end + 4 + PROOF_ACCEPTED.length);
          if (rest.length > 0) bridge.push(rest);
          resolve(got.subarray(0, end + 4 + PROOF_ACCEPTED.length));
        });
      });
      assert.match(reply.toString(), /^HTTP\/1\.1 101 /);
      assert.ok(
        reply.subarray(-PROOF_ACCEPTED.length).equals(PROOF_ACCEPTED),
        'the relay accepted the proof',
      );
      const label = JSON.parse(/postern-assigned: (.*)/i.exec(reply.toString())?.[1] ?? '[]')[0]
        .label as string;
      socket.write(preface.subarray(4));
      live = true;
      const res = await curlResponse(['--max-time', '10', `http://${label}.localhost:${port}/`]);
      assert.equal(res.body, 'hazard avoided');
      session.destroy();
    } finally {
      socket.destroy();
      await relay.close();
    }
  });
});
