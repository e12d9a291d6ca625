import { homedir } from 'node:os';
import { join } from 'node:path';
import { OptionError } from '../errors.js';
import type { RelayOptions } from '../relay/options.js';
import { checkRelayOptions, createRelay } from '../relay/relay.js';
import { integerFlag, jsonLine, UsageError } from './args.js';
import { parseLayeredArgs } from './config-layers.js';
import { loggerFromFlags } from './logger-flags.js';
import { perSecond } from './option-checks.js';
import { DEFAULT_ADMIN, DEFAULT_RELAY_LISTEN, RELAY_OPTIONS } from './relay-options.js';
import { reloadOnHangup } from './relay-reload.js';
import { onShutdownSignal } from './signals.js';

export const relayUsage =
  'postern relay [--listen <connection string>]... [--domain <name>] [--tls-cert <file> --tls-key <file> | --acme-email <address>] [--public-url <url>] [--json] [...]';

/** systemd's StateDirectory= when set, else the XDG state folder. */
function defaultStateDir(): string {
  return (
    process.env.STATE_DIRECTORY?.split(':')[0] ??
    join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'postern')
  );
}

export async function relayCommand(argv: string[]): Promise<void> {
  const { values } = parseLayeredArgs('relay', argv, RELAY_OPTIONS, false);
  const logger = loggerFromFlags(values, 'info');
  const admin = values.admin ?? DEFAULT_ADMIN;
  const options: RelayOptions = {
    admin: admin === 'off' ? undefined : admin,
    adminToken: values['admin-token'],
    // Metrics are read only through the admin listener here.
    metrics: admin !== 'off',
    allowedKeysFile: values['allowed-keys'],
    maxSessionsPerKey: integerFlag(values['max-sessions-per-key'], 'max-sessions-per-key'),
    maxTunnels: integerFlag(values['max-tunnels'], 'max-tunnels'),
    maxStreamsPerVisitorIp: integerFlag(values['max-streams-per-ip'], 'max-streams-per-ip'),
    // The default address may be taken (another relay on the machine); one asked for must work.
    adminOptional: values.admin === undefined,
    listen: values.listen ?? [DEFAULT_RELAY_LISTEN],
    domain: values.domain,
    basePath: values['base-path'],
    tlsCert: values['tls-cert'],
    tlsKey: values['tls-key'],
    acmeEmail: values['acme-email'],
    acmeDirectory: values['acme-directory'],
    acmeCaFile: values['acme-ca-file'],
    acmeDnsHook: values['acme-dns-hook'],
    acmeChallenge: values['acme-challenge'] as RelayOptions['acmeChallenge'],
    stateDir: values['state-dir'] ?? defaultStateDir(),
    subdomains: values.subdomains as RelayOptions['subdomains'],
    subdomainKeepMs:
      values['subdomain-keep-days'] === undefined
        ? undefined
        : 86_400_000 * (integerFlag(values['subdomain-keep-days'], 'subdomain-keep-days') as number),
    publicUrl: values['public-url'],
    responseTimeoutMs: integerFlag(values['response-timeout'], 'response-timeout'),
    reconnectWaitMs: integerFlag(values['reconnect-wait'], 'reconnect-wait'),
    requestsPerSecondPerTunnel:
      values['rate-limit'] === undefined ? undefined : perSecond(values['rate-limit']),
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
  };
  // Values that only fail together (a cluster secret too short, a wildcard to advertise) are
  // usage mistakes too: exit 2, before anything listens.
  try {
    checkRelayOptions(options);
  } catch (error) {
    throw error instanceof OptionError ? new UsageError(error.message) : error;
  }
  const relay = await createRelay(options);
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
  reloadOnHangup(relay, argv, values);
  onShutdownSignal(async () => {
    await relay.close();
    if (values.json) jsonLine({ event: 'closed' });
  });
}
