import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { get, request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { type Agent, createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { AGENT_PATH, Header, SESSION_UPGRADE_TOKEN } from '../src/session/protocol.js';
import { connect } from '../src/transport/connect.js';
import { localhostLookup } from '../src/transport/localhost-lookup.js';
import { type ClusterNode, startClusterNode } from './helpers/cluster-node.js';
import { curlResponse } from './helpers/curl.js';
import { type EchoServer, startTcpEcho, startWebSocketEcho } from './helpers/echo.js';
import { type Origin, patternBlock, sendPattern, sha256OfPattern, startOrigin } from './helpers/origin.js';
import { type Redis, startRedis } from './helpers/redis.js';
import { signedRegistration } from './helpers/registration.js';
import { readyWithin } from './helpers/tunnel.js';

const MiB = 1 << 20;

type Node = ClusterNode;
const startNode = (redis: Redis, id: string, secret?: string): Promise<Node> =>
  startClusterNode(redis, id, secret === undefined ? {} : { secret });

/** GET through a node; resolves with the status and the SHA-256 and size of the body. */
function download(
  port: number,
  label: string,
  path: string,
): Promise<{ status: number; sha256: string; size: number }> {
  return new Promise((resolve, reject) => {
    get({ host: `${label}.localhost`, port, path, lookup: localhostLookup }, (res) => {
      const hash = createHash('sha256');
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sha256: hash.digest('hex'), size }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** POSTs `size` pattern bytes to /upload through a node; resolves with the origin's answer. */
function upload(port: number, label: string, size: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: `${label}.localhost`,
        port,
        path: '/upload',
        method: 'POST',
        lookup: localhostLookup,
        headers: { 'content-length': size },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    sendPattern(req, size);
  });
}

describe('cluster mode: three relay processes on one redis-server', () => {
  let redis: Redis;
  let nodes: Node[];
  let origin: Origin;
  let tcpEcho: EchoServer;
  let wsEcho: EchoServer;
  let agent: Agent;
  const labels: Record<string, string> = {};

  before(async () => {
    redis = await startRedis();
    nodes = await Promise.all(['a', 'b', 'c'].map((id) => startNode(redis, id)));
    origin = await startOrigin();
    tcpEcho = await startTcpEcho();
    wsEcho = await startWebSocketEcho();
    agent = createAgent({
      relay: (nodes[0] as Node).address,
      key: generateAgentKey(),
      services: [
        { name: 'web', target: origin.url },
        { name: 'echo', target: tcpEcho.target },
        { name: 'ws', target: wsEcho.target },
      ],
    });
    for (const service of await readyWithin(agent)) labels[service.name] = service.label;
  });
  after(async () => {
    await agent?.close();
    await Promise.all((nodes ?? []).map((n) => n.cli.stop()));
    await Promise.all([origin?.close(), tcpEcho?.close(), wsEcho?.close()]);
    await redis?.stop();
  });

  test('HTTP through the nodes that do not hold the tunnel: 50 MiB down and up, checksums equal', async () => {
    const [, b, c] = nodes as [Node, Node, Node];
    const size = 50 * MiB;
    for (const node of [b, c]) {
      const down = await download(node.port, labels.web as string, `/bytes?n=${size}`);
      assert.deepEqual(down, { status: 200, sha256: sha256OfPattern(size), size });
    }
    const up = await upload(c.port, labels.web as string, size);
    assert.equal(up.status, 200);
    assert.equal(JSON.parse(up.body).sha256, sha256OfPattern(size));
  });

  test('WebSocket and preflight TCP through another node: 50 MiB each way, checksums equal', async () => {
    const [, b, c] = nodes as [Node, Node, Node];
    // WebSocket: 50 messages of 1 MiB out, each echoed back; the hashes of both sides must match.
    const ws = new WebSocket(`ws://${labels.ws}.localhost:${c.port}/`, { lookup: localhostLookup });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const sent = createHash('sha256');
    const received = createHash('sha256');
    let receivedBytes = 0;
    const allBack = new Promise<void>((resolve) =>
      ws.on('message', (data: Buffer) => {
        received.update(data);
        receivedBytes += data.length;
        if (receivedBytes >= 50 * MiB) resolve();
      }),
    );
    for (let i = 0; i < 50; i++) {
      const message = randomBytes(MiB);
      sent.update(message);
      ws.send(message);
    }
    await allBack;
    assert.equal(received.digest('hex'), sent.digest('hex'));
    ws.close();

    // Preflight TCP: 50 MiB written with backpressure, echoed, hashed on the way back.
    const socket = await connect(`tcp://${labels.echo}.localhost:${b.port}?http_preflight=true`);
    const out = createHash('sha256');
    const back = createHash('sha256');
    let backBytes = 0;
    const reading = (async () => {
      for await (const chunk of socket) {
        back.update(chunk as Buffer);
        backBytes += (chunk as Buffer).length;
      }
    })();
    for (let i = 0; i < 50; i++) {
      const chunk = patternBlock(i, MiB);
      out.update(chunk);
      if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
    }
    socket.end();
    await reading;
    assert.equal(backBytes, 50 * MiB);
    assert.equal(back.digest('hex'), out.digest('hex'));
  });

  test('a registration replayed on another node is refused (the nonce is shared through Redis)', async () => {
    const [a, b] = nodes as [Node, Node];
    const key = generateAgentKey();
    const headers = signedRegistration(key, 'relay.cluster.test');
    const register = (port: number): Promise<{ status: number; code: string | undefined }> =>
      new Promise((resolve, reject) => {
        const req = request({
          host: '127.0.0.1',
          port,
          path: AGENT_PATH,
          headers: {
            connection: 'Upgrade',
            upgrade: SESSION_UPGRADE_TOKEN,
            ...headers,
            host: 'relay.cluster.test',
          },
        });
        req.once('upgrade', (res, socket) => {
          socket.destroy();
          resolve({ status: res.statusCode ?? 0, code: undefined });
        });
        req.once('response', (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, code: res.headers[Header.error] as string | undefined });
        });
        req.once('error', reject);
        req.end();
      });
    assert.deepEqual(await register(a.port), { status: 101, code: undefined });
    assert.deepEqual(await register(b.port), { status: 401, code: 'registration_replayed' });
  });

  test('the node a visitor came to counts its streams against --max-streams-per-ip, for tunnels held elsewhere too', async () => {
    const edge = await startClusterNode(redis, 'edge', { extra: ['--max-streams-per-ip', '1'] });
    try {
      const url = `http://${labels.web}.localhost:${edge.port}/slow?ms=1500`;
      const arrived = origin.nextRequest('/slow');
      const first = curlResponse([url]);
      await arrived;
      const second = await curlResponse([url]);
      assert.equal(second.status, 429);
      assert.equal(second.headers['postern-error'], 'too_many_streams');
      assert.equal((await first).status, 200);
    } finally {
      await edge.cli.stop();
    }
  });

  test('a node with the wrong cluster secret can neither dial in nor forward; a forged link is refused', async () => {
    const intruder = await startNode(redis, 'intruder', 'not-the-cluster-secret-at-all');
    try {
      const res = await curlResponse([`http://${labels.web}.localhost:${intruder.port}/x`]);
      assert.equal(res.status, 503);
      assert.equal(res.headers['postern-error'], 'cluster_unavailable');
      assert.match(res.body, /^postern: no node holding [a-z2-7]+ could be reached; try again shortly\n$/);
      assert.match(
        intruder.cli.stderr(),
        /"msg":"node link failed","node":"intruder","peer":"a",.*wrong cluster secret/,
      );
      const [a] = nodes as [Node];
      assert.match(
        a.cli.stderr(),
        /"msg":"node link refused","node":"a","peer":"intruder".*"reason":"wrong cluster secret/,
      );

      const forged = await curlResponse([
        '-H',
        'Connection: Upgrade',
        '-H',
        'Upgrade: postern-node/1',
        '-H',
        'Postern-Node: b',
        '-H',
        `Postern-Node-Auth: ${Math.floor(Date.now() / 1000)}.abc.${'A'.repeat(43)}`,
        `http://127.0.0.1:${a.port}/_postern/node`,
      ]);
      assert.equal(forged.status, 403);
      assert.equal(forged.headers['postern-error'], 'node_refused');
    } finally {
      await intruder.cli.stop();
    }
  });
});
