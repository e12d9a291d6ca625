import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { connect } from '../src/transport/connect.js';
import { curl, curlResponse } from './helpers/curl.js';
import { type EchoServer, startTcpEcho } from './helpers/echo.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startCli, startRelayProcess } from './helpers/processes.js';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

type Scrape = Map<string, number>;

/** /metrics parsed by a Prometheus text-format parser, flattened to `name{label="v",…}` → value. */
async function scrape(admin: string, token?: string): Promise<Scrape> {
  const res = await curl([
    ...(token ? ['-H', `Authorization: Bearer ${token}`] : []),
    `http://${admin}/metrics`,
  ]);
  assert.equal(res.exitCode, 0, res.stderr);
  const flat: Scrape = new Map();
  for (const family of parsePrometheusTextFormat(res.stdout)) {
    for (const sample of family.metrics) {
      const labels = Object.entries(sample.labels ?? {})
        .map(([k, v]) => `${k}="${v}"`)
        .join(',');
      const key = labels ? `${family.name}{${labels}}` : family.name;
      if (family.type === 'HISTOGRAM') flat.set(`${key}_count`, Number(sample.count));
      else flat.set(key, Number(sample.value));
    }
  }
  return flat;
}

const delta = (before: Scrape, after: Scrape, key: string): number =>
  (after.get(key) ?? 0) - (before.get(key) ?? 0);

describe('relay admin listener: Prometheus /metrics, /healthz, /readyz', () => {
  let origin: Origin;
  let echo: EchoServer;
  let tunnel: Tunnel;
  let admin: string;

  before(async () => {
    [origin, echo] = await Promise.all([startOrigin(), startTcpEcho()]);
    tunnel = await startTunnel(origin.url, {
      relay: { admin: '127.0.0.1:0', adminToken: 'sekret', restartGraceMs: 0 },
      agent: {
        services: [
          { name: 'web', target: origin.url },
          { name: 'echo', target: echo.target },
        ],
      },
    });
    admin = tunnel.relay.adminAddress as string;
  });
  after(async () => {
    await tunnel?.close();
    await Promise.all([origin?.close(), echo?.close()]);
  });

  test('counters move by exactly the traffic sent', async () => {
    const services = await tunnel.agent.ready;
    const web = services.find((s) => s.name === 'web')?.label as string;
    const tcp = services.find((s) => s.name === 'echo')?.connect as string;
    const before = await scrape(admin, 'sekret');

    for (let i = 0; i < 3; i++)
      assert.equal((await curlResponse([`${tunnel.relayUrl}/${web}/echo`])).status, 200);
    assert.equal((await curlResponse([`${tunnel.relayUrl}/${'a'.repeat(52)}/`])).status, 404);
    const socket = await connect(tcp);
    socket.write('ping');
    await once(socket, 'data');
    socket.destroy();
    // A registration without its signature headers: refused as malformed.
    const bad = netConnect({ host: '127.0.0.1', port: tunnel.port });
    bad.write(
      'GET /_postern/agent HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: postern-session/3\r\n\r\n',
    );
    await once(bad, 'data');
    bad.destroy();

    let after = await scrape(admin, 'sekret');
    await until(
      () =>
        after.get('postern_streams_active{kind="tcp"}') === 0 &&
        after.get('postern_streams_active{kind="http"}') === 0,
      'streams closed',
    ).catch(() => undefined);
    after = await scrape(admin, 'sekret');
    assert.equal(delta(before, after, 'postern_http_responses_total{code="200"}'), 3);
    assert.equal(delta(before, after, 'postern_http_responses_total{code="404"}'), 1);
    assert.equal(delta(before, after, 'postern_http_request_duration_seconds_count'), 4);
    assert.equal(delta(before, after, 'postern_streams_total{kind="http"}'), 3);
    assert.equal(delta(before, after, 'postern_streams_total{kind="tcp"}'), 1);
    assert.equal(delta(before, after, 'postern_registrations_total{result="registration_malformed"}'), 1);
    assert.equal(after.get('postern_registrations_total{result="ok"}'), 2, 'two sessions registered');
    assert.equal(after.get('postern_sessions'), 2);
    assert.equal(after.get('postern_tunnels{state="online"}'), 2);
    assert.ok(delta(before, after, 'postern_visitor_bytes_total{direction="in"}') > 0);
    assert.ok(delta(before, after, 'postern_visitor_bytes_total{direction="out"}') > 0);
    assert.ok((after.get('postern_relay_process_resident_memory_bytes') ?? 0) > 0, 'process metrics too');

    // The duration histogram's buckets are cumulative, end in +Inf at the count, and have a sum.
    const text = (await curl(['-H', 'Authorization: Bearer sekret', `http://${admin}/metrics`])).stdout;
    const family = parsePrometheusTextFormat(text).find(
      (f) => f.name === 'postern_http_request_duration_seconds',
    );
    const sample = family?.metrics[0] as { buckets: Record<string, string>; count: string; sum: string };
    assert.equal(family?.type, 'HISTOGRAM');
    // By bound: an object lists integer-like keys ("1", "10") before the others.
    const counts = Object.entries(sample.buckets)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([, count]) => Number(count));
    assert.deepEqual(
      counts,
      [...counts].sort((a, b) => a - b),
      'buckets never shrink',
    );
    assert.equal(sample.buckets['+Inf'], sample.count);
    assert.ok(Number(sample.buckets['0.001']) <= Number(sample.count));
    assert.ok(Number(sample.sum) > 0);
  });

  test('the token guards /metrics, not the health endpoints', async () => {
    const denied = await curlResponse([`http://${admin}/metrics`]);
    assert.equal(denied.status, 401);
    assert.equal(
      (await curlResponse(['-H', 'Authorization: Bearer wrong', `http://${admin}/metrics`])).status,
      401,
    );
    assert.equal((await curlResponse([`http://${admin}/healthz`])).status, 200);
    assert.equal((await curlResponse([`http://${admin}/readyz`])).status, 200);
    assert.equal((await curlResponse([`http://${admin}/nope`])).status, 404);
  });

  test('/api/status lists the tunnels with their agents; the dashboard page is self-contained', async () => {
    const denied = await curlResponse([`http://${admin}/api/status`]);
    assert.equal(denied.status, 401);
    const res = await curl(['-H', 'Authorization: Bearer sekret', `http://${admin}/api/status`]);
    const status = JSON.parse(res.stdout) as {
      sessions: number;
      draining: boolean;
      tunnels: { name: string; kind: string; sessions: number; agents: { remoteAddress: string }[] }[];
    };
    assert.equal(status.sessions, 2);
    assert.equal(status.draining, false);
    const web = status.tunnels.find((t) => t.name === 'web');
    assert.equal(web?.kind, 'http');
    assert.equal(web?.agents.length, 2);
    assert.equal(web?.agents[0]?.remoteAddress, '127.0.0.1');
    assert.equal(status.tunnels.find((t) => t.name === 'echo')?.kind, 'tcp');

    const page = await curlResponse([`http://${admin}/`]);
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type'] ?? '', /^text\/html/);
    assert.match(page.headers['content-security-policy'] ?? '', /default-src 'none'/);
    assert.doesNotMatch(page.body, /(src|href)="https?:/, 'no external assets');
    assert.doesNotMatch(page.body, /innerHTML/, 'data is shown as text, never parsed as HTML');
  });
});

describe('a relay without metrics', () => {
  test('loads no registry, and refuses an admin listener that would serve /metrics', async () => {
    const { createRelay } = await import('../src/relay/relay.js');
    await assert.rejects(
      createRelay({ listen: ['tcp://127.0.0.1:0'], admin: '127.0.0.1:0', metrics: false }),
      /admin listener serves \/metrics: it needs metrics/,
    );
    const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], metrics: false });
    try {
      assert.throws(() => relay.metrics.registry, /created with metrics: false/);
    } finally {
      await relay.close();
    }
  });
});

describe('relay admin listener while draining', () => {
  test('/readyz answers 503 once the relay drains, /healthz still 200', async () => {
    const origin = await startOrigin();
    const tunnel = await startTunnel(origin.url, { relay: { admin: '127.0.0.1:0' } });
    const admin = tunnel.relay.adminAddress as string;
    try {
      const slow = curlResponse([`${tunnel.relayUrl}/${tunnel.service.label}/slow?ms=1500`]);
      await until(() => tunnel.relay.tunnels()[0]?.activeStreams === 1, 'the slow request in flight');
      const closing = tunnel.relay.close();
      assert.equal((await curlResponse([`http://${admin}/readyz`])).status, 503);
      assert.equal((await curlResponse([`http://${admin}/healthz`])).status, 200);
      assert.equal((await slow).status, 200);
      await closing;
    } finally {
      await tunnel.close();
      await origin.close();
    }
  });
});

describe('relay admin listener from the CLI', () => {
  test('--admin host:0 binds and the listening line names it; --admin off runs none', async () => {
    const { relay, listening } = await startRelayProcess(['--admin', '127.0.0.1:0']);
    try {
      assert.match(String(listening.admin), /^127\.0\.0\.1:\d+$/);
      assert.equal((await curlResponse([`http://${String(listening.admin)}/healthz`])).body, 'ok\n');
      assert.match((await curl([`http://${String(listening.admin)}/metrics`])).stdout, /^# HELP /m);
    } finally {
      await relay.stop();
    }
    // DNS rebinding: a hostile page whose name now points at 127.0.0.1 reads nothing.
    const { relay: open, listening: openListening } = await startRelayProcess(['--admin', '127.0.0.1:0']);
    try {
      const address = String(openListening.admin);
      const port = address.split(':')[1] as string;
      for (const path of ['/api/status', '/metrics', '/']) {
        const rebound = await curlResponse([
          '-H',
          `Host: rebind.attacker.example:${port}`,
          `http://${address}${path}`,
        ]);
        assert.equal(rebound.status, 421, path);
        assert.doesNotMatch(rebound.body, /tunnels|postern_/);
      }
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`])
        assert.equal(
          (await curlResponse(['-H', `Host: ${host}`, `http://${address}/api/status`])).status,
          200,
          host,
        );
      assert.equal(
        (await curlResponse(['-H', 'Host: any.example', `http://${address}/healthz`])).status,
        200,
      );
    } finally {
      await open.stop();
    }
    // Beyond loopback only with a token: refused before anything listens.
    const exposed = startCli(['relay', '--listen', 'tcp://127.0.0.1:0', '--admin', '0.0.0.0:0']);
    assert.equal(await exposed.exited, 1);
    assert.match(
      exposed.stderr(),
      /^postern relay: the admin listener on 0\.0\.0\.0:0 is reachable beyond this machine; set --admin-token/,
    );
    assert.equal(exposed.stderr().trim().split('\n').length, 1);
    const off = await startRelayProcess(['--admin', 'off']);
    try {
      assert.equal(off.listening.admin, null);
    } finally {
      await off.relay.stop();
    }
  });
});
