import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { createAgent } from '../src/agent/agent.js';
import type { ServiceOptions } from '../src/agent/options.js';
import { hashPassword } from '../src/agent/visitor-access.js';
import { OptionError } from '../src/errors.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import type { RelayOptions } from '../src/relay/options.js';
import { curlResponse } from './helpers/curl.js';
import { startTcpEcho, startWebSocketEcho } from './helpers/echo.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { startCli } from './helpers/processes.js';
import { startTunnel, type Tunnel } from './helpers/tunnel.js';

const TOKEN = 'tok-0123456789abcdef';

function echoedHeaders(body: string): Record<string, string> {
  return (JSON.parse(body) as { headers: Record<string, string> }).headers;
}

describe('visitor access per tunnel, enforced by the relay', () => {
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(async () => origin.close());

  async function guarded(
    access: ServiceOptions['access'],
    relay: RelayOptions = {},
  ): Promise<Tunnel & { url: string }> {
    const tunnel = await startTunnel(origin.url, {
      relay,
      agent: { services: [{ target: origin.url, access }] },
    });
    return { ...tunnel, url: `http://${tunnel.service.label}.localhost:${tunnel.port}` };
  }

  test('HTTP Basic: the right password passes and is not forwarded; a wrong one, an unknown user or none get 401 with a challenge', async () => {
    const tunnel = await guarded({ basicAuth: ['bob:s3cret', `carol:${hashPassword('pw-two')}`] });
    try {
      assert.deepEqual(tunnel.service.access, ['basic']);
      const ok = await curlResponse(['-u', 'bob:s3cret', `${tunnel.url}/echo`]);
      assert.equal(ok.status, 200);
      assert.equal(
        echoedHeaders(ok.body).authorization,
        undefined,
        'the target never sees the tunnel password',
      );
      assert.equal((await curlResponse(['-u', 'carol:pw-two', `${tunnel.url}/echo`])).status, 200);
      // By path as well as by Host: the same tunnel, the same rules.
      const byPath = `${tunnel.relayUrl}/${tunnel.service.label}/echo`;
      assert.equal((await curlResponse([byPath])).status, 401);
      assert.equal((await curlResponse(['-u', 'bob:s3cret', byPath])).status, 200);

      for (const args of [['-u', 'bob:badpass'], ['-u', 'mallory:s3cret'], ['-u', 'carol:s3cret'], []]) {
        const refused = await curlResponse([...args, `${tunnel.url}/echo`]);
        assert.equal(refused.status, 401, `curl ${args.join(' ')}`);
        assert.equal(refused.headers['postern-error'], 'access_unauthorized');
        assert.equal(refused.headers['www-authenticate'], 'Basic realm="postern", charset="UTF-8"');
        assert.doesNotMatch(refused.body, /s3cret|badpass/, 'errors never echo what was sent');
      }
      // Only the one base64 spelling: Node's decoder skips characters outside the alphabet, which
      // would make every padded or dotted variant of a password one more credential that passes.
      const canonical = Buffer.from('bob:s3cret').toString('base64');
      for (const variant of [
        `${canonical.slice(0, 4)}.${canonical.slice(4)}`,
        `${canonical.slice(0, 4)} ${canonical.slice(4)}`,
        `${canonical}==`,
      ]) {
        const loose = await curlResponse(['-H', `Authorization: Basic ${variant}`, `${tunnel.url}/echo`]);
        assert.equal(loose.status, 401, `Basic ${JSON.stringify(variant)}`);
      }
      assert.equal(
        (await curlResponse(['-H', `Authorization: Basic ${canonical}`, `${tunnel.url}/echo`])).status,
        200,
      );
      assert.equal(
        (await curlResponse(['-H', `Authorization: Bearer ${TOKEN}`, `${tunnel.url}/`])).body,
        'postern: this tunnel takes Basic credentials\n',
      );
    } finally {
      await tunnel.close();
    }
  });

  test('password checks are limited per visitor address (429), while credentials that passed are remembered', async () => {
    const tunnel = await guarded({ basicAuth: ['bob:s3cret'] }, { passwordAttemptsPerMinutePerIp: 3 });
    try {
      assert.equal((await curlResponse(['-u', 'bob:s3cret', `${tunnel.url}/`])).status, 200); // check 1
      for (let i = 0; i < 5; i++)
        assert.equal((await curlResponse(['-u', 'bob:s3cret', `${tunnel.url}/`])).status, 200); // remembered
      assert.equal((await curlResponse(['-u', 'bob:x', `${tunnel.url}/`])).status, 401); // check 2
      assert.equal((await curlResponse(['-u', 'bob:y', `${tunnel.url}/`])).status, 401); // check 3
      const limited = await curlResponse(['-u', 'bob:z', `${tunnel.url}/`]);
      assert.equal(limited.status, 429);
      assert.equal(limited.headers['postern-error'], 'access_rate_limited');
      assert.ok(Number(limited.headers['retry-after']) >= 1);
      // Even the right password is not checked now, unless it passed before.
      assert.equal((await curlResponse(['-u', 'bob:s3cret', `${tunnel.url}/`])).status, 200);
      assert.equal((await curlResponse(['-u', 'bob:s3cret2', `${tunnel.url}/`])).status, 429);
      // Another address has its own budget.
      const other = await curlResponse(['--interface', '127.0.0.2', '-u', 'bob:q', `${tunnel.url}/`]);
      assert.equal(other.status, 401);
    } finally {
      await tunnel.close();
    }
  });

  test('bearer tokens: a listed token passes and is not forwarded; another or a Basic header gets 401', async () => {
    const tunnel = await guarded({ bearerTokens: [TOKEN, 'second-token-0123456789'] });
    try {
      assert.deepEqual(tunnel.service.access, ['bearer']);
      for (const token of [TOKEN, 'second-token-0123456789']) {
        const ok = await curlResponse(['-H', `Authorization: Bearer ${token}`, `${tunnel.url}/echo`]);
        assert.equal(ok.status, 200);
        assert.equal(echoedHeaders(ok.body).authorization, undefined);
      }
      for (const args of [['-H', `Authorization: Bearer ${TOKEN}x`], ['-u', `bob:${TOKEN}`], []]) {
        const refused = await curlResponse([...args, `${tunnel.url}/echo`]);
        assert.equal(refused.status, 401, `curl ${args.join(' ')}`);
        assert.equal(refused.headers['www-authenticate'], 'Bearer realm="postern"');
      }
    } finally {
      await tunnel.close();
    }
  });

  test('IP allow and deny lists, IPv4 and IPv6, and the forwarded address behind a trusted proxy', async () => {
    const key = generateAgentKey();
    const tunnel = await startTunnel(origin.url, {
      key,
      relay: { listen: ['tcp://127.0.0.1:0', 'tcp://[::1]:0'], trustedProxies: ['127.0.0.3'] },
      agent: {
        services: [
          {
            name: 'allow',
            target: origin.url,
            access: { allowIps: ['127.0.0.2/32', '::1/128', '10.0.0.0/8'] },
          },
          { name: 'deny', target: origin.url, access: { denyIps: ['127.0.0.2', '::1'] } },
        ],
      },
    });
    try {
      const services = await tunnel.agent.ready;
      const labelOf = (name: string): string => services.find((s) => s.name === name)?.label as string;
      const v6Port = Number((tunnel.relay.addresses[1] as string).split(':').pop());
      const status = async (service: string, via: string[]): Promise<number> => {
        const v6 = via.includes('::1');
        const url = v6 ? `http://[::1]:${v6Port}/` : `http://127.0.0.1:${tunnel.port}/`;
        const args = v6 ? [] : via;
        const response = await curlResponse(['-H', `Host: ${labelOf(service)}.localhost`, ...args, url]);
        if (response.status === 403) assert.equal(response.headers['postern-error'], 'access_denied');
        return response.status;
      };
      assert.equal(await status('allow', ['--interface', '127.0.0.2']), 200);
      assert.equal(await status('allow', []), 403, '127.0.0.1 is not listed');
      assert.equal(await status('allow', ['::1']), 200);
      assert.equal(await status('deny', ['--interface', '127.0.0.2']), 403);
      assert.equal(await status('deny', []), 200);
      assert.equal(await status('deny', ['::1']), 403);
      // 127.0.0.3 is a trusted proxy: the address it forwards is the one checked.
      const proxied = ['--interface', '127.0.0.3', '-H'];
      assert.equal(await status('allow', [...proxied, 'X-Forwarded-For: 10.1.2.3']), 200);
      assert.equal(await status('allow', [...proxied, 'X-Forwarded-For: 192.0.2.1']), 403);
      // An untrusted peer cannot claim an allowed address.
      assert.equal(await status('allow', ['-H', 'X-Forwarded-For: 10.1.2.3']), 403);
      const denied = await curlResponse(['-H', `Host: ${labelOf('allow')}.localhost`, `${tunnel.relayUrl}/`]);
      assert.equal(denied.body, 'postern: visitor address 127.0.0.1 may not use this tunnel\n');
    } finally {
      await tunnel.close();
    }
  });

  test('a required header: the right value passes and is not forwarded; a wrong or missing one gets 403', async () => {
    const tunnel = await guarded({ requireHeaders: ['X-Proxy-Token: abc 123'] });
    try {
      assert.deepEqual(tunnel.service.access, ['header']);
      const ok = await curlResponse(['-H', 'X-Proxy-Token: abc 123', `${tunnel.url}/echo`]);
      assert.equal(ok.status, 200);
      assert.equal(echoedHeaders(ok.body)['x-proxy-token'], undefined);
      for (const args of [['-H', 'X-Proxy-Token: abc 124'], []]) {
        const refused = await curlResponse([...args, `${tunnel.url}/echo`]);
        assert.equal(refused.status, 403);
        assert.equal(refused.body, 'postern: this tunnel requires a valid x-proxy-token header\n');
      }
    } finally {
      await tunnel.close();
    }
  });

  test('all rules together: every one must hold', async () => {
    const tunnel = await guarded({
      basicAuth: ['bob:s3cret'],
      bearerTokens: [TOKEN],
      requireHeaders: ['X-Team: blue'],
      allowIps: ['127.0.0.0/8'],
    });
    try {
      assert.deepEqual(tunnel.service.access, ['basic', 'bearer', 'header', 'ip']);
      const team = ['-H', 'X-Team: blue'];
      assert.equal((await curlResponse([...team, '-u', 'bob:s3cret', `${tunnel.url}/`])).status, 200);
      assert.equal(
        (await curlResponse([...team, '-H', `Authorization: Bearer ${TOKEN}`, `${tunnel.url}/`])).status,
        200,
      );
      assert.equal((await curlResponse(['-u', 'bob:s3cret', `${tunnel.url}/`])).status, 403);
      const none = await curlResponse([...team, `${tunnel.url}/`]);
      assert.equal(none.status, 401);
      assert.equal(
        none.headers['www-authenticate'],
        'Basic realm="postern", charset="UTF-8", Bearer realm="postern"',
      );
    } finally {
      await tunnel.close();
    }
  });

  test('a WebSocket to a guarded HTTP tunnel: with credentials it opens, without it is refused with 401', async () => {
    const echo = await startWebSocketEcho();
    const tunnel = await startTunnel(echo.target, {
      agent: { services: [{ target: echo.target, access: { basicAuth: ['bob:s3cret'] } }] },
    });
    try {
      const url = `ws://127.0.0.1:${tunnel.port}/${tunnel.service.label}/`;
      const refused = new WebSocket(url);
      refused.on('error', () => {});
      const [, response] = (await once(refused, 'unexpected-response')) as [unknown, { statusCode: number }];
      assert.equal(response.statusCode, 401);
      refused.terminate();
      const auth = `Basic ${Buffer.from('bob:s3cret').toString('base64')}`;
      const ws = new WebSocket(url, { headers: { authorization: auth } });
      await once(ws, 'open');
      ws.send('hello');
      const [message] = (await once(ws, 'message')) as [Buffer];
      assert.equal(message.toString(), 'hello');
      ws.close();
    } finally {
      await tunnel.close();
      await echo.close();
    }
  });

  test('a TCP service: the preflight is checked; postern connect with user:password@ gets through, without it exits with one line', async () => {
    const echo = await startTcpEcho();
    const tunnel = await startTunnel(`tcp://127.0.0.1:${echo.port}`, {
      agent: {
        services: [
          {
            name: 'redis',
            target: `tcp://127.0.0.1:${echo.port}`,
            access: { basicAuth: ['bob:s3cret'], bearerTokens: [TOKEN] },
          },
        ],
      },
    });
    try {
      const host = `${tunnel.service.label}.localhost:${tunnel.port}`;
      const through = startCli(['connect', `tcp://bob:s3cret@${host}?http_preflight=true`]);
      through.child.stdin.write('ping\n');
      const [echoed] = (await once(through.child.stdout, 'data')) as [Buffer];
      assert.equal(echoed.toString(), 'ping\n');
      through.child.stdin.end();
      assert.equal(await through.exited, 0);

      const withToken = startCli([
        'connect',
        `tcp://${host}?http_preflight=true`,
        '--header',
        `Authorization: Bearer ${TOKEN}`,
      ]);
      withToken.child.stdin.end('pong\n');
      const [echoed2] = (await once(withToken.child.stdout, 'data')) as [Buffer];
      assert.equal(echoed2.toString(), 'pong\n');
      assert.equal(await withToken.exited, 0);

      const refused = startCli(['connect', `tcp://bob:nope@${host}?http_preflight=true`]);
      refused.child.stdin.end();
      assert.equal(await refused.exited, 1);
      const lines = refused.stderr().trim().split('\n');
      assert.equal(lines.length, 1, refused.stderr());
      assert.match(lines[0] as string, /^postern connect: .*401.*wrong user name or password/);
      assert.doesNotMatch(refused.stderr(), /nope/, 'the password is not echoed');

      // The preflight through curl: refused before any stream, with the challenge.
      const raw = await curlResponse(['-H', 'Connection: Upgrade', '-H', 'Upgrade: tcp', `http://${host}/`]);
      assert.equal(raw.status, 401);
      assert.match(raw.headers['www-authenticate'] ?? '', /^Basic realm="postern"/);
    } finally {
      await tunnel.close();
      await echo.close();
    }
  });

  test('an agent does not publish a guarded service through a relay that does not confirm the rules', async () => {
    // A relay that answers 101 but ignores Postern-Access (an old or a lying one).
    const fake = createHttpServer();
    fake.on('upgrade', (_req, socket: Socket) => {
      const assigned = JSON.stringify([{ name: 'default', kind: 'http', label: 'x', url: 'http://x/' }]);
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: postern-session/3\r\npostern-assigned: ${assigned}\r\n\r\n`,
      );
    });
    fake.listen(0, '127.0.0.1');
    await once(fake, 'listening');
    const port = (fake.address() as { port: number }).port;
    const agent = createAgent({
      relay: `tcp://127.0.0.1:${port}`,
      key: generateAgentKey(),
      connections: 1,
      services: [{ target: origin.url, access: { bearerTokens: [TOKEN] } }],
    });
    try {
      await assert.rejects(agent.ready, /did not confirm the access rules of service "default"/);
    } finally {
      await agent.close();
      fake.closeAllConnections();
      fake.close();
    }
  });

  test('bad access options stop the agent at start, naming the entry but never a secret', () => {
    const cases: [ServiceOptions['access'], RegExp][] = [
      [{ bearerTokens: ['short-secret'] }, /a bearer token must be at least 16 visible ASCII characters/],
      [{ basicAuth: ['nopassword'] }, /--basic-auth must be user:password/],
      [{ basicAuth: ['bob:'] }, /Basic user "bob" has an empty password/],
      [{ basicAuth: ['bob:a', 'bob:b'] }, /Basic user "bob" is given twice/],
      [
        {
          basicAuth: [
            'bob:$scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g',
          ],
        },
        /scrypt parameters/,
      ],
      [{ requireHeaders: ['X-Token'] }, /--require-header must be "Name: value"/],
      [{ allowIps: ['10.0.0.0/33'] }, /--allow-ip "10.0.0.0\/33": the prefix length must be 0-32/],
      [{ denyIps: ['example.com'] }, /--deny-ip "example.com" is not an IP address/],
      [{ allowIps: Array.from({ length: 65 }, (_, i) => `10.0.${i}.0/24`) }, /at most 64 allowed addresses/],
    ];
    for (const [access, expected] of cases) {
      assert.throws(
        () =>
          createAgent({
            relay: 'tcp://127.0.0.1:1',
            key: generateAgentKey(),
            services: [{ target: origin.url, access }],
          }),
        (error: Error) => {
          assert.ok(error instanceof OptionError, error.message);
          assert.match(error.message, expected);
          assert.doesNotMatch(error.message, /short-secret|\bb\b.*\ba\b/);
          return true;
        },
      );
    }
  });
});
