import { MAX_STREAM_WINDOW, MIN_STREAM_WINDOW } from '../mux/windows.js';
import { NODE_ID } from '../relay/cluster/node-endpoint.js';
import { DEFAULT_RELAY_OPTIONS as D, normalizeBasePath } from '../relay/options.js';
import {
  CONFIG_OPTION,
  connectionString,
  hostPort,
  httpUrl,
  LOGGING_OPTIONS,
  rate,
} from './option-checks.js';
import type { OptionDef } from './option-table.js';

/** The admin listener unless --admin says otherwise: loopback only. */
export const DEFAULT_ADMIN = '127.0.0.1:9090';
/** Where `postern relay` listens unless told: every address, port 8080. */
export const DEFAULT_RELAY_LISTEN = 'tcp://0.0.0.0:8080';

const ms = { value: '<ms>', integer: {} } as const;
const count = { value: '<n>', integer: {} } as const;

/** Every option of `postern relay`: its flag, `POSTERN_*` variable and `relay:` key in a config file. */
export const RELAY_OPTIONS = {
  listen: {
    value: '<cs>',
    multiple: true,
    check: connectionString('tcp', 'tcps', 'unix'),
    help: 'where to listen: tcp://host:port, tcps://host:port, unix://localhost:0?path=…',
    doc: '`tcp://host:port`, `tcps://host:port` (needs the two TLS options), `unix://localhost:0?path=…` (a socket file left by a crashed relay is replaced; anything else at the path, a regular file for one, stops the relay instead); port 0 picks a free port',
    default: `\`${DEFAULT_RELAY_LISTEN}\``,
  },
  'tls-cert': {
    value: '<file>',
    help: 'PEM certificate chain for tcps:// listeners, reloaded when it changes',
    doc: 'PEM certificate chain for `tcps://` listeners (with `--tls-key`). The files are checked every 2 s; a changed pair that loads and matches is used for new connections (open ones keep theirs), one that does not is logged and the old pair stays',
  },
  'tls-key': {
    value: '<file>',
    help: 'PEM private key for tcps:// listeners',
    doc: 'PEM private key for `tcps://` listeners (with `--tls-cert`), reloaded with it',
  },
  'acme-email': {
    value: '<address>',
    help: 'get certificates for tcps:// listeners from an ACME CA (Let’s Encrypt), with this contact',
    doc: 'automatic HTTPS ([acme.md](acme.md)): `tcps://` listeners get their certificates from an ACME CA, for the domain and each live tunnel’s name on its first visit (or one wildcard with `--acme-dns-hook`); this is the account’s contact, and giving it agrees to the CA’s terms. Needs `--domain`; instead of `--tls-cert`',
    default: 'none',
  },
  'acme-directory': {
    value: '<url>',
    check: httpUrl,
    help: 'the ACME CA’s directory URL',
    doc: 'the ACME CA’s directory URL, e.g. Let’s Encrypt staging `https://acme-staging-v02.api.letsencrypt.org/directory` while testing',
    default: `Let’s Encrypt production (\`${D.acmeDirectory}\`)`,
  },
  'acme-ca-file': {
    value: '<file>',
    help: 'PEM CA that signs the ACME server’s own HTTPS certificate (private CAs)',
    doc: 'PEM CA that signs the ACME server’s own HTTPS certificate, for private ACME servers such as pebble or step-ca (added to the system roots)',
    default: 'the system roots',
  },
  'acme-dns-hook': {
    value: '<command>',
    help: 'one wildcard certificate by DNS-01: run as <command> set|clear <record> <value>',
    doc: 'one wildcard certificate `*.<domain>` plus `<domain>` by DNS-01 instead of a certificate per name: the executable (run without a shell) is called as `<command> set <record> <value>` and `<command> clear <record> <value>` and must exit 0 once done; examples in [acme.md](acme.md#dns-hooks)',
    default: 'none (a certificate per name)',
  },
  'acme-challenge': {
    value: '<type>',
    choices: ['tls-alpn-01', 'http-01'],
    help: 'how names are proven without a DNS hook: tls-alpn-01 (on 443) or http-01 (on 80)',
    doc: 'how names are proven without a DNS hook: `tls-alpn-01` (the CA connects to port 443, a `tcps://` listener) or `http-01` (the CA asks port 80, a `tcp://` listener)',
    default: `\`${D.acmeChallenge}\``,
  },
  subdomains: {
    value: '<policy>',
    choices: ['open', 'reserved', 'off'],
    help: 'who may ask for a subdomain (expose --subdomain): open, reserved, off',
    doc: 'who may ask for a name of their own (`postern expose --subdomain`): `open` (any admitted key; the first to claim a name keeps it), `reserved` (only names listed for the key in `--allowed-keys` as `subdomains=a,b`), `off` ([security.md](security.md#subdomains))',
    default: `\`${D.subdomains}\``,
  },
  'subdomain-keep-days': {
    value: '<n>',
    integer: { min: 1 },
    help: 'a subdomain unused this many days goes to whoever asks next',
    doc: 'a subdomain whose tunnel has not been live for this many days is released to whoever asks next',
    default: String(D.subdomainKeepMs / 86_400_000),
  },
  'state-dir': {
    value: '<dir>',
    help: 'where subdomain claims and the ACME account and certificates are kept',
    doc: 'where the subdomain claims (`subdomains.json`) and the ACME account key and certificates (`acme/<CA>/`) are kept, folders 0700, files 0600, reused after a restart; in cluster mode Redis keeps both',
    default: '`$STATE_DIRECTORY` (systemd), else `~/.local/state/postern`',
  },
  domain: {
    value: '<name>',
    help: 'tunnels are <label>.<domain>',
    doc: 'tunnels are `<label>.<domain>`',
    default: `\`${D.domain}\``,
  },
  'base-path': {
    value: '<path>',
    check: (value) => {
      try {
        normalizeBasePath(value);
        return undefined;
      } catch {
        return `"${value}" is not a path like /tunnel`;
      }
    },
    help: 'serve everything under this path, e.g. /tunnel',
    doc: 'serve everything under a path, e.g. `/tunnel`: agents dial `tcp://host:port/tunnel`, path routing is `/tunnel/<label>/…`, anything outside gets 404',
    default: 'none (the root)',
  },
  'public-url': {
    value: '<url>',
    check: httpUrl,
    help: 'how visitors reach the relay, to tell agents their URLs',
    doc: 'how visitors reach the relay, used to tell agents their URLs (`https://example.com` → `https://<label>.example.com/`)',
    default: 'scheme and port of the first listener',
  },
  'response-timeout': {
    ...ms,
    help: '504 when the agent sends no response head in time',
    default: String(D.responseTimeoutMs),
  },
  'reconnect-wait': {
    ...ms,
    help: 'a request for a tunnel whose agent is away waits this long for it, then gets 503',
    doc: 'a request for a known tunnel whose agent is away waits this long for it to return, then gets 503',
    default: String(D.reconnectWaitMs),
  },
  'rate-limit': {
    value: '<rate>',
    check: rate,
    help: 'requests per tunnel: <n> or <n>/s a second, <n>/min a minute; 0 = off',
    doc: 'requests per tunnel (token bucket): `<n>` or `<n>/s` a second, `<n>/min` a minute; 0 = off; over it: 429. In cluster mode the bucket is shared by every node ([cluster.md](cluster.md))',
    default: String(D.requestsPerSecondPerTunnel),
  },
  'rate-burst': { ...count, help: 'the rate limit’s bucket size', default: '2 × rate' },
  'max-streams': {
    ...count,
    help: 'concurrent requests per tunnel; over it: 429',
    default: String(D.maxConcurrentStreamsPerTunnel),
  },
  'max-body': {
    value: '<bytes>',
    integer: {},
    help: 'largest request body, 0 = unlimited; over it: 413',
    doc: 'largest request body, 0 = unlimited (bodies stream); over it: 413',
    default: String(D.maxRequestBodyBytes),
  },
  'stream-window': {
    value: '<bytes>',
    integer: { min: MIN_STREAM_WINDOW, max: MAX_STREAM_WINDOW },
    help: 'how much of one download may be in flight from an agent to the relay',
    doc: "how much of one download may be in flight from an agent to the relay (the relay's receive window per stream, 65536 to 1073741824); one stream moves at most window ÷ round-trip time to the agent, so raise it for agents far away (1 MiB over 50 ms: about 20 MB/s); a fast download's window grows by itself up to 8 MiB (see the limits below), the flag sets where it starts; a visitor that stops reading holds up to this much on the relay until `--stall-timeout`",
    default: String(D.streamWindowBytes),
  },
  'drain-timeout': {
    ...ms,
    help: 'on SIGINT/SIGTERM, in-flight requests get this long',
    default: String(D.drainTimeoutMs),
  },
  'head-timeout': {
    ...ms,
    help: 'a visitor must send its whole request head (and finish TLS) within this time',
    doc: 'a visitor must send its whole request head within this time (slowloris); its connection is closed after it (checked every quarter of it). On `tcps://` listeners the TLS handshake must also finish within it, and a connection the peer half-closes before finishing it is closed at once; an agent must send its proof of possession within it after the 101',
    default: String(D.headersTimeoutMs),
  },
  'stall-timeout': {
    ...ms,
    help: 'cut a visitor that takes no bytes for this long while data waits for it; 0 = never',
    doc: 'a visitor that takes no bytes for this long while a response (or WebSocket, or TCP stream) waits for it is cut; idle streams with nothing to send are kept; 0 = never',
    default: String(D.stallTimeoutMs),
  },
  admin: {
    value: '<host:port>',
    check: (value) => (value === 'off' ? undefined : hostPort(value)),
    help: 'the admin listener (metrics, health), or off',
    doc: 'the admin listener: Prometheus `/metrics`, `/healthz`, `/readyz` ([operations.md](operations.md)); keep it private; `off` for none (the relay then keeps no metrics). The default address, if taken, is skipped with a warning; one given must bind',
    default: `\`${DEFAULT_ADMIN}\``,
  },
  'admin-token': {
    value: '<token>',
    help: 'the admin listener needs Authorization: Bearer <token>',
    doc: '`/metrics` and `/api/status` need `Authorization: Bearer <token>`; required when `--admin` is not a loopback address. Requests naming another host than an IP address, `localhost` or the `--admin` host get 421 (DNS rebinding)',
    default: 'none',
  },
  'admin-token-file': {
    value: '<file>',
    help: 'the admin token from a file (one line), kept out of ps',
    doc: 'the admin token from a file (one line), kept out of `ps`; or `POSTERN_ADMIN_TOKEN`',
    default: 'none',
  },
  'allowed-keys': {
    value: '<file>',
    help: 'only the keys listed may register (reloaded when it changes)',
    doc: 'only the keys listed may register: one key label (`postern id`) or base64url public key a line, optionally `names=web,api` (the service names it may publish) and `max-sessions=N`; `#` comments. Checked every 2 s: a changed file applies to new registrations, and sessions of keys taken out (or narrowed) are closed; a file that does not parse is logged and the old list stays. A mistake at start names `file:line` ([security.md](security.md#allowed-keys))',
    default: 'every key admitted',
  },
  'max-sessions-per-key': {
    ...count,
    help: 'sessions one key may hold at once; 0 = unlimited',
    doc: 'sessions one key may hold at once; beyond: 429 `registration_too_many_sessions` (the agent retries), 0 = unlimited',
    default: String(D.maxSessionsPerKey),
  },
  'max-streams-per-ip': {
    ...count,
    help: 'concurrent streams one visitor address may hold across all tunnels; 0 = unlimited',
    doc: "concurrent streams (requests, WebSockets, TCP connections) one visitor address may hold across all tunnels; more get 429 `too_many_streams`. Behind a `--trusted-proxy`, the address it forwards in `X-Forwarded-For` counts, not the proxy's; 0 = unlimited. Twice a tunnel's `--max-streams`: one address can fill at most two tunnels, and an office behind one NAT address still has room",
    default: String(D.maxStreamsPerVisitorIp),
  },
  'max-tunnels': {
    ...count,
    help: 'tunnels the relay holds at most; 0 = unlimited',
    doc: 'tunnels the relay holds at most, online or kept for their 10-minute retention; a registration that would add more gets 503 `relay_busy` with `Retry-After: 60` (the agent retries); 0 = unlimited',
    default: String(D.maxTunnels),
  },
  'registration-rate': {
    ...count,
    help: 'agent registrations per minute per IP address',
    doc: 'agent registrations per minute per IP address (IPv6: per `--ipv6-prefix`; burst the same); over it: 429. Keys an `--allowed-keys` file does not list are refused before this count, so they cannot use it up',
    default: String(D.registrationsPerMinutePerIp),
  },
  'ipv6-prefix': {
    value: '<bits>',
    integer: { min: 1, max: 128 },
    help: 'per-address limits count IPv6 addresses per prefix of this length',
    doc: 'the per-address limits (`--registration-rate`, `--password-rate`) count IPv6 addresses per prefix of this length, since one host usually holds a whole /64; 1–128',
    default: String(D.ipv6PrefixBits),
  },
  'password-rate': {
    ...count,
    help: 'Basic password checks per minute per visitor address; 0 = unlimited',
    doc: 'Basic password checks per minute per visitor address on guarded tunnels (burst the same); over it: 429 `access_rate_limited`. Credentials that passed are remembered (256 per tunnel) and not counted; 0 = unlimited',
    default: String(D.passwordAttemptsPerMinutePerIp),
  },
  'trusted-proxy': {
    value: '<ip>',
    multiple: true,
    help: 'peers whose X-Forwarded-* and Forwarded are extended rather than replaced',
    doc: 'peers whose `X-Forwarded-*`/`Forwarded` are extended rather than replaced',
    default: 'none',
  },
  redis: {
    value: '<url>',
    help: 'cluster mode: the Redis every node shares',
    doc: 'cluster mode ([cluster.md](cluster.md)): the Redis every node shares: `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS), a Unix socket path, `redis-sentinel://host:port[,…]/<master>` or `redis-cluster://host:port[,…]`',
    default: 'none: one node on its own',
  },
  'node-id': {
    value: '<id>',
    check: (value) =>
      NODE_ID.test(value) ? undefined : `"${value}" is not 1-63 letters, digits, ".", "_" or "-"`,
    help: "this node's id in the cluster",
    doc: "this node's id in the cluster (letters, digits, `.`, `_`, `-`; 1–63)",
    default: '`<hostname>-<pid>`',
  },
  advertise: {
    value: '<cs>',
    check: connectionString('tcp', 'tcps'),
    help: 'where the other nodes reach this one (tcp:// or tcps://)',
    doc: 'where the other nodes reach this one (on its public listener); `tcps://` makes node links TLS, verified by the dialing node (`?ca=`, `sni=`, `pin=` may follow)',
    default:
      'the first `tcps://` listener as bound, else the first `tcp://` one; required when that is a wildcard (`0.0.0.0`)',
  },
  'cluster-secret': {
    value: '<secret>',
    help: 'the secret every node shares (16 characters or more)',
    doc: 'the secret every node shares (16 characters or more; better in `--cluster-secret-file` or `POSTERN_CLUSTER_SECRET` than on a command line, where it draws a warning); node links without it are refused',
    default: 'required with `--redis`',
  },
  'cluster-secret-file': {
    value: '<file>',
    help: 'the cluster secret from a file (one line)',
    default: '—',
  },
  ...CONFIG_OPTION,
  json: { help: 'JSON lines on stdout', doc: 'JSON lines on stdout (below)', default: 'off' },
  ...LOGGING_OPTIONS,
  'log-level': { ...LOGGING_OPTIONS['log-level'], default: '`info`' },
} as const satisfies Record<string, OptionDef>;
