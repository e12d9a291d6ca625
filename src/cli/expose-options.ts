import { DEFAULT_AGENT_OPTIONS as D } from '../agent/options.js';
import { DEFAULT_CAPTURE_LIMITS } from '../inspector/capture-store.js';
import { SERVICE_NAME } from '../keys/label.js';
import { MAX_STREAM_WINDOW, MIN_STREAM_WINDOW } from '../mux/windows.js';
import { CONFIG_OPTION, connectionString, hostPort, LOGGING_OPTIONS } from './option-checks.js';
import type { OptionDef } from './option-table.js';

const ms = { value: '<ms>', integer: {} } as const;

/** A proxy URL as --proxy takes it: http:// or socks5[h]://, or '' for none. */
function proxyUrl(value: string): string | undefined {
  if (value === '') return undefined;
  return /^(http|socks5h?):\/\/[^/?#]+\/?$/i.test(value) && URL.canParse(value)
    ? undefined
    : `"${value}" is not http://[user:password@]host:port or socks5[h]://…`;
}

/** Every option of `postern expose`: its flag, `POSTERN_*` variable and `expose:` key in a config file. */
export const EXPOSE_OPTIONS = {
  relay: {
    value: '<cs>',
    multiple: true,
    check: connectionString('tcp', 'tcps', 'ws', 'wss', 'http', 'https', 'unix'),
    help: 'the relay to dial (tcp, tcps, ws, wss, http, https, unix); none: a relay in this process',
    doc: 'the relay to dial: `tcp://host:port`, `tcps://host:port` (TLS, verified; raw HTTP Upgrade), `ws://…`/`wss://…` (WebSocket), `http://…`/`https://…` (same as ws/wss), `unix://localhost:0?path=…`. The path defaults to `/_postern/agent`; see [agent.md](agent.md). Several addresses of one relay deployment (cluster nodes, or one relay by two routes): session *i* starts at address *i* mod *n* and moves to the next address after each loss',
    default: 'none: start a relay in this process on 127.0.0.1',
  },
  proxy: {
    value: '<url>',
    check: proxyUrl,
    help: "reach the relay through an http:// or socks5[h]:// proxy; '' for none",
    doc: "reach the relay through a forward proxy: `http://[user:password@]host:port` (CONNECT, Basic auth from the user info) or `socks5://…`/`socks5h://…` (SOCKS5, user/password auth; `socks5h` lets the proxy resolve the name); `--proxy ''` for none. See [agent.md](agent.md)",
    default: "the relay address's `proxy=`, else `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` unless `NO_PROXY`",
  },
  header: {
    value: '"Name: value"',
    multiple: true,
    help: 'an extra header on the upgrade request to the relay ("Name: value" or Name=value)',
    doc: 'an extra header on the upgrade request to the relay (`"Name: value"` or `Name=value`), e.g. a token a reverse proxy in front of the relay requires',
    default: 'none',
  },
  'relay-host': {
    value: '<host>',
    help: 'the Host header sent to the relay (and signed)',
    default: "the relay address's host:port",
  },
  port: {
    value: '<n>',
    integer: { max: 65_535 },
    help: 'port of the embedded relay (only without --relay)',
    doc: 'port of the embedded relay (only without `--relay`)',
    default: '0 (ephemeral)',
  },
  tcp: {
    help: 'treat the targets as raw TCP services (a port or host:port means tcp://…)',
    doc: 'treat the targets as raw TCP services: a bare port or `host:port` then means `tcp://…`, and a `unix://` target a raw socket (`tcp://` targets always are)',
    default: 'off',
  },
  name: {
    value: '<name>',
    check: (value) => (SERVICE_NAME.test(value) ? undefined : `"${value}" is not 1-32 of a-z, 0-9 and "-"`),
    help: 'the service name of a single target',
    doc: "the service name of a single target (a-z, 0-9, `-`, 1–32); with several targets write `name=target`. `default` uses the key's own label; any other name gets its own label (see protocol.md)",
    default: '`default`',
  },
  key: {
    value: '<file>',
    help: "the agent's ed25519 key (refused if other users can read it)",
    default:
      '`$XDG_CONFIG_HOME/postern/agent.key` or `~/.config/postern/agent.key`, created on first run with a notice on stderr',
  },
  subdomain: {
    value: '<name>',
    help: 'publish a single target as <name>.<domain>, kept for this key',
    doc: 'publish a single target as `<name>.<domain>` instead of its key-derived label: the relay gives a name to the first key that asks and keeps it for that key, also across restarts, until it goes unused for 30 days (`--subdomain-keep-days`); another key gets `subdomain_taken` and the agent stops. In a config file, per service: `services: {web: {target: …, subdomain: myapp}}` ([security.md](security.md#subdomains))',
    default: 'none (the key-derived label)',
  },
  'host-header': {
    value: 'preserve|rewrite',
    choices: ['preserve', 'rewrite'],
    help: "preserve passes the visitor's Host to the target; rewrite sets the target's host:port",
    doc: "`preserve` passes the visitor's Host to the target; `rewrite` sets it to the target's `host:port`",
    default: '`preserve`',
  },
  connections: {
    value: '<n>',
    integer: { min: 1 },
    help: 'sessions kept open to the relay at once',
    doc: "sessions kept open to the relay at once (at least one per `--relay`); the relay spreads requests over them (least busy first), and losing one loses no tunnel and no request that can safely be sent again (see the relay's limits below); each reconnects on its own",
    default: `${D.connections}, or the number of \`--relay\` addresses if more`,
  },
  'stall-timeout': {
    ...ms,
    help: 'cut a target that takes no bytes for this long while data waits for it; 0 = never',
    doc: 'a target that takes no bytes for this long while a request body (or TCP or WebSocket stream) waits for it is cut; idle streams are kept; 0 = never',
    default: String(D.stallTimeoutMs),
  },
  'drain-timeout': {
    ...ms,
    help: 'on SIGINT/SIGTERM, open requests get this long to finish',
    default: String(D.drainTimeoutMs),
  },
  'max-streams': {
    value: '<n>',
    integer: {},
    help: 'streams the relay may open at once on one session',
    doc: "streams (requests, WebSockets, TCP connections) the relay may open at once on one session (announced in the session's SETTINGS frame); raise it with the relay's `--max-streams` for many long-lived connections",
    default: String(D.maxConcurrentStreams),
  },
  'stream-window': {
    value: '<bytes>',
    integer: { min: MIN_STREAM_WINDOW, max: MAX_STREAM_WINDOW },
    help: 'how much of one upload may be in flight from the relay to this agent',
    doc: "how much of one upload may be in flight from the relay to this agent (its receive window per stream, 65536 to 1073741824); one stream moves at most window ÷ round-trip time, so raise it for fast uploads over a long path (1 MiB over 50 ms: about 20 MB/s). A fast upload's window grows by itself up to 8 MiB (see the limits below); the flag sets where it starts. With no `--relay`, it sets the embedded relay's window too",
    default: String(D.streamWindowBytes),
  },
  'basic-auth': {
    value: '<user:password>',
    multiple: true,
    help: 'visitors must send HTTP Basic credentials of one of these users',
    doc: 'visitors must send HTTP Basic credentials of one of these users (at most 16). The agent hashes the password (salted scrypt) before it leaves; `user:$scrypt$…` from `postern hash-password` is taken as is, so a config file need not hold the password',
    default: 'none',
  },
  'bearer-token': {
    value: '<token>',
    multiple: true,
    help: 'visitors may send Authorization: Bearer <token> (16 characters or more)',
    doc: 'visitors may instead (or only) send `Authorization: Bearer <token>` (at most 16, each at least 16 characters); only its SHA-256 leaves the agent',
    default: 'none',
  },
  'basic-auth-file': {
    value: '<file>',
    help: 'the Basic users from a file, one user:password a line',
    doc: 'the same as `--basic-auth` from a file, one `user:password` a line; blank lines and `#` lines skipped. Secrets on a command line are visible to every local user in `ps`, so `postern` warns (one line on stderr) when `--basic-auth`, `--bearer-token`, `--admin-token` or `--cluster-secret` is given as a flag; use these files or `POSTERN_BASIC_AUTH` / `POSTERN_BEARER_TOKEN`',
    default: 'none',
  },
  'bearer-token-file': {
    value: '<file>',
    help: 'the bearer tokens from a file, one a line',
    doc: 'the same as `--bearer-token` from a file, one token a line; blank lines and `#` lines skipped',
    default: 'none',
  },
  'require-header': {
    value: '"Name: value"',
    multiple: true,
    help: 'visitors must send this header with this value',
    doc: 'visitors must send this header with this value (every name given must match, the same name twice = either value)',
    default: 'none',
  },
  'allow-ip': {
    value: '<cidr>',
    multiple: true,
    help: 'only these visitor addresses (IPv4 or IPv6, CIDR or single address)',
    doc: 'only these visitor addresses (IPv4 or IPv6, CIDR or single address; at most 64)',
    default: 'all',
  },
  'deny-ip': {
    value: '<cidr>',
    multiple: true,
    help: 'never these visitor addresses (checked before --allow-ip)',
    doc: 'never these visitor addresses (checked before `--allow-ip`)',
    default: 'none',
  },
  ...CONFIG_OPTION,
  json: {
    help: 'one JSON object per line on stdout',
    doc: 'one JSON object per line on stdout (below)',
    default: 'off',
  },
  plain: { help: 'plain lines even on a terminal', default: 'off' },
  ...LOGGING_OPTIONS,
  'log-level': { ...LOGGING_OPTIONS['log-level'], default: '`warn`' },
  inspect: {
    value: '<host:port>',
    check: hostPort,
    help: 'where the inspector listens; port 0 picks a free one',
    doc: 'where the [inspector](inspector.md) listens (the page and its `/api`); port 0 picks a free one',
    default: '`127.0.0.1:4040`, or the next free port up to 4049 when it is taken',
  },
  'no-inspect': {
    help: 'no inspector: nothing is captured',
    doc: 'no inspector: nothing is captured (wins over `--inspect` from any layer)',
    default: 'inspector on',
  },
  replace: {
    help: 'take the services over from another agent of the same key with another setup',
    doc: 'take the services over when the relay has them live from another agent of the same key with another target or other access rules (the relay closes those sessions). Without it such a registration is refused with 409 `registration_conflict` and the agent stops with one line; an agent with the same target and rules always joins as another session',
    default: 'off',
  },
  'inspect-entries': {
    value: '<n>',
    integer: { min: 1 },
    help: 'exchanges the inspector keeps (the oldest go first)',
    default: String(DEFAULT_CAPTURE_LIMITS.entries),
  },
  'inspect-body': {
    value: '<bytes>',
    integer: {},
    help: 'bytes kept of each request and response body',
    doc: 'bytes kept of each request and response body (the rest is counted, and the body marked truncated)',
    default: String(DEFAULT_CAPTURE_LIMITS.bodyBytes),
  },
} as const satisfies Record<string, OptionDef>;
