import { defaultKeyPath, generateAgentKey, writeKeyFile } from '../keys/key-file.js';
import { keyLabel } from '../keys/label.js';
import { jsonLine, parseOptions } from './args.js';
import type { OptionDef } from './option-table.js';

export const keygenUsage = 'postern keygen [--out <file>] [--json]';

export const KEYGEN_OPTIONS = {
  out: {
    value: '<file>',
    help: 'where to write the key (mode 0600)',
    default: '`$XDG_CONFIG_HOME/postern/agent.key` or `~/.config/postern/agent.key`',
  },
  json: { help: '{"event":"key","path":…,"label":…} on stdout', default: 'off' },
} as const satisfies Record<string, OptionDef>;

export function keygenCommand(argv: string[]): void {
  const { values } = parseOptions(argv, KEYGEN_OPTIONS, false);
  const path = values.out ?? defaultKeyPath();
  const key = generateAgentKey();
  writeKeyFile(path, key);
  const label = keyLabel(key.publicKey);
  if (values.json) jsonLine({ event: 'key', path, label });
  else process.stdout.write(`wrote ${path}\nlabel ${label}\n`);
}
