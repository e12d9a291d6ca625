import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { makeCertificates, type TestCertificates } from './helpers/certs.js';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startTunnel } from './helpers/tunnel.js';

describe('TLS: relay on tcps://, agent verifying it, https targets', () => {
  let certs: TestCertificates;
  let origin: Origin;
  let relay: Relay;
  let port: number;
  before(async () => {
    certs = makeCertificates();
    origin = await startOrigin();
    relay = await createRelay({
      listen: ['tcps://127.0.0.1:0'],
      tlsCert: certs.cert,
      tlsKey: certs.key,
      domain: 'tunnel.test',
    });
    port = Number((relay.addresses[0] as string).split(':').pop());
  });
  after(async () => {
    await relay.close();
    await origin.close();
    rmSync(certs.dir, { recursive: true, force: true });
  });

  test('an agent dials tcps:// with ca=, visitors use https:// and the target sees X-Forwarded-Proto https', async () => {
    const agent = createAgent({
      relay: `tcps://localhost:${port}?ca=${certs.ca}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
    });
    try {
      const [service] = await agent.ready;
      assert.match(service?.url ?? '', /^https:\/\/[a-z2-7]{52}\.tunnel\.test:\d+\/$/);
      const res = await curlResponse([
        '--cacert',
        certs.ca,
        '--connect-to',
        `::127.0.0.1:${port}`,
        `${service?.url}echo`,
      ]);
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).headers['x-forwarded-proto'], 'https');
    } finally {
      await agent.close();
    }
  });

  test('without the CA the agent refuses the relay and says why', async () => {
    const agent = createAgent({
      relay: `tcps://localhost:${port}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
    });
    try {
      const event = await new Promise<{ reason: string }>((resolve) => agent.once('disconnected', resolve));
      assert.match(
        event.reason,
        /cannot connect to tcps:\/\/localhost:\d+\/_postern\/agent\?http_preflight=true: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/,
      );
    } finally {
      await agent.close();
    }
  });

  test('https target: GETs share one connection, a new one resumes the TLS session, and the name verified is the target’s', async () => {
    const connections = new Set<unknown>();
    const servernames: (string | false | null)[] = [];
    const target = createServer(
      { cert: readFileSync(certs.cert), key: readFileSync(certs.key) },
      (req, res) => {
        connections.add(req.socket);
        if (req.url === '/close') res.setHeader('connection', 'close');
        res.end(`resumed=${(req.socket as TLSSocket).isSessionReused()}`);
      },
    );
    target.on('secureConnection', (socket: TLSSocket) => servernames.push(socket.servername));
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const tunnel = await startTunnel(
      `https://localhost:${(target.address() as AddressInfo).port}?ca=${certs.ca}`,
    );
    const url = (path: string): string => `${tunnel.service.url.replace(/\/$/, '')}${path}`;
    try {
      for (let i = 0; i < 5; i++) assert.equal((await curlResponse([url('/')])).body, 'resumed=false');
      assert.equal(connections.size, 1, 'five GETs, one connection');
      await curlResponse([url('/close')]);
      const next = await curlResponse([url('/')]);
      assert.equal(connections.size, 2);
      assert.equal(next.body, 'resumed=true', 'the second connection resumed the first one’s session');
      // The visitor's Host (<label>.localhost:<port>) reached the target, but TLS named the target.
      assert.deepEqual([...new Set(servernames)], ['localhost']);
    } finally {
      await tunnel.close();
      target.closeAllConnections();
      target.close();
    }
  });

  test('https target: verified with ca=, and 502 naming the certificate error without it', async () => {
    const target = createServer(
      { cert: readFileSync(certs.cert), key: readFileSync(certs.key) },
      (_req, res) => res.end('secure target'),
    );
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const targetPort = (target.address() as AddressInfo).port;
    const trusted = await startTunnel(`https://localhost:${targetPort}?ca=${certs.ca}`);
    const untrusted = await startTunnel(`https://localhost:${targetPort}`);
    try {
      const ok = await curlResponse([trusted.service.url]);
      assert.equal(ok.status, 200);
      assert.equal(ok.body, 'secure target');
      const refused = await curlResponse([untrusted.service.url]);
      assert.equal(refused.status, 502);
      assert.equal(refused.headers['postern-error'], 'target_unreachable');
      assert.match(
        refused.body,
        /could not reach https:\/\/localhost:\d+ \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/,
      );
    } finally {
      await trusted.close();
      await untrusted.close();
      target.closeAllConnections();
      target.close();
    }
  });
});
