import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { makeCertificates, servedCertificate, type TestCertificates } from './helpers/certs.js';
import { curl } from './helpers/curl.js';
import { startCli } from './helpers/processes.js';
import { readyWithin } from './helpers/tunnel.js';

const DOMAIN = 'tunnel.test';

describe('TLS passthrough: the relay routes by SNI and never decrypts', () => {
  let relayCerts: TestCertificates;
  let targetCerts: TestCertificates;
  let target: Server;
  let targetPort: number;
  const seenByTarget: string[] = [];
  let relay: Relay;
  let httpPort: number;
  let tlsPort: number;
  const cleanups: (() => Promise<void> | void)[] = [];

  before(async () => {
    relayCerts = makeCertificates(['localhost', `*.${DOMAIN}`]);
    targetCerts = makeCertificates([`*.${DOMAIN}`]);
    target = createServer(
      { cert: readFileSync(targetCerts.cert), key: readFileSync(targetCerts.key) },
      (req, res) => {
        seenByTarget.push(`${req.method} ${req.url} ${req.headers.host}`);
        res.end('end to end');
      },
    );
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    targetPort = (target.address() as { port: number }).port;
    cleanups.push(() => new Promise<void>((resolve) => target.close(() => resolve())));
    relay = await createRelay({
      listen: ['tcp://127.0.0.1:0', 'tcps://127.0.0.1:0'],
      domain: DOMAIN,
      tlsCert: relayCerts.cert,
      tlsKey: relayCerts.key,
    });
    cleanups.push(() => relay.close());
    [httpPort, tlsPort] = relay.addresses.map((a) => Number(a.split(':').pop())) as [number, number];
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function expose(services: Parameters<typeof createAgent>[0]['services']) {
    const agent = createAgent({ relay: `tcp://127.0.0.1:${httpPort}`, key: generateAgentKey(), services });
    cleanups.push(() => agent.close());
    return readyWithin(agent);
  }

  function curlVia(url: string, ca: string, extra: string[] = []) {
    const host = new URL(url).hostname;
    return curl(['--cacert', ca, '--resolve', `${host}:${tlsPort}:127.0.0.1`, ...extra, url]);
  }

  test('a visitor verifies the target’s own certificate; the relay’s would not do', async () => {
    const [service] = await expose([{ name: 'secure', target: `tls://127.0.0.1:${targetPort}` }]);
    assert.ok(service !== undefined);
    assert.equal(service.kind, 'tls');
    assert.match(service.url, new RegExp(`^https://[a-z0-9-]+\\.tunnel\\.test:${tlsPort}/$`));
    const host = new URL(service.url).hostname;

    const visit = await curlVia(`${service.url}path?q=1`, targetCerts.ca);
    assert.equal(visit.exitCode, 0, visit.stderr);
    assert.equal(visit.stdout, 'end to end');
    assert.deepEqual(seenByTarget.at(-1), `GET /path?q=1 ${host}:${tlsPort}`);
    const withRelayCa = await curlVia(service.url, relayCerts.ca);
    assert.equal(withRelayCa.exitCode, 60, 'the relay’s CA does not sign what the visitor sees');

    // The certificate on the wire is the target's, byte for byte.
    const served = await servedCertificate(tlsPort, host);
    assert.ok(served instanceof X509Certificate, String(served));
    assert.ok(served.checkIssued(new X509Certificate(readFileSync(targetCerts.ca))));

    // Plain HTTP to the same name is told where to go instead.
    const plain = await curl([
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-H',
      `Host: ${host}`,
      `http://127.0.0.1:${httpPort}/`,
    ]);
    assert.equal(plain.stdout, '426');
  });

  test('other tunnels on the same listener are still terminated with the relay’s certificate', async () => {
    // An HTTP tunnel whose target is down (port 9): the relay itself answers, over its own TLS.
    const [web] = await expose([{ target: 'http://127.0.0.1:9' }]);
    assert.ok(web !== undefined);
    assert.equal(web.kind, 'http');
    const visit = await curlVia(web.url, relayCerts.ca, ['-o', '/dev/null', '-w', '%{http_code}']);
    assert.equal(visit.exitCode, 0, visit.stderr);
    assert.equal(visit.stdout, '502');
  });

  test('IP rules apply; rules that need plaintext are refused at the agent', async () => {
    const [denied] = await expose([
      { name: 'closed', target: `tls://127.0.0.1:${targetPort}`, access: { denyIps: ['127.0.0.0/8'] } },
    ]);
    assert.ok(denied !== undefined);
    const visit = await curlVia(denied.url, targetCerts.ca);
    assert.notEqual(visit.exitCode, 0);
    assert.ok(!seenByTarget.some((line) => line.includes(new URL(denied.url).hostname)));
    assert.throws(
      () =>
        createAgent({
          relay: `tcp://127.0.0.1:${httpPort}`,
          key: generateAgentKey(),
          services: [{ target: `tls://127.0.0.1:${targetPort}`, access: { basicAuth: ['u:p'] } }],
        }),
      /passes TLS through .*only --allow-ip and --deny-ip apply/,
    );
  });

  test('a relay without a tcps listener refuses a TLS service: service_unsupported, and the agent stops', async () => {
    const plainRelay = await createRelay({ listen: ['tcp://127.0.0.1:0'], domain: DOMAIN });
    cleanups.push(() => plainRelay.close());
    const agent = createAgent({
      relay: plainRelay.addresses[0] as string,
      key: generateAgentKey(),
      services: [{ target: `tls://127.0.0.1:${targetPort}` }],
    });
    cleanups.push(() => agent.close());
    await assert.rejects(agent.ready, /service_unsupported|no tcps:\/\/ listener/);
  });

  test('postern expose tls://… --json: kind "tls" and the https URL', async () => {
    const cli = startCli([
      'expose',
      `tls://127.0.0.1:${targetPort}`,
      '--name',
      'secure',
      '--relay',
      `tcp://127.0.0.1:${httpPort}`,
      '--json',
    ]);
    cleanups.push(async () => {
      await cli.stop('SIGINT');
    });
    const ready = await cli.nextEvent((e) => e.event === 'ready');
    const [service] = ready.services as { kind: string; url: string; name: string }[];
    assert.equal(service?.kind, 'tls');
    assert.equal(service?.name, 'secure');
    assert.match(service?.url ?? '', new RegExp(`^https://[a-z0-9-]+\\.tunnel\\.test:${tlsPort}/$`));
    const visit = await curlVia(service?.url as string, targetCerts.ca);
    assert.equal(visit.stdout, 'end to end');
  });
});
