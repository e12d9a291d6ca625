import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { hashPassword, sha256Base64url } from '../src/agent/visitor-access.js';
import { ERROR_CATALOGUE, PosternError } from '../src/errors.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { parseAccess } from '../src/session/access.js';
import { AGENT_PATH, Header } from '../src/session/protocol.js';
import { verifyRegistration } from '../src/session/registration.js';
import { preflightHandshake } from '../src/transport/preflight-handshake.js';
import { signedRegistration } from './helpers/registration.js';

const KNOWN_CODES = new Set<string>(Object.keys(ERROR_CATALOGUE));
const NOW = 1_800_000_000_000;

describe('fuzz: the registration verifier', () => {
  const key = generateAgentKey();
  const valid = signedRegistration(key, 'relay.test:443', { now: NOW });
  const verify = (headers: Record<string, string>) =>
    verifyRegistration({ method: 'GET', path: AGENT_PATH, headers, now: NOW, windowSeconds: 60 });

  test('the untouched registration verifies (so the properties below test something)', () => {
    assert.equal(verify({ ...valid, host: 'relay.test:443' }).ok, true);
  });

  test('arbitrary headers: never throws, a failure always carries a known code and a reason', () => {
    const names = [...Object.keys(valid), 'host', 'x-other'];
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...names), fc.string({ maxLength: 200 })), (headers) => {
        const result = verify(headers);
        if (!result.ok) {
          assert.ok(KNOWN_CODES.has(result.error), result.error);
          assert.ok(result.reason.length > 0);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('one header of a valid registration changed: always refused, never an exception', () => {
    const signedNames = Object.keys(valid);
    fc.assert(
      fc.property(
        fc.constantFrom(...signedNames, 'host'),
        fc.string({ minLength: 1, maxLength: 80 }),
        (name, value) => {
          const headers: Record<string, string> = { ...valid, host: 'relay.test:443' };
          fc.pre(headers[name] !== value);
          headers[name] = value;
          const result = verify(headers);
          assert.equal(result.ok, false, `changed ${name} to ${JSON.stringify(value)} and it still verified`);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('fuzz: visitor access rules in the registration', () => {
  const key = generateAgentKey();
  const rules = {
    default: {
      basic: [`bob:${hashPassword('pw', 10)}`],
      bearer: [sha256Base64url('token-0123456789abcdef')],
      headers: [`x-team:${sha256Base64url('blue')}`],
      allow: ['10.0.0.0/8', '::1'],
      deny: ['10.9.0.0/16'],
    },
  };
  const access = JSON.stringify(rules);
  const guarded = {
    ...signedRegistration(key, 'relay.test:443', { now: NOW, access }),
    host: 'relay.test:443',
  };
  const open = { ...signedRegistration(key, 'relay.test:443', { now: NOW }), host: 'relay.test:443' };
  const verify = (headers: Record<string, string>) =>
    verifyRegistration({ method: 'GET', path: AGENT_PATH, headers, now: NOW, windowSeconds: 60 });

  test('signed rules verify and come out as sent; taken away or added on the way, the signature fails', () => {
    const result = verify(guarded);
    assert.ok(result.ok);
    assert.deepEqual(result.registration.access, rules);
    const stripped: Record<string, string> = { ...guarded };
    delete stripped[Header.access];
    const errorOf = (r: ReturnType<typeof verify>) => (r.ok ? 'verified' : r.error);
    assert.equal(errorOf(verify(stripped)), 'registration_bad_signature');
    assert.equal(errorOf(verify({ ...open, [Header.access]: access })), 'registration_bad_signature');
  });

  test('the rules changed in any way: always refused, never an exception', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (value) => {
        fc.pre(value !== access);
        const result = verify({ ...guarded, [Header.access]: value });
        assert.equal(result.ok, false);
        if (!result.ok) assert.ok(KNOWN_CODES.has(result.error), result.error);
      }),
      { numRuns: 2000 },
    );
  });

  test('the rules parser: any JSON value or text either parses or gives a reason, never throws', () => {
    const names = new Set(['default', 'web']);
    const entry = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.constantFrom('10.0.0.0/8', '::1/129', '1.2.3.4/33', `bob:${hashPassword('x', 10)}`, 'x-a:abc'),
    );
    const rulesValue = fc.dictionary(
      fc.constantFrom('basic', 'bearer', 'headers', 'allow', 'deny', 'other', '__proto__'),
      fc.oneof(fc.array(entry, { maxLength: 70 }), fc.jsonValue()),
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.jsonValue().map((v) => JSON.stringify(v)),
          fc.dictionary(fc.constantFrom('default', 'web', 'ghost'), rulesValue).map((v) => JSON.stringify(v)),
        ),
        (text) => {
          const parsed = parseAccess(text, names);
          if (typeof parsed === 'string') assert.ok(parsed.length > 0);
          else for (const name of Object.keys(parsed)) assert.ok(names.has(name));
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('fuzz: the preflight reply parser, against a real server socket', () => {
  let server: Server;
  let port: number;
  /** What the next connection's "server" sends: these chunks, then the end. */
  let reply: Buffer[] = [];
  before(async () => {
    server = createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        for (const chunk of reply) socket.write(chunk);
        socket.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('any reply, cut anywhere: a socket (101), a refusal or a failure — always a PosternError, never a hang', async () => {
    const statusLines = fc.oneof(
      fc.constantFrom(
        'HTTP/1.1 101 Switching Protocols',
        'HTTP/1.1 404 Not Found',
        'HTTP/1.0 502 Bad Gateway',
        'HTTP/1.1 101',
      ),
      fc.string({ maxLength: 40 }),
    );
    const replies = fc
      .tuple(
        statusLines,
        fc.array(fc.string({ maxLength: 60 }), { maxLength: 5 }),
        fc.boolean(),
        fc.uint8Array({ maxLength: 64 }),
      )
      .map(([status, headers, complete, after]) => {
        const head = [status, ...headers].join('\r\n') + (complete ? '\r\n\r\n' : '');
        return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(after)]);
      });
    await fc.assert(
      fc.asyncProperty(
        replies,
        fc.array(fc.integer({ min: 1, max: 16 }), { maxLength: 8 }),
        async (bytes, cuts) => {
          reply = [];
          let offset = 0;
          for (const size of cuts) {
            if (offset >= bytes.length) break;
            reply.push(bytes.subarray(offset, offset + size));
            offset += size;
          }
          if (offset < bytes.length) reply.push(bytes.subarray(offset));
          const socket: Socket = connect({ host: '127.0.0.1', port });
          await once(socket, 'connect');
          try {
            const upgraded = await preflightHandshake(socket, {
              path: '/x',
              host: 'relay.test',
              token: 'tcp',
              headers: [],
              timeoutMs: 2_000,
            });
            assert.match(bytes.toString('latin1'), /^HTTP\/1\.[01] 101( |\r)/);
            upgraded.destroy();
          } catch (error) {
            assert.ok(error instanceof PosternError, `not a PosternError: ${String(error)}`);
            assert.match(error.code, /^POSTERN_/);
          } finally {
            socket.destroy();
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
