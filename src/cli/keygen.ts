import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { KeyFileError } from '../errors.js';
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
  // The default folder is made on first use; a folder named on the command line must exist, so a
  // typo in --out is an error and not a new directory tree.
  if (values.out !== undefined && !existsSync(dirname(resolve(values.out))))
    throw new KeyFileError(`--out ${values.out}: the folder ${dirname(resolve(values.out))} does not exist`);
  const key = generateAgentKey();
  writeKeyFile(path, key);
  const label = keyLabel(key.publicKey);
  if (values.json) jsonLine({ event: 'key', path, label });
  else process.stdout.write(`wrote ${path}\nlabel ${label}\n`);
}
