import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type Agent, createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { silentLogger } from '../src/log.js';
import type { IncomingMuxHeaders } from '../src/mux/header-block.js';
import {
  NODE_AUTH_HEADER,
  NODE_ID_HEADER,
  NODE_PATH,
  NODE_UPGRADE_TOKEN,
  nodeAuthValue,
} from '../src/relay/cluster/node-auth.js';
import { NodeLinks } from '../src/relay/cluster/node-links.js';
import type { Relay } from '../src/relay/relay.js';
import { makeCertificates } from './helpers/certs.js';
import { CLUSTER_SECRET, startClusterRelays } from './helpers/cluster-node.js';
import { curlResponse } from './helpers/curl.js';
import { type CliProcess, startCli } from './helpers/processes.js';
import { type Redis, startRedis } from './helpers/redis.js';
import { readyWithin } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

/**
 * Node links are trusted with the visitor's address and the tunnel to reach, so they must be
 * impossible to replay, and the holding node must decide the service itself from the label it
 * checked (a link once asked for an open label with `postern-service: admin` and got the guarded
 * service's answer, its allow-ip and Basic rules unchecked).
 */
describe('cluster node links: bound to sender and receiver, never replayed, never choosing the service', () => {
  let redis: Redis;
  let a: Relay;
  let b: Relay;
  let agent: Agent;
  let web: Server;
  let admin: Server;
  const labels: Record<string, string> = {};
  const key = generateAgentKey();
  const node = (relay: Relay): { id: string; advertise: string } =>
    relay.node as { id: string; advertise: string };
  const portOf = (relay: Relay): number => Number((relay.addresses[0] as string).split(':').pop());

  before(async () => {
    redis = await startRedis();
    [a, b] = (await startClusterRelays(redis, ['a', 'b'])) as [Relay, Relay];
    const server = async (body: string): Promise<Server> => {
      const s = createServer((_req, res) => res.end(body));
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      return s;
    };
    web = await server('the open web service');
    admin = await server('the guarded admin service');
    agent = createAgent({
      relay: a.addresses[0] as string,
      key,
      services: [
        { name: 'web', target: `http://127.0.0.1:${(web.address() as AddressInfo).port}` },
        {
          name: 'admin',
          target: `http://127.0.0.1:${(admin.address() as AddressInfo).port}`,
          access: { basicAuth: ['root:hunter2-long-password'], allowIps: ['10.0.0.0/8'] },
        },
      ],
    });
    for (const service of await readyWithin(agent)) labels[service.name] = service.label;
  });
  after(async () => {
    await agent?.close();
    await Promise.all([a?.close(), b?.close()]);
    web?.close();
    admin?.close();
    await redis?.stop();
  });

  /** Sends a node-link upgrade head to `relay`; its status line and whether a challenge followed. */
  const dialRaw = async (
    relay: Relay,
    auth: string,
  ): Promise<{ status: string; closedAfterAnswer: boolean }> => {
    const socket = connect(portOf(relay), '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.write(
      `GET ${NODE_PATH} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${NODE_UPGRADE_TOKEN}\r\n${NODE_ID_HEADER}: b\r\n${NODE_AUTH_HEADER}: ${auth}\r\n\r\n`,
    );
    const [first] = (await once(socket, 'data')) as [Buffer];
    const status = first.toString('latin1').split('\r\n')[0] as string;
    // What a replayer can send for the challenge: 32 bytes it made up.
    const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
    socket.write(Buffer.alloc(32, 1));
    const closedAfterAnswer = await Promise.race([
      closed,
      new Promise<boolean>((r) => setTimeout(() => r(false), 15_000)),
    ]);
    socket.destroy();
    return { status, closedAfterAnswer };
  };

  test('a link head made for one node is refused by another; replayed to its own node it cannot answer the challenge', async () => {
    const recorded = nodeAuthValue(CLUSTER_SECRET, 'b', 'a');
    const elsewhere = await dialRaw(b, recorded);
    assert.match(elsewhere.status, /^HTTP\/1.1 403 /);
    const replayed = await dialRaw(a, recorded);
    assert.match(replayed.status, /^HTTP\/1.1 101 /);
    assert.ok(replayed.closedAfterAnswer, 'a made-up answer to the challenge closes the link');
  });

  test('a node asking for the open label with postern-service: admin gets the open service', async () => {
    const links = new NodeLinks({
      self: { id: 'mallory', advertise: 'tcp://127.0.0.1:1' },
      secret: CLUSTER_SECRET,
      basePath: '',
      log: silentLogger,
      keepalive: { intervalMs: 10_000, timeoutMs: 10_000 },
    });
    try {
      const peer = await links.peer(
        { label: labels.web as string, kind: 'http', name: 'web', nodes: [node(a)] },
        '10.1.2.3',
      );
      assert.ok(typeof peer !== 'string', String(peer));
      const stream = peer.openStream(
        { ':method': 'GET', ':path': '/', ':authority': 'x', 'postern-service': 'admin' },
        { endStream: true },
      );
      const [response] = (await once(stream, 'response')) as [IncomingMuxHeaders];
      let body = '';
      stream.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      await once(stream, 'end');
      assert.equal(response[':status'], 200);
      assert.equal(body, 'the open web service');
    } finally {
      links.close();
    }
  });
  test('a second agent of the key on another node cannot unguard a live service; with --replace it takes it over there too', async () => {
    const open = (replace: boolean): Agent =>
      createAgent({
        relay: b.addresses[0] as string,
        key,
        connections: 1,
        replace,
        services: [{ name: 'admin', target: `http://127.0.0.1:${(web.address() as AddressInfo).port}` }],
      });
    const refused = open(false);
    await assert.rejects(
      refused.ready,
      /409 postern: service "admin" of key \S+ is live on node a with another target or other access rules/,
    );
    await refused.close();
    const taker = open(true);
    try {
      await taker.ready;
      const onA = (): number => a.tunnels().find((t) => t.label === labels.admin)?.sessions ?? 0;
      await until(() => onA() === 0, 'node a to close the replaced session', 15_000);
    } finally {
      await taker.close();
    }
  });
});

describe('cluster node links over TLS', () => {
  test('nodes whose public listener is tcps:// link over TLS by default, verifying each other', async () => {
    const redis = await startRedis();
    const certs = makeCertificates();
    const origin = createServer((_req, res) => res.end('through a TLS node link'));
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const nodes: CliProcess[] = [];
    let agent: Agent | undefined;
    try {
      const addresses: string[] = [];
      for (const id of ['a', 'b']) {
        const cli = startCli(
          [
            'relay',
            '--listen',
            'tcps://127.0.0.1:0',
            '--tls-cert',
            certs.cert,
            '--tls-key',
            certs.key,
            '--redis',
            redis.socketPath,
            '--node-id',
            id,
            '--admin',
            'off',
            '--json',
          ],
          // The test CA, trusted the way an operator would for a private CA.
          { POSTERN_CLUSTER_SECRET: CLUSTER_SECRET, NODE_EXTRA_CA_CERTS: certs.ca },
        );
        nodes.push(cli);
        const listening = await cli.nextEvent((e) => e.event === 'listening');
        const address = (listening.listen as string[])[0] as string;
        assert.deepEqual(listening.node, { id, advertise: address }, 'the tcps listener is advertised');
        assert.match(address, /^tcps:\/\//);
        addresses.push(address);
      }
      agent = createAgent({
        relay: `${addresses[0]}?ca=${certs.ca}`,
        key: generateAgentKey(),
        services: [{ target: `http://127.0.0.1:${(origin.address() as AddressInfo).port}` }],
      });
      const [service] = await readyWithin(agent);
      const portB = (addresses[1] as string).split(':').pop();
      const res = await curlResponse(['--cacert', certs.ca, `https://localhost:${portB}/${service?.label}/`]);
      assert.equal(res.status, 200);
      assert.equal(res.body, 'through a TLS node link');
      assert.match(nodes[1]?.stderr() ?? '', /"msg":"node link up".*"advertise":"tcps:\/\/127\.0\.0\.1:/);
    } finally {
      await agent?.close();
      await Promise.all(nodes.map((n) => n.stop()));
      origin.close();
      rmSync(certs.dir, { recursive: true, force: true });
      await redis.stop();
    }
  });
});
