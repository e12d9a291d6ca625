import { parseHostPort } from '../http/host-port.js';
import { createRelay } from '../relay/relay.js';

/** The admin listener unless --admin says otherwise: loopback only. */
const DEFAULT_ADMIN = '127.0.0.1:9090';

import { integerFlag, jsonLine, type OptionSpec, UsageError } from './args.js';
import { parseLayeredArgs, RATE } from './config-layers.js';
import { loggerFromFlags } from './logger-flags.js';
import { onShutdownSignal } from './signals.js';

export const relayUsage =
  'postern relay [--listen <connection string>]... [--domain <name>] [--tls-cert <file> --tls-key <file>] [--public-url <url>] [--json] [...]';

/** The options of `postern relay`: flags, POSTERN_* variables and the config file's `relay:` keys. */
export const RELAY_OPTIONS = {
  listen: { type: 'string', multiple: true },
  domain: { type: 'string' },
  'base-path': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'public-url': { type: 'string' },
  'response-timeout': { type: 'string' },
  'reconnect-wait': { type: 'string' },
  'rate-limit': { type: 'string' },
  'rate-burst': { type: 'string' },
  'max-streams': { type: 'string' },
  'max-body': { type: 'string' },
  'stream-window': { type: 'string' },
  'drain-timeout': { type: 'string' },
  'stall-timeout': { type: 'string' },
  'head-timeout': { type: 'string' },
  'registration-rate': { type: 'string' },
  'password-rate': { type: 'string' },
  'ipv6-prefix': { type: 'string' },
  admin: { type: 'string' },
  'admin-token': { type: 'string' },
  'admin-token-file': { type: 'string' },
  'allowed-keys': { type: 'string' },
  'max-sessions-per-key': { type: 'string' },
  'max-tunnels': { type: 'string' },
  'max-streams-per-ip': { type: 'string' },
  'trusted-proxy': { type: 'string', multiple: true },
  redis: { type: 'string' },
  'node-id': { type: 'string' },
  advertise: { type: 'string' },
  'cluster-secret': { type: 'string' },
  'cluster-secret-file': { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies OptionSpec;

/** `--rate-limit 10`, `10/s` or `600/min` as requests per second. */
function rateFlag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!RATE.test(value))
    throw new UsageError(`--rate-limit must be requests per second, or <n>/s or <n>/min (got "${value}")`);
  const [count, unit] = value.split('/');
  return Number(count) / (unit === 'min' ? 60 : 1);
}

export async function relayCommand(argv: string[]): Promise<void> {
  const { values } = parseLayeredArgs('relay', argv, RELAY_OPTIONS, false);
  const logger = loggerFromFlags(values, 'info');
  if (values['public-url'] !== undefined && !URL.canParse(values['public-url'])) {
    throw new UsageError(`--public-url "${values['public-url']}" is not a URL`);
  }
  const admin = values.admin ?? DEFAULT_ADMIN;
  if (admin !== 'off') {
    try {
      parseHostPort(admin);
    } catch (error) {
      throw new UsageError(`--admin ${(error as Error).message}, or off`);
    }
  }
  const relay = await createRelay({
    admin: admin === 'off' ? undefined : admin,
    adminToken: values['admin-token'],
    allowedKeysFile: values['allowed-keys'],
    maxSessionsPerKey: integerFlag(values['max-sessions-per-key'], 'max-sessions-per-key'),
    maxTunnels: integerFlag(values['max-tunnels'], 'max-tunnels'),
    maxStreamsPerVisitorIp: integerFlag(values['max-streams-per-ip'], 'max-streams-per-ip'),
    // The default address may be taken (another relay on the machine); one asked for must work.
    adminOptional: values.admin === undefined,
    listen: values.listen ?? ['tcp://0.0.0.0:8080'],
    domain: values.domain,
    basePath: values['base-path'],
    tlsCert: values['tls-cert'],
    tlsKey: values['tls-key'],
    publicUrl: values['public-url'],
    responseTimeoutMs: integerFlag(values['response-timeout'], 'response-timeout'),
    reconnectWaitMs: integerFlag(values['reconnect-wait'], 'reconnect-wait'),
    requestsPerSecondPerTunnel: rateFlag(values['rate-limit']),
    requestBurstPerTunnel: integerFlag(values['rate-burst'], 'rate-burst'),
    maxConcurrentStreamsPerTunnel: integerFlag(values['max-streams'], 'max-streams'),
    maxRequestBodyBytes: integerFlag(values['max-body'], 'max-body'),
    streamWindowBytes: integerFlag(values['stream-window'], 'stream-window'),
    drainTimeoutMs: integerFlag(values['drain-timeout'], 'drain-timeout'),
    stallTimeoutMs: integerFlag(values['stall-timeout'], 'stall-timeout'),
    headersTimeoutMs: integerFlag(values['head-timeout'], 'head-timeout'),
    registrationsPerMinutePerIp: integerFlag(values['registration-rate'], 'registration-rate'),
    passwordAttemptsPerMinutePerIp: integerFlag(values['password-rate'], 'password-rate'),
    ipv6PrefixBits: integerFlag(values['ipv6-prefix'], 'ipv6-prefix'),
    trustedProxies: values['trusted-proxy'],
    redis: values.redis,
    nodeId: values['node-id'],
    advertise: values.advertise,
    clusterSecret: values['cluster-secret'],
    logger,
  });
  if (values.json) {
    jsonLine({
      event: 'listening',
      listen: relay.addresses,
      domain: relay.domain,
      admin: relay.adminAddress ?? null,
      ...(relay.node === undefined ? {} : { node: relay.node }),
    });
    relay.on('session', (s) =>
      jsonLine({ event: 'session', key: s.keyLabel, services: s.services, remoteAddress: s.remoteAddress }),
    );
    relay.on('session-closed', (s) => jsonLine({ event: 'session-closed', key: s.keyLabel }));
  } else {
    process.stdout.write(
      `postern relay listening on ${relay.addresses.join(', ')} (tunnels at <label>.${relay.domain})\n`,
    );
    if (relay.adminAddress !== undefined)
      process.stdout.write(`admin (metrics, health) on http://${relay.adminAddress}/\n`);
  }
  onShutdownSignal(async () => {
    await relay.close();
    if (values.json) jsonLine({ event: 'closed' });
  });
}
