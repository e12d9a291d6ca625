import { defaultKeyPath, loadKeyFile } from '../keys/key-file.js';
import { keyLabel } from '../keys/label.js';
import { jsonLine, parseCommandArgs } from './args.js';

export const idUsage = 'postern id [--key <file>] [--json]';

export function idCommand(argv: string[]): void {
  const { values } = parseCommandArgs(argv, { key: { type: 'string' }, json: { type: 'boolean' } }, false);
  const path = values.key ?? defaultKeyPath();
  const label = keyLabel(loadKeyFile(path).publicKey);
  if (values.json) jsonLine({ event: 'id', path, label });
  else process.stdout.write(`${label}\n`);
}
