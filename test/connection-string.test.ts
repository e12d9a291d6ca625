import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type ConnectionString,
  formatConnectionString,
  parseConnectionString,
} from '../src/connection-string/index.js';
import { ConnectionStringError, redactSecrets } from '../src/errors.js';

describe('connection strings: valid forms', () => {
  const cases: [string, ConnectionString][] = [
    ['tcp://127.0.0.1:9007', { transport: 'tcp', host: '127.0.0.1', port: 9007, path: '' }],
    [
      'tcp://relay.example.com:80/amps/json?http_preflight=true',
      { transport: 'tcp', host: 'relay.example.com', port: 80, path: '/amps/json', httpPreflight: true },
    ],
    [
      'tcp://h:1/p?&http_preflight=1',
      { transport: 'tcp', host: 'h', port: 1, path: '/p', httpPreflight: true },
    ],
    ['tcp://h:1?http_preflight=0', { transport: 'tcp', host: 'h', port: 1, path: '', httpPreflight: false }],
    [
      // An AMPS connection string with its transport options: accepted as written.
      'tcp://amps.example.com:9007/amps/json?tcp_nodelay=true&tcp_keepalive=true&tcp_sndbuf=131072&tcp_rcvbuf=131072&bind=10.0.0.5:0',
      {
        transport: 'tcp',
        host: 'amps.example.com',
        port: 9007,
        path: '/amps/json',
        tcpNoDelay: true,
        tcpKeepAlive: true,
        tcpSndbuf: 131072,
        tcpRcvbuf: 131072,
        bind: { host: '10.0.0.5', port: 0 },
      },
    ],
    ['tcps://h:1?bind=[::1]', { transport: 'tcps', host: 'h', port: 1, path: '', bind: { host: '::1' } }],
    ['tcp://[::1]:9007', { transport: 'tcp', host: '::1', port: 9007, path: '' }],
    ['TCP://Example.COM:5', { transport: 'tcp', host: 'example.com', port: 5, path: '' }],
    [
      'unix://localhost:0?path=/run/x.sock',
      { transport: 'unix', host: 'localhost', port: 0, path: '', socketPath: '/run/x.sock' },
    ],
    [
      'tcps://user:p%40ss@[2001:db8::1]:443/x?ca=/etc/ca.pem&sni=relay.example.com',
      {
        transport: 'tcps',
        username: 'user',
        password: 'p@ss',
        host: '2001:db8::1',
        port: 443,
        path: '/x',
        ca: '/etc/ca.pem',
        sni: 'relay.example.com',
      },
    ],
    ['wss://relay.example.com', { transport: 'wss', host: 'relay.example.com', port: 443, path: '' }],
    [
      'ws://relay:8080/_postern/agent',
      { transport: 'ws', host: 'relay', port: 8080, path: '/_postern/agent' },
    ],
    ['http://127.0.0.1:3000/', { transport: 'http', host: '127.0.0.1', port: 3000, path: '/' }],
    ['https://localhost', { transport: 'https', host: 'localhost', port: 443, path: '' }],
    ['tcp://user@h:1', { transport: 'tcp', username: 'user', host: 'h', port: 1, path: '' }],
  ];
  for (const [input, expected] of cases) {
    test(input, () => assert.deepEqual(parseConnectionString(input), expected));
  }
});

test('pin= takes base64 or base64url SHA-256 values, several separated by commas, and keeps one spelling', () => {
  const hash = Buffer.alloc(32, 0xfb);
  const cs = parseConnectionString(
    `wss://relay.example.com?pin=sha256/${hash.toString('base64')},sha256/${hash.toString('base64url')}`,
  );
  assert.deepEqual(cs.pin, [`sha256/${hash.toString('base64')}`, `sha256/${hash.toString('base64')}`]);
});

describe('connection strings: each bad one gets its precise error', () => {
  const cases: [string, RegExp][] = [
    ['', /missing "transport:\/\/" at the start/],
    ['127.0.0.1:9007', /missing "transport:\/\/"/],
    ['ftp://h:1', /unknown transport "ftp" \(expected one of tcp, tcps, unix, ws, wss, http, https\)/],
    ['tcp://h', /missing port: tcp needs host:port/],
    ['tcp://:80', /missing host/],
    ['tcp://h:', /port "" is not a number from 0 to 65535/],
    ['tcp://h:65536', /port "65536" is not a number/],
    ['tcp://h:8o', /port "8o" is not a number/],
    ['tcp://::1:9007', /IPv6 addresses must be written in brackets/],
    ['tcp://[::1:9007', /opened with "\[" but not closed/],
    ['tcp://[::g]:1', /"::g" is not an IPv6 address/],
    ['tcp://[::1]x:1', /expected ":port" after "\]"/],
    ['tcp://ho st:1', /a space or control character at character 9/],
    ['tcp://h:1/a#frag', /fragments are not allowed/],
    ['tcp://bad_host!:1', /"bad_host!" is not a valid host name/],
    ['tcp://@h:1', /empty user name before "@"/],
    [
      'tcp://u:%zz@h:1',
      /^bad connection string "tcp:\/\/u:\*\*\*@h:1": password has a malformed percent-escape/,
    ],
    ['tcp://h:1?http_preflight=yes', /http_preflight must be true, false, 1 or 0 \(got "yes"\)/],
    ['tcp://h:1?tcp_nodelay=yes', /tcp_nodelay must be true, false, 1 or 0 \(got "yes"\)/],
    ['tcp://h:1?tcp_sndbuf=64k', /tcp_sndbuf must be a number of bytes \(got "64k"\)/],
    [
      'tcp://h:1?bind=host.example:1',
      /bind must be <ip>\[:<port>\], IPv6 in brackets \(got "host.example:1"\)/,
    ],
    ['tcp://h:1?bind=::1', /bind must be <ip>\[:<port>\]/],
    ['ws://h:1?tcp_keepalive=true', /"tcp_keepalive" does not apply to ws:\/\/ \(only tcp, tcps\)/],
    ['tcp://h:1?http_prefligth=true', /unknown parameter "http_prefligth" \(known: /],
    ['tcp://h:1?http_preflight=true&http_preflight=false', /parameter "http_preflight" given twice/],
    [
      'unix://localhost:0',
      /unix connection string needs \?path=<socket file> \(got "unix:\/\/localhost:0"\)/,
    ],
    ['unix://localhost?path=/x', /missing port: unix needs host:port \(unix strings use localhost:0/],
    ['unix://localhost:0?path=', /path= is empty/],
    ['ws://h:1?http_preflight=true', /"http_preflight" does not apply to ws:\/\/ \(only tcp, tcps, unix\)/],
    ['tcp://h:1?path=/x', /"path" does not apply to tcp:\/\//],
    ['tcp://h:1?ca=/x.pem', /"ca" does not apply to tcp:\/\//],
    ['tcps://h:1?sni=no_t valid', /space or control character/],
    ['tcp://h:1/a b', /space or control character at character 12/],
    ['tcp://h:1/a"b', /path "\/a"b" has characters that must be percent-encoded/],
    [
      'tcp://h:1?proxy=socks4://p:1080',
      /proxy must be http:\/\/ or socks5\[h\]:\/\/\[user:password@\]host:port \(got "socks4:\/\/p:1080"\)/,
    ],
    [
      'tcp://h:1?proxy=http%3A%2F%2Fu%3Asecret%40p',
      /^bad connection string "tcp:\/\/h:1\?proxy=http%3A%2F%2Fu%3A\*\*\*%40p": proxy must be http:\/\/.*\(got "http:\/\/…@p"\)/,
    ],
    ['unix://localhost:0?path=/x&proxy=http://p:1', /"proxy" does not apply to unix:\/\//],
    ['tcp://h:1?pin=sha256/AAAA', /"pin" does not apply to tcp:\/\//],
    [
      'tcps://h:1?pin=sha256/AAAA',
      /pin "sha256\/AAAA" must be sha256\/<base64 of the SHA-256 of the public key/,
    ],
    [`wss://h:1?pin=md5/${'A'.repeat(43)}=`, /pin "md5\/A+=" must be sha256\//],
  ];
  for (const [input, message] of cases) {
    test(JSON.stringify(input), () => {
      assert.throws(
        () => parseConnectionString(input),
        (error: unknown) => {
          assert.ok(error instanceof ConnectionStringError, 'a ConnectionStringError');
          assert.equal(error.code, 'POSTERN_BAD_CONNECTION_STRING');
          assert.match(error.message, message);
          assert.ok(
            error.message.includes(`"${redactSecrets(input)}"`),
            'the message quotes the input, secrets hidden',
          );
          return true;
        },
      );
    });
  }
});

const hostnameArb = fc
  .array(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/), { minLength: 1, maxLength: 4 })
  .map((labels) => labels.join('.'));
const hostArb = fc.oneof(
  hostnameArb,
  fc.ipV4(),
  fc.ipV6().map((ip) => parseIpv6Canonical(ip)),
);
const pathArb = fc.oneof(
  fc.constant(''),
  fc
    .array(fc.stringMatching(/^[A-Za-z0-9\-._~!$&'()*+,;=:@]{0,8}$/), { minLength: 1, maxLength: 4 })
    .map((s) => `/${s.join('/')}`),
);
const textArb = fc.string({ minLength: 1, maxLength: 12 });
const connectionStringArb: fc.Arbitrary<ConnectionString> = fc
  .record({
    transport: fc.constantFrom('tcp', 'tcps', 'unix', 'ws', 'wss', 'http', 'https'),
    host: hostArb,
    port: fc.integer({ min: 0, max: 65535 }),
    path: pathArb,
    user: fc.option(fc.tuple(textArb, fc.option(fc.string({ maxLength: 12 }), { nil: undefined })), {
      nil: undefined,
    }),
    preflight: fc.option(fc.boolean(), { nil: undefined }),
    socketPath: textArb,
    ca: fc.option(textArb, { nil: undefined }),
    sni: fc.option(hostnameArb, { nil: undefined }),
    amps: fc.record({
      noDelay: fc.option(fc.boolean(), { nil: undefined }),
      keepAlive: fc.option(fc.boolean(), { nil: undefined }),
      sndbuf: fc.option(fc.integer({ min: 0, max: 9_999_999_999 }), { nil: undefined }),
      rcvbuf: fc.option(fc.integer({ min: 0, max: 9_999_999_999 }), { nil: undefined }),
      bind: fc.option(
        fc.record({
          host: fc.oneof(
            fc.ipV4(),
            fc.ipV6().map((ip) => parseIpv6Canonical(ip)),
          ),
          port: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
        }),
        { nil: undefined },
      ),
    }),
    pins: fc.option(
      fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { minLength: 1, maxLength: 3 }),
      {
        nil: undefined,
      },
    ),
  })
  .map((r) => {
    const cs: ConnectionString = { transport: r.transport, host: r.host, port: r.port, path: r.path };
    if (r.user) {
      cs.username = r.user[0];
      if (r.user[1] !== undefined) cs.password = r.user[1];
    }
    if ((r.transport === 'tcp' || r.transport === 'tcps') && r.preflight !== undefined)
      cs.httpPreflight = r.preflight;
    if (r.transport === 'tcp' || r.transport === 'tcps') {
      if (r.amps.noDelay !== undefined) cs.tcpNoDelay = r.amps.noDelay;
      if (r.amps.keepAlive !== undefined) cs.tcpKeepAlive = r.amps.keepAlive;
      if (r.amps.sndbuf !== undefined) cs.tcpSndbuf = r.amps.sndbuf;
      if (r.amps.rcvbuf !== undefined) cs.tcpRcvbuf = r.amps.rcvbuf;
      if (r.amps.bind !== undefined)
        cs.bind =
          r.amps.bind.port === undefined
            ? { host: r.amps.bind.host }
            : { host: r.amps.bind.host, port: r.amps.bind.port };
    }
    if (r.transport === 'unix') cs.socketPath = r.socketPath;
    if (r.transport === 'tcps' || r.transport === 'wss' || r.transport === 'https') {
      if (r.ca !== undefined) cs.ca = r.ca;
      if (r.sni !== undefined) cs.sni = r.sni;
      if (r.pins !== undefined) cs.pin = r.pins.map((p) => `sha256/${Buffer.from(p).toString('base64')}`);
    }
    return cs;
  });

/** fast-check's IPv6 strings are valid but not lowercase-canonical in every case; parse lowercases. */
function parseIpv6Canonical(ip: string): string {
  return ip.toLowerCase();
}

describe('connection strings: properties', () => {
  test('parse(format(x)) equals x', () => {
    fc.assert(
      fc.property(connectionStringArb, (cs) => {
        assert.deepEqual(parseConnectionString(formatConnectionString(cs)), cs);
      }),
      { numRuns: 2000 },
    );
  });

  test('format(parse(s)) is a fixed point', () => {
    fc.assert(
      fc.property(connectionStringArb, (cs) => {
        const once = formatConnectionString(parseConnectionString(formatConnectionString(cs)));
        assert.equal(formatConnectionString(parseConnectionString(once)), once);
      }),
      { numRuns: 500 },
    );
  });

  test('arbitrary input either parses or throws a ConnectionStringError, never anything else', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.webUrl().map((u) => u.replace(/^https?/, 'tcp')),
        ),
        (input) => {
          try {
            parseConnectionString(input);
          } catch (error) {
            assert.ok(error instanceof ConnectionStringError, String(error));
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
