import { defaultKeyPath, generateAgentKey, writeKeyFile } from '../keys/key-file.js';
import { keyLabel } from '../keys/label.js';
import { jsonLine, parseCommandArgs } from './args.js';

export const keygenUsage = 'postern keygen [--out <file>] [--json]';

export function keygenCommand(argv: string[]): void {
  const { values } = parseCommandArgs(argv, { out: { type: 'string' }, json: { type: 'boolean' } }, false);
  const path = values.out ?? defaultKeyPath();
  const key = generateAgentKey();
  writeKeyFile(path, key);
  const label = keyLabel(key.publicKey);
  if (values.json) jsonLine({ event: 'key', path, label });
  else process.stdout.write(`wrote ${path}\nlabel ${label}\n`);
}
