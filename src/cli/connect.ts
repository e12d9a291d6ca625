import type { Socket } from 'node:net';
import { Client } from '../client/client.js';
import { parseConnectionString } from '../connection-string/index.js';
import { errorCodeOf } from '../errors.js';
import { joinDuplex } from '../stream/join-duplex.js';
import { describeListener, listenOn } from '../transport/listen.js';
import { headerArgument, integerFlag, jsonLine, parseOptions, UsageError } from './args.js';
import { connectionString } from './option-checks.js';
import type { OptionDef } from './option-table.js';
import { onShutdownSignal } from './signals.js';

/** After stdin ends, a silent server is given this long before the connection is closed, ms. */
const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

export const connectUsage =
  'postern connect <connection string> [--listen tcp://127.0.0.1:<port>] [--header "Name: value" | --header Name=value]... [--upgrade <token>] [--json]';

export const CONNECT_OPTIONS = {
  listen: {
    value: '<cs>',
    check: connectionString('tcp', 'unix'),
    help: 'a local listener; each connection to it gets its own preflight connection',
    doc: 'a local listener (`tcp://127.0.0.1:<port>` or `unix://…`); each connection to it gets its own preflight connection, like `cloudflared access tcp`',
    default: 'stdin and stdout are the stream (an SSH ProxyCommand)',
  },
  header: {
    value: '"Name: value"',
    multiple: true,
    help: 'an extra preflight header ("Name: value" or Name=value), e.g. a proxy token or a cookie',
    doc: 'an extra preflight header (`"Name: value"` or `Name=value`), e.g. a proxy token or a cookie',
    default: 'none',
  },
  upgrade: {
    value: '<token>',
    help: 'the Upgrade token of the preflight',
    default: '`tcp`, or `tcps` for a TLS connection string',
  },
  'half-close': {
    help: 'stdin/stdout mode: pass the end of stdin on as a half-close',
    doc: 'stdin/stdout mode: pass the end of stdin on to the server as a half-close (TCP FIN). Off by default because nginx, like many proxies, closes an upgraded connection when the client half-closes, losing the reply still on its way',
    default: 'off: once stdin ends, wait for the server to close (or `--idle-timeout`)',
  },
  'idle-timeout': {
    value: '<ms>',
    integer: { min: 0, max: 86_400_000 },
    help: 'stdin/stdout mode: after stdin ends, close once the server is silent this long; 0 = never',
    doc: 'stdin/stdout mode: after stdin ended, close the connection once the server has sent nothing for this long; 0 = wait for the server to close',
    default: '30 000',
  },
  json: {
    help: 'JSON lines on stdout (listening, error)',
    doc: 'JSON lines on stdout: `{"event":"listening",…}`, and `{"event":"error","code":…,"message":…}` for a connection that failed',
    default: 'off',
  },
} as const satisfies Record<string, OptionDef>;

/**
 * `postern connect`: reaches a TCP service through the HTTP Upgrade preflight. With --listen, each
 * local connection gets its own preflight connection (like `cloudflared access tcp`); without it,
 * stdin and stdout are the stream (an SSH ProxyCommand).
 */
export async function connectCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseOptions(argv, CONNECT_OPTIONS, true);
  if (positionals.length !== 1)
    throw new UsageError(`connect takes one connection string (usage: ${connectUsage})`);
  const target = parseConnectionString(positionals[0] as string);
  const client = new Client();
  for (const header of values.header ?? []) {
    const parsed = headerArgument(header);
    if (typeof parsed === 'string') client.addHttpPreflightHeader(parsed);
    else client.addHttpPreflightHeader(parsed[0], parsed[1]);
  }
  const options = { upgradeToken: values.upgrade };

  if (values.listen === undefined) {
    const remote = await client.connect(target, options);
    const halfClose = values['half-close'] === true;
    const idleMs = integerFlag(values['idle-timeout'], 'idle-timeout') ?? DEFAULT_IDLE_TIMEOUT_MS;
    await new Promise<void>((resolve, reject) => {
      process.stdin.pipe(remote, { end: halfClose });
      remote.pipe(process.stdout);
      remote.once('error', reject);
      remote.once('close', () => resolve());
      // The request is all sent; the reply may still be on its way. Keep the connection (a
      // half-close would make nginx drop it) until the server closes or falls silent.
      if (!halfClose)
        process.stdin.once('end', () => {
          if (idleMs === 0) return;
          let timer = setTimeout(() => remote.destroy(), idleMs);
          remote.on('data', () => {
            clearTimeout(timer);
            timer = setTimeout(() => remote.destroy(), idleMs);
          });
          remote.once('close', () => clearTimeout(timer));
        });
    });
    return;
  }

  const report = (event: Record<string, unknown>): void => {
    if (values.json) jsonLine(event);
    else if (event.event === 'error') process.stderr.write(`postern connect: ${String(event.message)}\n`);
  };
  const listener = await listenOn(parseConnectionString(values.listen), {}, (local: Socket) => {
    local.pause();
    local.on('error', () => local.destroy());
    client.connect(target, options).then(
      (remote) => {
        if (local.destroyed) remote.destroy();
        else joinDuplex(local, remote);
      },
      (error: Error) => {
        local.destroy();
        report({ event: 'error', code: errorCodeOf(error), message: error.message });
      },
    );
  });
  const address = describeListener(listener.address);
  if (values.json) jsonLine({ event: 'listening', listen: address, connect: positionals[0] });
  else process.stdout.write(`postern connect: listening on ${address} -> ${positionals[0]}\n`);
  onShutdownSignal(async () => {
    listener.destroyConnections();
    await listener.close();
  });
}
