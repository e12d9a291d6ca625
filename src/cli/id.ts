import { defaultKeyPath, loadKeyFile } from '../keys/key-file.js';
import { keyLabel } from '../keys/label.js';
import { jsonLine, parseOptions } from './args.js';
import type { OptionDef } from './option-table.js';

export const idUsage = 'postern id [--key <file>] [--json]';

export const ID_OPTIONS = {
  key: {
    value: '<file>',
    help: 'the key whose label to print',
    default: '`$XDG_CONFIG_HOME/postern/agent.key` or `~/.config/postern/agent.key`',
  },
  json: { help: '{"event":"id","path":…,"label":…} on stdout', default: 'off' },
} as const satisfies Record<string, OptionDef>;

export function idCommand(argv: string[]): void {
  const { values } = parseOptions(argv, ID_OPTIONS, false);
  const path = values.key ?? defaultKeyPath();
  const label = keyLabel(loadKeyFile(path).publicKey);
  if (values.json) jsonLine({ event: 'id', path, label });
  else process.stdout.write(`${label}\n`);
}
