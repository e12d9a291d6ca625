import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { type Agent, createAgent } from '../src/agent/agent.js';
import { type AgentKey, generateAgentKey } from '../src/keys/key-file.js';
import { keyLabel } from '../src/keys/label.js';
import type { RelayOptions } from '../src/relay/options.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { CLUSTER_SECRET } from './helpers/cluster-node.js';
import { curl } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startCli } from './helpers/processes.js';
import { type Redis, startRedis } from './helpers/redis.js';
import { readyWithin } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

const DOMAIN = 'tunnel.test';
const DAY = 86_400_000;

describe('names people choose: expose --subdomain', () => {
  let origin: Origin;
  const running: (() => Promise<void>)[] = [];

  before(async () => {
    origin = await startOrigin();
  });
  afterEach(async () => {
    for (const close of running.splice(0).reverse()) await close();
  });
  after(() => new Promise<void>((resolve) => origin.server.close(() => resolve())));

  async function relayWith(options: RelayOptions): Promise<Relay> {
    const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], domain: DOMAIN, ...options });
    running.push(() => relay.close());
    return relay;
  }

  /** An agent asking for `subdomain`; its ready promise as given (the test decides what to expect). */
  function agentOf(relay: Relay, key: AgentKey, subdomain: string, name?: string): Agent {
    const agent = createAgent({
      relay: relay.addresses[0] as string,
      key,
      services: [{ target: origin.url, subdomain, name }],
      readyTimeoutMs: 15_000,
      // One session: a refused agent's second session cannot claim later behind the test's back.
      connections: 1,
    });
    running.push(() => agent.close());
    agent.ready.catch(() => {});
    return agent;
  }

  function visit(relay: Relay, host: string): ReturnType<typeof curl> {
    const port = (relay.addresses[0] as string).split(':').pop();
    return curl(['-H', `Host: ${host}`, `http://127.0.0.1:${port}/hello`]);
  }

  test('the first key gets the name; another key is refused with subdomain_taken; the name comes back after a restart', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'postern-subdomains-'));
    const owner = generateAgentKey();
    const other = generateAgentKey();
    const relay = await relayWith({ stateDir });
    const first = agentOf(relay, owner, 'myapp');
    const [service] = await readyWithin(first);
    assert.equal(service?.label, 'myapp');
    const port = (relay.addresses[0] as string).split(':').pop();
    assert.equal(service?.url, `http://myapp.${DOMAIN}:${port}/`);
    assert.equal(service?.pathUrl, undefined, 'a chosen name is reached by its host only');
    assert.equal((await visit(relay, `myapp.${DOMAIN}`)).stdout, 'ok');

    await assert.rejects(
      agentOf(relay, other, 'myapp').ready,
      /409 .*"myapp" belongs to another key.*\(subdomain_taken\)$/,
    );
    // Claims are on disk, for the owner only to read.
    const file = join(stateDir, 'subdomains.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).myapp.key, keyLabel(owner.publicKey));

    await first.close();
    await relay.close();
    const restarted = await relayWith({ stateDir });
    await assert.rejects(agentOf(restarted, other, 'myapp').ready, /subdomain_taken/);
    const [back] = await readyWithin(agentOf(restarted, owner, 'myapp'));
    assert.equal(back?.label, 'myapp');
    assert.equal((await visit(restarted, `myapp.${DOMAIN}`)).stdout, 'ok');
  });

  test('a name unused for the keep time goes to the next key that asks; a live one never does', async () => {
    let skew = 0;
    const relay = await relayWith({ clock: () => Date.now() + skew, subdomainKeepMs: 30 * DAY });
    const owner = agentOf(relay, generateAgentKey(), 'shop');
    await readyWithin(owner);
    skew = 31 * DAY;
    // Live: still the owner's, however long ago it was claimed.
    await assert.rejects(agentOf(relay, generateAgentKey(), 'shop').ready, /subdomain_taken/);
    skew = 0;
    await owner.close();
    await until(() => relay.tunnels().every((t) => t.sessions === 0), 'the relay to see the owner go');
    await assert.rejects(agentOf(relay, generateAgentKey(), 'shop').ready, /subdomain_taken/);
    skew = 31 * DAY;
    const [taken] = await readyWithin(agentOf(relay, generateAgentKey(), 'shop'));
    assert.equal(taken?.label, 'shop');
  });

  test('reserved words, the reserved policy with allowed keys, and --subdomains off', async () => {
    const open = await relayWith({});
    await assert.rejects(
      agentOf(open, generateAgentKey(), 'admin').ready,
      /"admin" is reserved by the relay \(subdomain_taken\)/,
    );
    assert.throws(
      () => agentOf(open, generateAgentKey(), '-bad-'),
      /subdomain "-bad-" of service "default" must be one DNS label/,
    );

    const listed = generateAgentKey();
    const unlisted = generateAgentKey();
    const dir = mkdtempSync(join(tmpdir(), 'postern-allowed-'));
    const allowedKeys = join(dir, 'allowed-keys');
    writeFileSync(
      allowedKeys,
      `${keyLabel(listed.publicKey)} subdomains=store,blog\n${keyLabel(unlisted.publicKey)}\n`,
    );
    const reserved = await relayWith({ subdomains: 'reserved', allowedKeysFile: allowedKeys });
    assert.equal((await readyWithin(agentOf(reserved, listed, 'store')))[0]?.label, 'store');
    await assert.rejects(
      agentOf(reserved, listed, 'other', 'second').ready,
      /may claim only the subdomains .* not "other" \(registration_not_admitted\)/,
    );
    await assert.rejects(
      agentOf(reserved, unlisted, 'blog').ready,
      /"blog" is reserved for another key \(subdomain_taken\)/,
    );

    const off = await relayWith({ subdomains: 'off' });
    await assert.rejects(
      agentOf(off, generateAgentKey(), 'anything').ready,
      /\(--subdomains off\) \(registration_not_admitted\)/,
    );
    // Key-derived labels keep working everywhere.
    const plain = createAgent({
      relay: off.addresses[0] as string,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
    });
    running.push(() => plain.close());
    assert.match((await readyWithin(plain))[0]?.label ?? '', /^[a-z2-7]{52}$/);
  });

  describe('cluster mode', () => {
    let redis: Redis;
    before(async () => {
      redis = await startRedis();
    });
    after(() => redis.stop());

    test('one owner across nodes: a claim on node a is refused to another key on node b', async () => {
      const node = (id: string) =>
        relayWith({ redis: redis.socketPath, nodeId: id, clusterSecret: CLUSTER_SECRET });
      const a = await node('a');
      const b = await node('b');
      await readyWithin(agentOf(a, generateAgentKey(), 'team'));
      await assert.rejects(agentOf(b, generateAgentKey(), 'team').ready, /subdomain_taken/);
      // A visitor on node b reaches the tunnel held on node a by its chosen name.
      assert.equal((await visit(b, `team.${DOMAIN}`)).stdout, 'ok');
    });
  });

  test('postern expose --subdomain: the ready line, and a refused claim is one line and exit 1', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'postern-subdomains-'));
    const relay = startCli([
      'relay',
      '--listen',
      'tcp://127.0.0.1:0',
      '--domain',
      DOMAIN,
      '--admin',
      'off',
      '--state-dir',
      stateDir,
      '--json',
    ]);
    running.push(async () => {
      await relay.stop();
    });
    const listening = await relay.nextEvent((e) => e.event === 'listening');
    const address = (listening.listen as string[])[0] as string;
    const keys = mkdtempSync(join(tmpdir(), 'postern-keys-'));
    const expose = (key: string) =>
      startCli([
        'expose',
        origin.url,
        '--subdomain',
        'demo',
        '--relay',
        address,
        '--key',
        join(keys, key),
        '--json',
      ]);
    for (const key of ['a.key', 'b.key']) {
      const keygen = startCli(['keygen', '--out', join(keys, key)]);
      assert.equal(await keygen.exited, 0);
    }
    const first = expose('a.key');
    running.push(async () => {
      await first.stop('SIGINT');
    });
    const ready = await first.nextEvent((e) => e.event === 'ready');
    const [service] = ready.services as { label: string; url: string }[];
    assert.equal(service?.label, 'demo');
    assert.equal(service?.url, `http://demo.${DOMAIN}:${address.split(':').pop()}/`);
    const second = expose('b.key');
    const error = await second.nextEvent((e) => e.event === 'error');
    assert.match(String(error.message), /"demo" belongs to another key.*\(subdomain_taken\)$/);
    assert.equal(await second.exited, 1);
  });
});
