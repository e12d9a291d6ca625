import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { keyLabel } from '../src/keys/label.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startTunnel } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

/** A loopback port with nobody listening: bind, note the port, close. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The relay's postern_requests_waiting gauge. */
async function waitingRequests(relay: Relay): Promise<number | undefined> {
  const gauge = relay.metrics.registry.getSingleMetric('postern_requests_waiting');
  return (await gauge?.get())?.values[0]?.value;
}

describe('errors visitors see', () => {
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(async () => origin.close());

  test('404 tunnel_not_found for an unknown label, by Host and by path', async () => {
    const tunnel = await startTunnel(origin.url, { relay: { restartGraceMs: 0 } });
    try {
      const unknown = 'a'.repeat(52);
      const byHost = await curlResponse([`http://${unknown}.localhost:${tunnel.port}/`]);
      assert.equal(byHost.status, 404);
      assert.equal(byHost.headers['postern-error'], 'tunnel_not_found');
      assert.match(byHost.body, /^postern: no tunnel named a{52}/);
      const byPath = await curlResponse([`${tunnel.relayUrl}/${unknown}/x`]);
      assert.equal(byPath.status, 404);
      const bare = await curlResponse([`${tunnel.relayUrl}/`]);
      assert.equal(bare.status, 404);
      assert.match(bare.body, /no tunnel named in the Host/);
      const notALabel = await curlResponse([`http://shop.localhost:${tunnel.port}/`]);
      assert.equal(notALabel.status, 404);
    } finally {
      await tunnel.close();
    }
  });

  test('browsers get a short HTML page (the reason escaped, nothing that runs); curl and scripts the plain line', async () => {
    const tunnel = await startTunnel(origin.url);
    try {
      const browser = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
      const page = await curlResponse(['-H', `Accept: ${browser}`, `${tunnel.relayUrl}/`]);
      assert.equal(page.status, 404);
      assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
      assert.equal(page.headers['postern-error'], 'tunnel_not_found');
      assert.match(page.headers['content-security-policy'] ?? '', /default-src 'none'/);
      assert.match(page.body, /<h1>404 Not Found<\/h1><p>no tunnel named in the Host/);
      // What a visitor sent comes back escaped.
      const hostile = await curlResponse([
        '-H',
        `Accept: ${browser}`,
        '-H',
        'Host: x<img src=x onerror=alert(1)>.localhost',
        `${tunnel.relayUrl}/`,
      ]);
      assert.equal(hostile.status, 404);
      assert.match(hostile.body, /&quot;x&lt;img src=x onerror=alert\(1\)&gt;&quot; is not a tunnel label/);
      assert.doesNotMatch(hostile.body, /<img/);
      const plain = await curlResponse([`${tunnel.relayUrl}/`]);
      assert.equal(plain.headers['content-type'], 'text/plain; charset=utf-8');
      assert.match(plain.body, /^postern: no tunnel named in the Host/);
    } finally {
      await tunnel.close();
    }
  });

  test('a relay that just started: an unknown agent label waits for its agent, then 503 (not 404)', async () => {
    const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], reconnectWaitMs: 1_500 });
    const address = relay.addresses[0] as string;
    const relayUrl = address.replace('tcp://', 'http://');
    try {
      const never = await curlResponse([`${relayUrl}/${'a'.repeat(52)}/`]);
      assert.equal(never.status, 503);
      assert.equal(never.headers['postern-error'], 'tunnel_offline');
      assert.equal(never.headers['retry-after'], '2');
      assert.match(never.body, /^postern: no agent has registered a{52} since this relay started/);
      // Not shaped like an agent's label: 404 at once, as before.
      assert.equal((await curlResponse([`http://shop.localhost:${address.split(':').pop()}/`])).status, 404);

      // The agent registers while the request waits: the request is served.
      const key = generateAgentKey();
      const waiting = curlResponse([`${relayUrl}/${keyLabel(key.publicKey)}/hello`]);
      await until(async () => (await waitingRequests(relay)) === 1, 'the request to wait at the relay');
      const agent = createAgent({ relay: address, key, services: [{ target: origin.url }] });
      try {
        const served = await waiting;
        assert.equal(served.status, 200);
      } finally {
        await agent.close();
      }
    } finally {
      await relay.close();
    }
  });

  test('429 too_many_streams past the per-address limit; behind a trusted proxy the forwarded address counts', async () => {
    const tunnel = await startTunnel(origin.url, {
      relay: { maxStreamsPerVisitorIp: 2, trustedProxies: ['127.0.0.2'] },
    });
    const url = `${tunnel.relayUrl}/${tunnel.service.label}`;
    try {
      const slow = [curlResponse([`${url}/slow?ms=1500`]), curlResponse([`${url}/slow?ms=1500`])];
      await until(() => tunnel.relay.tunnels()[0]?.activeStreams === 2, 'two slow requests open');
      const third = await curlResponse([`${url}/echo`]);
      assert.equal(third.status, 429);
      assert.equal(third.headers['postern-error'], 'too_many_streams');
      assert.match(third.body, /^postern: 127\.0\.0\.1 has 2 streams open \(limit 2 an address\)/);
      // From the trusted proxy's address (curl's source set to 127.0.0.2), the visitor it forwards
      // is counted instead.
      const other = await curlResponse([
        '--interface',
        '127.0.0.2',
        '-H',
        'X-Forwarded-For: 198.51.100.7',
        `${url}/echo`,
      ]);
      assert.equal(other.status, 200);
      const same = await curlResponse([
        '--interface',
        '127.0.0.2',
        '-H',
        'X-Forwarded-For: 127.0.0.1',
        `${url}/echo`,
      ]);
      assert.equal(same.status, 429, 'the forwarded 127.0.0.1 is the visitor at its limit, not the proxy');
      for (const res of await Promise.all(slow)) assert.equal(res.status, 200);
      assert.equal((await curlResponse([`${url}/echo`])).status, 200, 'slots are given back');
    } finally {
      await tunnel.close();
    }
  });

  test('502 target_unreachable when the target is down', async () => {
    const tunnel = await startTunnel(`http://127.0.0.1:${await closedPort()}`);
    try {
      const res = await curlResponse([tunnel.service.url]);
      assert.equal(res.status, 502);
      assert.equal(res.headers['postern-error'], 'target_unreachable');
      assert.match(res.body, /could not reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    } finally {
      await tunnel.close();
    }
  });

  test('504 response_timeout when the target does not answer in time', async () => {
    const tunnel = await startTunnel(origin.url, { relay: { responseTimeoutMs: 300 } });
    try {
      const res = await curlResponse([`${tunnel.service.url}slow?ms=5000`]);
      assert.equal(res.status, 504);
      assert.equal(res.headers['postern-error'], 'response_timeout');
      // The tunnel still works for the next request.
      assert.equal((await curlResponse([`${tunnel.service.url}echo`])).status, 200);
    } finally {
      await tunnel.close();
    }
  });

  test('503 tunnel_offline with Retry-After when the agent is gone', async () => {
    const tunnel = await startTunnel(origin.url, { relay: { reconnectWaitMs: 200 } });
    try {
      await tunnel.agent.close();
      const res = await curlResponse([tunnel.service.url]);
      assert.equal(res.status, 503);
      assert.equal(res.headers['postern-error'], 'tunnel_offline');
      assert.ok(Number(res.headers['retry-after']) >= 1);
    } finally {
      await tunnel.close();
    }
  });

  test('429 rate_limited from the per-tunnel token bucket', async () => {
    const tunnel = await startTunnel(origin.url, {
      relay: { requestsPerSecondPerTunnel: 1, requestBurstPerTunnel: 2 },
    });
    try {
      const statuses: number[] = [];
      let limited: Awaited<ReturnType<typeof curlResponse>> | undefined;
      for (let i = 0; i < 4; i++) {
        const res = await curlResponse([`${tunnel.service.url}echo`]);
        statuses.push(res.status);
        if (res.status === 429) limited = res;
      }
      assert.deepEqual(statuses.slice(0, 2), [200, 200]);
      assert.ok(limited, `statuses ${statuses}`);
      assert.equal(limited.headers['postern-error'], 'rate_limited');
      assert.ok(Number(limited.headers['retry-after']) >= 1);
    } finally {
      await tunnel.close();
    }
  });

  test('429 too_many_streams over the concurrent-stream cap', async () => {
    const tunnel = await startTunnel(origin.url, { relay: { maxConcurrentStreamsPerTunnel: 1 } });
    try {
      const arrived = origin.nextRequest('/slow');
      const slow = curlResponse([`${tunnel.service.url}slow?ms=1500`]);
      await arrived;
      const second = await curlResponse([`${tunnel.service.url}echo`]);
      assert.equal(second.status, 429);
      assert.equal(second.headers['postern-error'], 'too_many_streams');
      assert.equal((await slow).status, 200);
    } finally {
      await tunnel.close();
    }
  });

  test('413 body_too_large over the optional body cap, declared or chunked', async () => {
    const tunnel = await startTunnel(origin.url, { relay: { maxRequestBodyBytes: 1000 } });
    try {
      const declared = await curlResponse(['--data-binary', 'x'.repeat(2000), `${tunnel.service.url}upload`]);
      assert.equal(declared.status, 413);
      assert.equal(declared.headers['postern-error'], 'body_too_large');
      const chunked = await curlResponse([
        '-H',
        'Transfer-Encoding: chunked',
        '--data-binary',
        'x'.repeat(5000),
        `${tunnel.service.url}upload`,
      ]);
      assert.equal(chunked.status, 413);
      const within = await curlResponse(['--data-binary', 'x'.repeat(500), `${tunnel.service.url}upload`]);
      assert.equal(within.status, 200);
    } finally {
      await tunnel.close();
    }
  });

  test('400 for a malformed request head, and the agent endpoint without an upgrade', async () => {
    const tunnel = await startTunnel(origin.url);
    try {
      const { connect } = await import('node:net');
      const answer = await new Promise<string>((resolve) => {
        const socket = connect(tunnel.port, '127.0.0.1', () => socket.write('GARBAGE / HTTP/1.1\r\n\r\n'));
        let text = '';
        socket.on('data', (chunk) => {
          text += chunk.toString();
        });
        socket.on('close', () => resolve(text));
      });
      assert.match(answer, /^HTTP\/1\.1 400 /);
      assert.match(answer, /postern-error: bad_request/);
      const plain = await curlResponse([`${tunnel.relayUrl}/_postern/agent`]);
      assert.equal(plain.status, 400);
    } finally {
      await tunnel.close();
    }
  });
});
