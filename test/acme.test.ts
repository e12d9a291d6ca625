import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, afterEach, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { type Agent, createAgent } from '../src/agent/agent.js';
import { type AgentKey, generateAgentKey } from '../src/keys/key-file.js';
import { certificateRequest } from '../src/relay/acme/acme-issuer.js';
import type { RelayOptions } from '../src/relay/options.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { freePort } from './helpers/binaries.js';
import { servedCertificate } from './helpers/certs.js';
import { CLUSTER_SECRET } from './helpers/cluster-node.js';
import { curl, curlResponse } from './helpers/curl.js';
import { codeBlocks } from './helpers/doc-lines.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { type Pebble, startPebble } from './helpers/pebble.js';
import { startRedis } from './helpers/redis.js';
import { readyWithin } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

const DOMAIN = 'tunnels.test';

/** The value of one sample of relay's /metrics, or undefined when absent. */
async function metric(relay: Relay, name: string): Promise<number | undefined> {
  const text = await relay.metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('automatic HTTPS with pebble', () => {
  let pebble: Pebble;
  let origin: Origin;
  let httpPort: number;
  let tlsPort: number;
  let root: string;
  const cleanups: (() => Promise<void> | void)[] = [];
  /** Relays and agents of the test running: closed after it, passed or not, so the ports are free again. */
  const running: (() => Promise<void>)[] = [];

  before(async () => {
    [httpPort, tlsPort] = await Promise.all([freePort(), freePort()]);
    origin = await startOrigin();
    cleanups.push(() => new Promise<void>((resolve) => origin.server.close(() => resolve())));
    pebble = await startPebble({ httpPort, tlsPort });
    cleanups.push(() => pebble.stop());
    root = await pebble.issuedRoot();
  });

  afterEach(async () => {
    for (const close of running.splice(0).reverse()) await close();
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /** A relay on the two ports pebble validates, with its own state directory unless given one. */
  async function acmeRelay(options: RelayOptions = {}): Promise<Relay> {
    const stateDir = 'stateDir' in options ? options.stateDir : mkdtempSync(join(tmpdir(), 'postern-acme-'));
    const relay = await createRelay({
      listen: [`tcp://127.0.0.1:${httpPort}`, `tcps://127.0.0.1:${tlsPort}`],
      domain: DOMAIN,
      acmeEmail: 'ops@tunnels.test',
      acmeDirectory: pebble.directory,
      acmeCaFile: pebble.caFile,
      stateDir,
      ...options,
    });
    running.push(() => relay.close());
    return relay;
  }

  async function exposeOrigin(key: AgentKey = generateAgentKey()): Promise<{ agent: Agent; url: string }> {
    const agent = createAgent({
      relay: `tcp://127.0.0.1:${httpPort}`,
      key,
      services: [{ target: origin.url }],
    });
    running.push(() => agent.close());
    const [service] = await readyWithin(agent);
    return { agent, url: (service as { url: string }).url };
  }

  /** curl verifying against pebble's root, with every name of the domain on loopback. */
  function curlHttps(url: string, extra: string[] = []): ReturnType<typeof curl> {
    const host = new URL(url).hostname;
    return curl(['--cacert', root, '--resolve', `${host}:${tlsPort}:127.0.0.1`, ...extra, url]);
  }

  test('a live tunnel gets a certificate on its first visit (TLS-ALPN-01); a made-up name gets no order', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'postern-acme-'));
    const relay = await acmeRelay({ stateDir });
    const key = generateAgentKey();
    const { agent, url } = await exposeOrigin(key);
    assert.match(url, new RegExp(`^https://[a-z0-9]+\\.${DOMAIN.replace('.', '\\.')}:${tlsPort}/$`));

    const visit = await curlHttps(`${url}hello`);
    assert.equal(visit.exitCode, 0, `${visit.stderr}\n${pebble.log().slice(-3000)}`);
    assert.equal(visit.stdout, 'ok');
    // The relay's own name was ordered at start; the tunnel's on its first visit.
    await until(
      async () => (await metric(relay, 'postern_acme_orders_total{result="issued"}')) === 2,
      'two orders',
    );

    const ordersBefore = (pebble.log().match(/POST \/order-plz/g) ?? []).length;
    const stranger = await curlHttps(`https://made-up.${DOMAIN}:${tlsPort}/`);
    assert.notEqual(stranger.exitCode, 0, 'a name that is not a live tunnel is refused');
    const deeper = await curlHttps(`https://a.b.${DOMAIN}:${tlsPort}/`);
    assert.notEqual(deeper.exitCode, 0);
    assert.equal(await metric(relay, 'postern_acme_orders_total{result="issued"}'), 2);
    assert.equal((await metric(relay, 'postern_acme_orders_total{result="failed"}')) ?? 0, 0);
    assert.equal(
      (pebble.log().match(/POST \/order-plz/g) ?? []).length,
      ordersBefore,
      'pebble got no order for the made-up names',
    );

    const host = new URL(url).hostname;
    const served = await servedCertificate(tlsPort, host);
    assert.ok(served instanceof X509Certificate);
    assert.equal(served.subjectAltName, `DNS:${host}`);
    const expiry = await metric(relay, `postern_tls_certificate_expiry_timestamp_seconds{name="${host}"}`);
    assert.equal(expiry, Math.floor(Date.parse(served.validTo) / 1000));

    // Private keys on disk are the owner's alone.
    const folder = join(stateDir, 'acme', readdirSync(join(stateDir, 'acme'))[0] as string);
    assert.equal(statSync(join(folder, 'account.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(folder, 'certificates', `${host}.pem`)).mode & 0o777, 0o600);
    assert.equal(statSync(folder).mode & 0o777, 0o700);

    // Plain HTTP sends browsers to HTTPS; agents still dial it (this agent did).
    const plain = await curlResponse([
      '--resolve',
      `${host}:${httpPort}:127.0.0.1`,
      `http://${host}:${httpPort}/a?b=1`,
    ]);
    assert.equal(plain.status, 308);
    assert.equal(plain.headers.location, `https://${host}:${tlsPort}/a?b=1`);
    // A Host that only ends like the domain never sends a browser to another host.
    const hostile = await curlResponse([
      '-H',
      `Host: evil.example/x.${DOMAIN}`,
      `http://127.0.0.1:${httpPort}/`,
    ]);
    assert.notEqual(hostile.status, 308, `redirected to ${hostile.headers.location}`);

    // After a restart the stored certificate serves at once: no new order.
    await agent.close();
    await relay.close();
    const again = await acmeRelay({ stateDir });
    const { url: sameUrl } = await exposeOrigin(key);
    assert.equal(sameUrl, url);
    const revisit = await curlHttps(`${url}hello`);
    assert.equal(revisit.exitCode, 0, revisit.stderr);
    assert.equal((await metric(again, 'postern_acme_orders_total{result="issued"}')) ?? 0, 0);
    const reserved = await servedCertificate(tlsPort, host);
    assert.ok(reserved instanceof X509Certificate);
    assert.equal(reserved.serialNumber, served.serialNumber);
    await again.close();
  });

  test('HTTP-01 on the plain-HTTP listener', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const relay = await acmeRelay({ acmeChallenge: 'http-01', logger: pino({ level: 'info' }, sink) });
    const { url } = await exposeOrigin();
    const host = new URL(url).hostname;
    const visit = await curlHttps(`${url}`);
    assert.equal(visit.exitCode, 0, `${visit.stderr}\n${pebble.log().slice(-3000)}`);
    const served = await servedCertificate(tlsPort, host);
    assert.ok(served instanceof X509Certificate);
    assert.equal(served.subjectAltName, `DNS:${host}`);
    const challenges = lines.filter((l) => l.includes('ACME challenge ready')).map((l) => JSON.parse(l));
    assert.ok(
      challenges.some((c) => c.name === host && c.challenge === 'http-01'),
      lines.join(''),
    );
    assert.ok(challenges.every((c) => c.challenge === 'http-01'));
    await relay.close();
  });

  test('renewal two thirds into the lifetime, served without a restart', async () => {
    let skew = 0;
    const relay = await acmeRelay({ clock: () => Date.now() + skew, acmeRenewCheckIntervalMs: 100 });
    const { url } = await exposeOrigin();
    const host = new URL(url).hostname;
    assert.equal((await curlHttps(url)).exitCode, 0);
    const first = await servedCertificate(tlsPort, host);
    assert.ok(first instanceof X509Certificate);
    const lifetime = Date.parse(first.validTo) - Date.parse(first.validFrom);
    skew = Date.parse(first.validFrom) + lifetime * 0.7 - Date.now();
    await until(
      async () => {
        const now = await servedCertificate(tlsPort, host);
        return now instanceof X509Certificate && now.serialNumber !== first.serialNumber;
      },
      'a renewed certificate',
      60_000,
    );
    assert.equal((await curlHttps(url)).exitCode, 0);
    await relay.close();
  });

  test('two cluster nodes: one order per name, the challenge answered by whichever node the CA reaches', async () => {
    const redis = await startRedis();
    running.push(() => redis.stop());
    // pebble's DNS sends every check to 127.0.0.1 (node a); node b listens on 127.0.0.2.
    const node = (id: string, address: string) =>
      acmeRelay({
        listen: [`tcp://${address}:${httpPort}`, `tcps://${address}:${tlsPort}`],
        redis: redis.socketPath,
        nodeId: id,
        clusterSecret: CLUSTER_SECRET,
        // Links verify the node's ACME certificate for the domain (SNI added by default) against pebble's root.
        advertise: `tcps://${address}:${tlsPort}?ca=${root}`,
        stateDir: undefined,
      });
    const a = await node('a', '127.0.0.1');
    const b = await node('b', '127.0.0.2');
    const issued = async (relay: Relay) =>
      (await metric(relay, 'postern_acme_orders_total{result="issued"}')) ?? 0;
    await until(
      async () => (await issued(a)) + (await issued(b)) === 1,
      'the domain ordered by one node',
      30_000,
    );
    const { url } = await exposeOrigin();
    const host = new URL(url).hostname;
    // The first visit reaches node b, which orders the name; pebble's check reaches node a.
    const viaB = await curl(['--cacert', root, '--resolve', `${host}:${tlsPort}:127.0.0.2`, `${url}hello`]);
    assert.equal(viaB.exitCode, 0, `${viaB.stderr}\n${pebble.log().slice(-2000)}`);
    assert.equal(viaB.stdout, 'ok');
    const viaA = await curlHttps(`${url}hello`);
    assert.equal(viaA.exitCode, 0, viaA.stderr);
    assert.equal((await issued(a)) + (await issued(b)), 2, 'each name ordered once in the cluster');
    const [fromA, fromB] = await Promise.all([
      servedCertificate(tlsPort, host),
      servedCertificate(tlsPort, host, '127.0.0.2'),
    ]);
    assert.ok(fromA instanceof X509Certificate && fromB instanceof X509Certificate);
    assert.equal(fromA.serialNumber, fromB.serialNumber);
  });

  test('a failed order is not repeated for its pause: handshakes meanwhile are refused without asking the CA', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-dns-hook-'));
    const hook = join(dir, 'failing-hook');
    writeFileSync(hook, '#!/bin/sh\necho "no API token for this zone" >&2\nexit 3\n', { mode: 0o755 });
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const relay = await acmeRelay({ acmeDnsHook: hook, logger: pino({ level: 'info' }, sink) });
    await until(
      async () => (await metric(relay, 'postern_acme_orders_total{result="failed"}')) === 1,
      'the failed wildcard order',
      60_000,
    );
    const failure = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'ACME order failed');
    assert.match(failure?.error ?? '', /the DNS hook .* set exited with 3: no API token for this zone/);
    assert.equal(failure?.retryInSeconds, 300);
    const orders = (pebble.log().match(/POST \/order-plz/g) ?? []).length;
    for (let i = 0; i < 3; i++) {
      const visit = await curlHttps(`https://${DOMAIN}:${tlsPort}/`);
      assert.notEqual(visit.exitCode, 0);
    }
    assert.equal(await metric(relay, 'postern_acme_orders_total{result="failed"}'), 1);
    assert.equal(
      (pebble.log().match(/POST \/order-plz/g) ?? []).length,
      orders,
      'no new order during the pause',
    );
  });

  test('a DNS-01 wildcard through the hook: every tunnel is served by *.<domain>', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-dns-hook-'));
    const hook = join(dir, 'challtestsrv-hook');
    const calls = join(dir, 'calls');
    // docs/acme.md's hook for pebble-challtestsrv, behind one that notes each call.
    const documentedHook = codeBlocks('docs/acme.md', 'sh').find((b) => b.includes('dns-hook-challtestsrv'));
    assert.ok(documentedHook !== undefined, 'docs/acme.md shows the challtestsrv hook');
    writeFileSync(join(dir, 'documented'), documentedHook, { mode: 0o755 });
    writeFileSync(hook, `#!/bin/sh\necho "$1 $2" >> ${calls}\nexec ${join(dir, 'documented')} "$@"\n`);
    process.env.CHALLTESTSRV = pebble.challtestsrv;
    chmodSync(hook, 0o755);
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const relay = await acmeRelay({ acmeDnsHook: hook });
    await until(
      async () => (await metric(relay, 'postern_acme_orders_total{result="issued"}')) === 1,
      'the wildcard order',
      60_000,
    );
    const { url } = await exposeOrigin();
    const visit = await curlHttps(`${url}hello`);
    assert.equal(visit.exitCode, 0, visit.stderr);
    assert.equal(visit.stdout, 'ok');
    const served = await servedCertificate(tlsPort, new URL(url).hostname);
    assert.ok(served instanceof X509Certificate);
    assert.match(served.subjectAltName ?? '', new RegExp(`DNS:\\*\\.${DOMAIN.replace('.', '\\.')}`));
    assert.equal(
      await metric(relay, 'postern_acme_orders_total{result="issued"}'),
      1,
      'one order serves all',
    );
    assert.deepEqual(readFileSync(calls, 'utf8').trim().split('\n').sort(), [
      `clear _acme-challenge.${DOMAIN}`,
      `clear _acme-challenge.${DOMAIN}`,
      `set _acme-challenge.${DOMAIN}`,
      `set _acme-challenge.${DOMAIN}`,
    ]);
    await relay.close();
  });
});

test('a CSR names every name as a SAN, and has a common name only when it fits in 64 characters', async () => {
  const { generateKeyPairSync } = await import('node:crypto');
  const { execFileSync } = await import('node:child_process');
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    format: 'pem',
    type: 'pkcs8',
  });
  const read = async (names: string[]): Promise<string> =>
    execFileSync('openssl', ['req', '-noout', '-subject', '-text'], {
      input: await certificateRequest(names, key.toString()),
    }).toString();
  const long = `${'a'.repeat(52)}.${DOMAIN}`;
  const longText = await read([long]);
  assert.match(longText, /^subject=\s*$/m, 'no common name');
  assert.match(longText, new RegExp(`DNS:${long}`));
  const short = await read([DOMAIN, `*.${DOMAIN}`]);
  assert.match(short, new RegExp(`^subject=CN ?= ?${DOMAIN}$`, 'm'));
  assert.match(short, /DNS:tunnels\.test, DNS:\*\.tunnels\.test/);
});
