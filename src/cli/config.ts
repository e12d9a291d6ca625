import { accessRulesFor } from '../agent/visitor-access.js';
import { jsonLine, parseOptions, UsageError } from './args.js';
import { loadSection } from './config-layers.js';
import { type ExposeValues, exposeServices } from './expose.js';
import { EXPOSE_OPTIONS } from './expose-options.js';
import type { OptionDef } from './option-table.js';
import { RELAY_OPTIONS } from './relay-options.js';

export const CONFIG_CHECK_OPTIONS = {
  json: { help: '{"event":"config","ok":true,…} on stdout', default: 'off' },
} as const satisfies Record<string, OptionDef>;

export const configUsage = 'postern config check <file> [--json]';

/** `postern config check <file>`: reads both sections of a config file and reports the first mistake with its line. */
export async function configCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseOptions(argv, CONFIG_CHECK_OPTIONS, true);
  const [action, file, ...extra] = positionals;
  if (action !== 'check' || file === undefined || extra.length > 0)
    throw new UsageError(`usage: ${configUsage}`);
  const relay = loadSection(file, 'relay', RELAY_OPTIONS);
  const expose = loadSection(file, 'expose', EXPOSE_OPTIONS);
  // The checks the commands make once their layers are merged, on what the file alone says.
  if (expose.services.length > 0) {
    try {
      const services = exposeServices(expose.values as ExposeValues, expose.services, expose.subdomains);
      const access = services[0]?.access;
      if (access !== undefined) accessRulesFor('default', access);
    } catch (error) {
      throw new UsageError(`${file}: expose: ${(error as Error).message}`);
    }
  }
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
