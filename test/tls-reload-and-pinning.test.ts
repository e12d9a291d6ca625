import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { connect } from '../src/transport/connect.js';
import { makeCertificates, type TestCertificates } from './helpers/certs.js';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { readyWithin } from './helpers/tunnel.js';
import { until } from './helpers/wait.js';

/** The pin of a certificate's public key, computed by openssl (not by the code under test). */
function opensslPin(certFile: string): string {
  const hash = execFileSync('sh', [
    '-c',
    `openssl x509 -in '${certFile}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`,
  ]);
  return `sha256/${hash.toString().trim()}`;
}

/** Whether a TLS handshake with 127.0.0.1:`port` verifies against `ca`. */
function verifiesWith(port: number, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: execFileSync('cat', [ca]),
    });
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('TLS for agent sessions: a wrong CA named, certificates reloaded from disk, public-key pinning', () => {
  let first: TestCertificates;
  let second: TestCertificates;
  let served: { dir: string; cert: string; key: string };
  let origin: Origin;
  let relay: Relay;
  let plainPort: number;
  let tlsPort: number;
  before(async () => {
    first = makeCertificates();
    second = makeCertificates();
    const dir = mkdtempSync(join(tmpdir(), 'postern-served-'));
    served = { dir, cert: join(dir, 'relay.pem'), key: join(dir, 'relay.key') };
    copyFileSync(first.cert, served.cert);
    copyFileSync(first.key, served.key);
    origin = await startOrigin();
    relay = await createRelay({
      listen: ['tcp://127.0.0.1:0', 'tcps://127.0.0.1:0'],
      tlsCert: served.cert,
      tlsKey: served.key,
      tlsReloadIntervalMs: 50,
    });
    plainPort = Number((relay.addresses[0] as string).split(':').pop());
    tlsPort = Number((relay.addresses[1] as string).split(':').pop());
  });
  after(async () => {
    await relay.close();
    await origin.close();
    for (const dir of [first.dir, second.dir, served.dir]) rmSync(dir, { recursive: true, force: true });
  });

  const firstDisconnect = async (relayAddress: string, extra: { pin?: string } = {}): Promise<string> => {
    const agent = createAgent({
      relay: relayAddress + (extra.pin === undefined ? '' : `&pin=${extra.pin}`),
      key: generateAgentKey(),
      services: [{ target: origin.url }],
    });
    try {
      const [event] = (await once(agent, 'disconnected', { signal: AbortSignal.timeout(10_000) })) as [
        { reason: string },
      ];
      return event.reason;
    } finally {
      await agent.close();
    }
  };

  test('a wrong CA: the error names the certificate problem, the name checked and the CA file', async () => {
    const reason = await firstDisconnect(`wss://localhost:${tlsPort}?ca=${second.ca}`);
    assert.match(
      reason,
      /^cannot connect to wss:\/\/localhost:\d+\/_postern\/agent\?ca=.*: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN) \(.*\); checked "localhost" against the CAs in /,
    );
    assert.ok(reason.endsWith(second.ca));
  });

  test('a name the certificate does not cover: the mismatch and the name are in the error', async () => {
    const reason = await firstDisconnect(`wss://localhost:${tlsPort}?ca=${first.ca}&sni=relay.example.com`);
    assert.match(
      reason,
      /ERR_TLS_CERT_ALTNAME_INVALID .*relay\.example\.com.*; checked "relay\.example\.com"/,
    );
  });

  test('public-key pinning: the right pin connects, a wrong one is refused with both keys named', async () => {
    const pin = opensslPin(first.cert);
    const agent = createAgent({
      relay: `wss://localhost:${tlsPort}?ca=${first.ca}&pin=${pin}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
    });
    try {
      const [service] = await readyWithin(agent);
      assert.equal(
        (await curlResponse([`http://127.0.0.1:${plainPort}/${service?.label}/echo`])).status,
        200,
      );
    } finally {
      await agent.close();
    }
    const wrong = opensslPin(second.cert);
    const reason = await firstDisconnect(`tcps://localhost:${tlsPort}?ca=${first.ca}`, { pin: wrong });
    assert.equal(
      reason,
      `cannot connect to tcps://localhost:${tlsPort}/_postern/agent?http_preflight=true&ca=${first.ca}&pin=${wrong}: ` +
        `POSTERN_PIN_MISMATCH (the server's public key ${pin} is not one of the pinned keys (pin=${wrong})); ` +
        `checked "localhost" against the CAs in ${first.ca}`,
    );
    // A backup pin next to the current one (key rotation) is enough.
    const socket = await connect(`tcps://localhost:${tlsPort}?ca=${first.ca}&pin=${wrong},${pin}`);
    socket.destroy();
  });

  test('the certificate replaced on disk: new connections use it without a restart, open sessions stay', async () => {
    const before = createAgent({
      relay: `wss://localhost:${tlsPort}?ca=${first.ca}`,
      key: generateAgentKey(),
      services: [{ target: origin.url }],
      connections: 1,
    });
    try {
      const [service] = await readyWithin(before);
      copyFileSync(second.key, served.key);
      copyFileSync(second.cert, served.cert);
      await until(() => verifiesWith(tlsPort, second.ca), 'the relay serving the new certificate');
      assert.equal(await verifiesWith(tlsPort, first.ca), false, 'and no longer the old one');

      const after = createAgent({
        relay: `wss://localhost:${tlsPort}?ca=${second.ca}`,
        key: generateAgentKey(),
        services: [{ target: origin.url }],
      });
      try {
        const [renewed] = await readyWithin(after);
        assert.equal(
          (await curlResponse([`http://127.0.0.1:${plainPort}/${renewed?.label}/echo`])).status,
          200,
        );
      } finally {
        await after.close();
      }
      // The session made under the old certificate still carries requests.
      assert.equal(
        (await curlResponse([`http://127.0.0.1:${plainPort}/${service?.label}/echo`])).status,
        200,
      );
    } finally {
      await before.close();
      copyFileSync(first.key, served.key);
      copyFileSync(first.cert, served.cert);
    }
  });
});
