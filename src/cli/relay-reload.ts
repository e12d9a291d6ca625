import { isDeepStrictEqual } from 'node:util';
import type { Relay } from '../relay/relay.js';
import { jsonLine } from './args.js';
import { parseLayeredArgs } from './config-layers.js';
import { RELAY_OPTIONS } from './relay-options.js';

/** What a running relay can take from a reloaded configuration; the rest needs a restart. */
const RELOADABLE = new Set(['allowed-keys', 'tls-cert', 'tls-key']);

/**
 * On SIGHUP: reads the configuration again (the --config file, POSTERN_* variables, the original
 * flags), gives the relay the new allowed keys and certificate (read again even when the paths did
 * not change), and says what it reloaded, what failed, and which changed options take effect only
 * after a restart. Sessions and connections stay. A configuration that does not parse changes
 * nothing.
 */
export function reloadOnHangup(relay: Relay, argv: string[], started: Record<string, unknown>): void {
  const json = started.json === true;
  process.on('SIGHUP', () => {
    let next: Record<string, unknown>;
    try {
      next = parseLayeredArgs('relay', argv, RELAY_OPTIONS, false).values as Record<string, unknown>;
    } catch (error) {
      const message = `configuration not reloaded: ${(error as Error).message}`;
      if (json)
        jsonLine({
          event: 'reloaded',
          reloaded: [],
          failed: [{ what: 'configuration', message }],
          restartNeeded: [],
        });
      else process.stderr.write(`postern relay: ${message}\n`);
      return;
    }
    const restartNeeded = Object.keys({ ...started, ...next })
      .filter((name) => !RELOADABLE.has(name) && !isDeepStrictEqual(started[name], next[name]))
      .sort();
    const { reloaded, failed } = relay.reload({
      allowedKeysFile: next['allowed-keys'] as string | undefined,
      tlsCert: next['tls-cert'] as string | undefined,
      tlsKey: next['tls-key'] as string | undefined,
    });
    if (json) {
      jsonLine({ event: 'reloaded', reloaded, failed, restartNeeded });
      return;
    }
    process.stdout.write(
      `postern relay: reloaded ${reloaded.length > 0 ? reloaded.join(', ') : 'nothing to reload'}\n`,
    );
    for (const { what, message } of failed)
      process.stderr.write(`postern relay: ${what} not reloaded, the old ones stay: ${message}\n`);
    if (restartNeeded.length > 0)
      process.stderr.write(
        `postern relay: changed, takes effect after a restart: ${restartNeeded.map((n) => `--${n}`).join(', ')}\n`,
      );
  });
}
