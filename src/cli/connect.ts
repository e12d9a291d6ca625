import type { Socket } from 'node:net';
import { Client } from '../client/client.js';
import { parseConnectionString } from '../connection-string/index.js';
import { errorCodeOf } from '../errors.js';
import { joinDuplex } from '../stream/join-duplex.js';
import { describeListener, listenOn } from '../transport/listen.js';
import { headerArgument, jsonLine, parseOptions, UsageError } from './args.js';
import { connectionString } from './option-checks.js';
import type { OptionDef } from './option-table.js';
import { onShutdownSignal } from './signals.js';

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
    await new Promise<void>((resolve, reject) => {
      process.stdin.pipe(remote);
      remote.pipe(process.stdout);
      remote.once('error', reject);
      remote.once('close', () => resolve());
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
