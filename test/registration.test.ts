import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { Header } from '../src/session/protocol.js';
import { register, signedRegistration } from './helpers/registration.js';

describe('signed registration', () => {
  let relay: Relay;
  let port: number;
  const key = generateAgentKey();
  const sign = (
    overrides: { now?: number; services?: { name: string; kind: 'http' | 'tcp' }[] } = {},
  ): Record<string, string> => signedRegistration(key, `127.0.0.1:${port}`, overrides);

  before(async () => {
    relay = await createRelay({
      listen: ['tcp://127.0.0.1:0'],
      registrationsPerMinutePerIp: 1000,
      admit: (registration) =>
        registration.services.some((s) => s.name === 'forbidden') ? 'service name not allowed here' : true,
    });
    port = Number((relay.addresses[0] as string).split(':').pop());
  });
  after(() => relay.close());

  const assertNothingRegistered = (): void => assert.deepEqual(relay.tunnels(), []);

  test('bad signature: 401 registration_bad_signature, nothing registered', async () => {
    const headers = sign();
    const signature = headers[Header.signature] as string;
    headers[Header.signature] = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);
    const answer = await register(port, headers);
    assert.equal(answer.status, 401);
    assert.equal(answer.code, 'registration_bad_signature');
    assert.match(answer.body, /^postern: signature does not match/);
    assertNothingRegistered();
  });

  test('a field changed after signing (services) is a bad signature', async () => {
    const headers = sign();
    headers[Header.services] = 'default=http,other=http';
    assert.equal((await register(port, headers)).code, 'registration_bad_signature');
    assertNothingRegistered();
  });

  test('stale timestamp: 401 registration_stale naming the clock difference', async () => {
    const answer = await register(port, sign({ now: Date.now() - 3600_000 }));
    assert.equal(answer.status, 401);
    assert.equal(answer.code, 'registration_stale');
    assert.match(answer.body, /timestamp is 360[01] s away from the relay's clock \(allowed: 60 s\)/);
    assertNothingRegistered();
  });

  test('replayed nonce: the first use upgrades, the second gets 401 registration_replayed', async () => {
    const headers = sign();
    const first = await register(port, headers);
    assert.equal(first.status, 101);
    const replay = await register(port, headers);
    assert.equal(replay.status, 401);
    assert.equal(replay.code, 'registration_replayed');
  });

  for (const [what, mutate, reason] of [
    ['missing key', (h: Record<string, string>) => delete h[Header.key], /postern-key must be/],
    [
      'wrong version',
      (h: Record<string, string>) => (h[Header.version] = '9'),
      /postern-version must be "3"/,
    ],
    ['garbage key', (h: Record<string, string>) => (h[Header.key] = 'not base64url!'), /postern-key must be/],
    [
      'bad timestamp',
      (h: Record<string, string>) => (h[Header.timestamp] = 'yesterday'),
      /postern-timestamp must be/,
    ],
    ['short nonce', (h: Record<string, string>) => (h[Header.nonce] = 'abc'), /postern-nonce must be/],
    [
      'bad services',
      (h: Record<string, string>) => (h[Header.services] = 'Default=ftp'),
      /service name "Default"/,
    ],
    ['no services', (h: Record<string, string>) => (h[Header.services] = ''), /must list 1 to 32 services/],
    [
      'bad signature encoding',
      (h: Record<string, string>) => (h[Header.signature] = '!!'),
      /postern-signature must be/,
    ],
  ] as const) {
    test(`garbage (${what}): 400 registration_malformed with the reason`, async () => {
      const headers = sign();
      mutate(headers);
      const answer = await register(port, headers);
      assert.equal(answer.status, 400);
      assert.equal(answer.code, 'registration_malformed');
      assert.match(answer.body, reason);
    });
  }

  test('a registration the admission policy refuses: 403 registration_not_admitted', async () => {
    const answer = await register(port, sign({ services: [{ name: 'forbidden', kind: 'http' }] }));
    assert.equal(answer.status, 403);
    assert.equal(answer.code, 'registration_not_admitted');
    assert.match(answer.body, /service name not allowed here/);
  });

  test('the wrong Upgrade token is refused with 400', async () => {
    const answer = await register(port, { ...sign(), upgrade: 'websocket' });
    assert.equal(answer.status, 400);
  });

  test('too many registrations from one address: 429 registration_rate_limited with Retry-After', async () => {
    const limited = await createRelay({ listen: ['tcp://127.0.0.1:0'], registrationsPerMinutePerIp: 2 });
    try {
      const limitedPort = Number((limited.addresses[0] as string).split(':').pop());
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const headers = signedRegistration(key, `127.0.0.1:${limitedPort}`);
        const answer = await register(limitedPort, headers);
        statuses.push(answer.status);
        if (i === 2) assert.equal(answer.code, 'registration_rate_limited');
      }
      assert.deepEqual(statuses, [101, 101, 429]);
    } finally {
      await limited.close();
    }
  });
});
