import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { hashPassword } from '../src/agent/visitor-access.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { keyLabel } from '../src/keys/label.js';
import { addressKey } from '../src/relay/address-key.js';
import { createRelay } from '../src/relay/relay.js';
import { KeyedTokenBuckets } from '../src/relay/token-bucket.js';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { register, signedRegistration } from './helpers/registration.js';
import { startTunnel } from './helpers/tunnel.js';

/**
 * What one party can make the relay's shared, per-address state hold: an unlisted key costs nothing
 * shared, no address or key can lock listed keys out, and IPv6 hosts count per /64.
 */
describe('per-address limits and what an unlisted key can spend', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-limits-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('an unlisted key spends neither the address budget nor the nonce cache; a full cache still admits', async () => {
    const listed = generateAgentKey();
    const file = join(dir, 'allowed-keys');
    writeFileSync(file, `${keyLabel(listed.publicKey)}\n`);
    const relay = await createRelay({
      listen: ['tcp://127.0.0.1:0'],
      allowedKeysFile: file,
      registrationsPerMinutePerIp: 5,
      maxNonces: 3,
    });
    try {
      const port = Number((relay.addresses[0] as string).split(':').pop());
      const host = `127.0.0.1:${port}`;
      for (let i = 0; i < 20; i++) {
        const answer = await register(port, signedRegistration(generateAgentKey(), host));
        assert.equal(answer.code, 'registration_not_admitted', `unlisted registration ${i + 1}`);
      }
      // Five listed registrations from the same address: the budget is whole, and the cache of
      // three nonces forgets the oldest instead of answering 503 from the fourth on.
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++)
        statuses.push((await register(port, signedRegistration(listed, host))).status);
      assert.deepEqual(statuses, [101, 101, 101, 101, 101]);
      assert.equal(
        (await register(port, signedRegistration(listed, host))).code,
        'registration_rate_limited',
      );
    } finally {
      await relay.close();
    }
  });

  test('IPv6 addresses count per /64 (or the prefix asked for); IPv4 and IPv4-mapped ones one by one', () => {
    assert.equal(addressKey('2001:db8:1:2:aaaa::1', 64), addressKey('2001:db8:1:2:ffff:1:2:3', 64));
    assert.equal(addressKey('2001:db8:1:2::1', 64), '2001:db8:1:2:0:0:0:0/64');
    assert.notEqual(addressKey('2001:db8:1:2::1', 64), addressKey('2001:db8:1:3::1', 64));
    assert.notEqual(addressKey('2001:db8:1:2::1', 128), addressKey('2001:db8:1:2::2', 128));
    assert.equal(addressKey('2001:db8:1:2:3:4:5:6', 56), '2001:db8:1:0:0:0:0:0/56');
    assert.equal(addressKey('64:ff9b::192.0.2.1', 96), '64:ff9b:0:0:0:0:0:0/96');
    assert.equal(addressKey('::ffff:192.0.2.1', 64), '192.0.2.1');
    assert.equal(addressKey('192.0.2.1', 64), '192.0.2.1');
  });

  test('a full limiter forgets the address used longest ago instead of refusing new ones', () => {
    const buckets = new KeyedTokenBuckets(1 / 60, 1, 2);
    const now = 1_000_000;
    assert.equal(buckets.take('a', now), 0);
    assert.equal(buckets.take('b', now), 0);
    assert.ok(buckets.take('a', now) > 0, 'a used its budget');
    // Table full of addresses still counting: a third one is served, and b (longest unused) goes.
    assert.equal(buckets.take('c', now), 0);
    assert.ok(buckets.take('a', now) > 0, 'a is still counted');
  });

  test('password checks from one IPv6 /64 share a budget (addresses as a trusted proxy forwards them)', async () => {
    const origin: Origin = await startOrigin();
    const tunnel = await startTunnel(origin.url, {
      relay: { passwordAttemptsPerMinutePerIp: 2, trustedProxies: ['127.0.0.1'] },
      agent: { services: [{ target: origin.url, access: { basicAuth: [`bob:${hashPassword('right')}`] } }] },
    });
    try {
      const url = `http://${tunnel.service.label}.localhost:${tunnel.port}/`;
      const attempt = (from: string): Promise<number> =>
        curlResponse(['-u', 'bob:wrong', '-H', `X-Forwarded-For: ${from}`, url]).then((r) => r.status);
      // Three hosts of one /64, one attempt each: the third is over the budget of two.
      assert.deepEqual(
        [
          await attempt('2001:db8:7:7::1'),
          await attempt('2001:db8:7:7::2'),
          await attempt('2001:db8:7:7:ffff::3'),
        ],
        [401, 401, 429],
      );
      assert.equal(await attempt('2001:db8:7:8::1'), 401, 'the next /64 has a budget of its own');
    } finally {
      await tunnel.close();
      await origin.close();
    }
  });
});
