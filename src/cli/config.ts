import { jsonLine, parseCommandArgs, UsageError } from './args.js';
import { loadSection } from './config-layers.js';
import { EXPOSE_OPTIONS } from './expose.js';
import { RELAY_OPTIONS } from './relay.js';

export const configUsage = 'postern config check <file> [--json]';

/** `postern config check <file>`: reads both sections of a config file and reports the first mistake with its line. */
export async function configCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, { json: { type: 'boolean' } }, true);
  const [action, file, ...extra] = positionals;
  if (action !== 'check' || file === undefined || extra.length > 0)
    throw new UsageError(`usage: ${configUsage}`);
  const relay = loadSection(file, 'relay', RELAY_OPTIONS);
  const expose = loadSection(file, 'expose', EXPOSE_OPTIONS);
  const summary = {
    file,
    relay: Object.keys(relay.values).length,
    expose: Object.keys(expose.values).length,
    services: expose.services.length,
  };
  if (values.json) jsonLine({ event: 'config', ok: true, ...summary });
  else
    process.stdout.write(
      `${file}: ok (relay: ${summary.relay} options; expose: ${summary.expose} options, ${summary.services} services)\n`,
    );
}
