import { createAgent } from '../agent/agent.js';
import type { AddressedServiceOptions } from '../agent/options.js';
import { checkService } from '../agent/targets.js';
import type { VisitorAccessOptions } from '../agent/visitor-access.js';
import { errorCodeOf, PosternError } from '../errors.js';
import { CaptureStore, DEFAULT_CAPTURE_LIMITS } from '../inspector/capture-store.js';
import { DEFAULT_INSPECT_ADDRESS, type Inspector, startInspector } from '../inspector/inspector-server.js';
import { defaultKeyPath, loadKeyFile, loadOrCreateKeyFile } from '../keys/key-file.js';
import { keyLabel } from '../keys/label.js';
import { createRelay, type Relay } from '../relay/relay.js';
import type { AssignedService } from '../session/protocol.js';
import { headerArgument, integerFlag, jsonLine, UsageError } from './args.js';
import { parseLayeredArgs } from './config-layers.js';
import { EXPOSE_OPTIONS } from './expose-options.js';
import { loggerFromFlags } from './logger-flags.js';
import { PlainStatus } from './plain-status.js';
import { onShutdownSignal } from './signals.js';
import { TerminalStatus } from './terminal-status.js';

export const exposeUsage =
  'postern expose <[name=]target>... [--tcp] [--name <service>] [--subdomain <name>] [--relay <connection string>]... [--proxy http://[user:pass@]host:port] [--header "Name: value"]... [--relay-host <host>] [--key <file>] [--host-header preserve|rewrite] [--port <n>] [--inspect <host:port> | --no-inspect] [--json]';

export type ExposeValues = ReturnType<typeof parseLayeredArgs<typeof EXPOSE_OPTIONS>>['values'];

/**
 * The services the command's targets and options describe, their names and targets checked as the
 * agent will check them; `postern config check` runs the same.
 */
export function exposeServices(
  values: ExposeValues,
  positionals: string[],
  subdomains: Record<string, string> = {},
): AddressedServiceOptions[] {
  if (positionals.length === 0) {
    throw new UsageError(
      `expose takes one or more targets, e.g. 3000 or http://127.0.0.1:3000 (usage: ${exposeUsage})`,
    );
  }
  if (values.name !== undefined && positionals.length > 1) {
    throw new UsageError('--name names a single target; with several, write each as name=target');
  }
  if (values.subdomain !== undefined && positionals.length > 1) {
    throw new UsageError(
      '--subdomain names a single target; with several, give each its subdomain: in a config file',
    );
  }
  if (values.relay !== undefined && values.port !== undefined)
    throw new UsageError('--port is for the embedded relay; it cannot go with --relay');
  const hostHeader = values['host-header'] as 'preserve' | 'rewrite' | undefined;
  // Each target is `URL` or `name=URL` (several services on one agent, e.g. web and redis).
  const services: AddressedServiceOptions[] = positionals.map((positional) => {
    const named = /^([a-z0-9][a-z0-9-]*)=(.+)$/.exec(positional);
    const name = named ? named[1] : values.name;
    return {
      target: expandTarget(named ? (named[2] as string) : positional, values.tcp === true),
      name,
      hostHeader,
      kind: values.tcp ? 'tcp' : undefined,
      subdomain: values.subdomain ?? subdomains[name ?? 'default'],
    };
  });
  // Visitor access flags apply to every service of this command; the relay enforces them.
  const access: VisitorAccessOptions = {
    basicAuth: values['basic-auth'],
    bearerTokens: values['bearer-token'],
    requireHeaders: values['require-header'],
    allowIps: values['allow-ip'],
    denyIps: values['deny-ip'],
  };
  const guarded = Object.values(access).some((list) => list !== undefined);
  for (const service of services) {
    checkService(service);
    if (guarded) service.access = access;
  }
  return services;
}

/**
 * What ngrok users type: a port (`3000`) for that port on 127.0.0.1, or `host:port`
 * (`localhost:3000`, `[::1]:3000`), as http:// — tcp:// with --tcp. Anything else is taken as written.
 */
export function expandTarget(text: string, tcp: boolean): string {
  const scheme = tcp ? 'tcp' : 'http';
  const port = /^(?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):)?(\d{1,6})$/.exec(text);
  if (port === null) return text;
  const number = Number(port[2]);
  if (number < 1 || number > 65535) throw new UsageError(`target ${text}: a port is 1 to 65535`);
  return `${scheme}://${port[1] ?? '127.0.0.1'}:${number}`;
}

/**
 * `postern expose <target>`: publishes a local HTTP service. Without --relay it starts a relay in
 * this process on 127.0.0.1 (the embedded default), so a tunnel works with nothing else running.
 */
export async function exposeCommand(argv: string[]): Promise<void> {
  const { values, positionals, subdomains } = parseLayeredArgs('expose', argv, EXPOSE_OPTIONS, true);
  const services = exposeServices(values, positionals, subdomains);
  const logger = loggerFromFlags(values, 'warn');
  const targetOf = new Map(services.map((s) => [s.name ?? 'default', s.target]));

  const keyPath = values.key ?? defaultKeyPath();
  const loaded =
    values.key !== undefined ? { key: loadKeyFile(keyPath), created: false } : loadOrCreateKeyFile(keyPath);
  const key = loaded.key;
  if (loaded.created) {
    process.stderr.write(
      `postern: created a new agent key at ${keyPath} (label ${keyLabel(key.publicKey)})\n`,
    );
  }

  let relay: Relay | undefined;
  let relayAddresses = values.relay ?? [];
  if (relayAddresses.length === 0) {
    const port = integerFlag(values.port, 'port') ?? 0;
    relay = await createRelay({
      listen: [`tcp://127.0.0.1:${port}`],
      // Nobody scrapes the embedded relay.
      metrics: false,
      streamWindowBytes: integerFlag(values['stream-window'], 'stream-window'),
      logger: logger.child({ role: 'relay' }),
    });
    relayAddresses = [relay.addresses[0] as string];
  }
  // --no-inspect wins over an --inspect address from any layer (e.g. POSTERN_INSPECT in the environment).
  const captures = values['no-inspect']
    ? undefined
    : new CaptureStore({
        entries: integerFlag(values['inspect-entries'], 'inspect-entries') ?? DEFAULT_CAPTURE_LIMITS.entries,
        bodyBytes: integerFlag(values['inspect-body'], 'inspect-body') ?? DEFAULT_CAPTURE_LIMITS.bodyBytes,
      });
  let assigned: AssignedService[] = [];
  let inspector: Inspector | undefined;
  if (captures !== undefined) {
    try {
      inspector = await startInspector({
        store: captures,
        replay: (request) => agent.replay(request),
        listen: values.inspect ?? DEFAULT_INSPECT_ADDRESS,
        // The default port may be taken by another expose: take the next free one, as ngrok does.
        searchPorts: values.inspect === undefined,
        status: () => ({ services: assigned.map(readyService) }),
      });
    } catch (error) {
      await relay?.close();
      throw new PosternError(
        'POSTERN_INSPECT_LISTEN',
        `${(error as Error).message}; choose another with --inspect or use --no-inspect`,
      );
    }
  }
  const agent = createAgent({
    observer: captures,
    relay: relayAddresses,
    key,
    services,
    connections: integerFlag(values.connections, 'connections'),
    stallTimeoutMs: integerFlag(values['stall-timeout'], 'stall-timeout'),
    maxConcurrentStreams: integerFlag(values['max-streams'], 'max-streams'),
    streamWindowBytes: integerFlag(values['stream-window'], 'stream-window'),
    drainTimeoutMs: integerFlag(values['drain-timeout'], 'drain-timeout'),
    replace: values.replace,
    proxy: values.proxy,
    headers: (values.header ?? []).map(headerArgument),
    relayHost: values['relay-host'],
    // The command keeps trying until it is stopped; its screen says what is wrong meanwhile.
    readyTimeoutMs: 0,
    logger: logger.child({ role: 'agent' }),
  });
  agent.on('connected', (event: { services: AssignedService[] }) => {
    assigned = event.services;
  });
  // On a terminal: one status screen redrawn in place; --plain or a pipe: lines; --json: the contract.
  const status =
    !values.json && !values.plain && process.stdout.isTTY
      ? new TerminalStatus(
          process.stdout,
          targetOf,
          integerFlag(values.connections, 'connections') ?? Math.max(2, relayAddresses.length),
          inspector?.url,
        )
      : undefined;
  if (status !== undefined) {
    agent.on('connected', (event: { connection: number; services: AssignedService[] }) => {
      status.ready(event.services);
      status.connected(event.connection);
    });
    agent.on('disconnected', (event: { connection: number; reason: string }) =>
      status.disconnected(event.connection, event.reason),
    );
    agent.on('request', (event: { method: string; path: string; status: number; durationMs: number }) =>
      status.request(event),
    );
  }
  agent.on('target', (event) => {
    const said = event.reachable
      ? `the target ${event.target} answers again`
      : `the target ${event.target} is not answering (${event.reason ?? 'no answer'}); visitors get 502 until it does`;
    if (values.json) jsonLine({ event: 'target', ...event });
    else if (status !== undefined) status.note(said);
    else process.stderr.write(`postern: ${said}\n`);
  });
  if (!values.json && status === undefined) {
    const plain = new PlainStatus((line) => process.stderr.write(`postern: ${line}\n`));
    agent.on('connected', (event) => plain.connected(event.connection));
    agent.on('disconnected', (event) => plain.disconnected(event));
    agent.on('reconnecting', (event) => plain.reconnecting(event));
  }
  const print = values.json
    ? jsonLine
    : status !== undefined
      ? (event: Record<string, unknown>) => {
          if (event.event === 'error') status.stop(`stopped: ${String(event.message)}`);
        }
      : (event: Record<string, unknown>) => printHuman(event, targetOf);
  let readySeen = false;
  // 'connected' reports a session that came back after a loss, not each session's first start.
  const everConnected = new Set<number>();
  agent.on('connected', (event: { connection: number; services: AssignedService[] }) => {
    if (!readySeen) {
      readySeen = true;
      print({
        event: 'ready',
        services: event.services.map(readyService),
        ...(inspector === undefined ? {} : { inspector: inspector.url }),
      });
    } else if (everConnected.has(event.connection)) {
      print({ event: 'connected', connection: event.connection });
    }
    everConnected.add(event.connection);
  });
  agent.on('disconnected', (event: { connection: number; reason: string }) =>
    print({ event: 'disconnected', ...event }),
  );
  agent.on('reconnecting', (event: { connection: number; attempt: number; delayMs: number }) =>
    print({ event: 'reconnecting', ...event }),
  );
  agent.on('fatal', (error: Error) => {
    print({ event: 'error', code: errorCodeOf(error), message: error.message });
    void shutdown().then(() => process.exit(1));
  });
  const shutdown = async (): Promise<void> => {
    await agent.close();
    await inspector?.close();
    await relay?.close();
  };
  onShutdownSignal(shutdown);
}

/** A service as the ready line shows it: name, kind, label, url, and for TCP services `connect`. */
function readyService({ name, kind, label, url, connect, access }: AssignedService): Record<string, unknown> {
  return {
    name,
    kind,
    label,
    url,
    ...(connect === undefined ? {} : { connect }),
    ...(access === undefined ? {} : { access }),
  };
}

function printHuman(event: Record<string, unknown>, targetOf: Map<string, string>): void {
  switch (event.event) {
    case 'ready':
      for (const s of event.services as AssignedService[]) {
        const guarded = s.access === undefined ? '' : ` (visitors need: ${s.access.join(', ')})`;
        process.stdout.write(`Forwarding ${s.connect ?? s.url} -> ${targetOf.get(s.name) ?? ''}${guarded}\n`);
      }
      if (event.inspector !== undefined) process.stdout.write(`Inspector  ${String(event.inspector)}\n`);
      break;
    case 'error':
      process.stderr.write(`postern: ${String(event.message)}\n`);
      break;
  }
}
