import { hashPassword } from '../agent/visitor-access.js';
import { parseOptions, UsageError } from './args.js';
import type { OptionDef } from './option-table.js';

export const HASH_PASSWORD_OPTIONS = {
  user: {
    value: '<name>',
    help: 'print user:<hash>, ready for --basic-auth',
    doc: 'print `user:<hash>`, ready for `--basic-auth` or a config file',
    default: 'the hash alone',
  },
} as const satisfies Record<string, OptionDef>;

export const hashPasswordUsage = 'postern hash-password [--user <name>] < password';

/**
 * Prints the salted scrypt hash of the password read from stdin (first line), for `--basic-auth
 * user:$scrypt$…` in config files: the plain password then lives nowhere on the agent's machine.
 */
export async function hashPasswordCommand(argv: string[]): Promise<void> {
  const { values } = parseOptions(argv, HASH_PASSWORD_OPTIONS, false);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 4096) throw new UsageError('the password on stdin is longer than 4096 bytes');
    chunks.push(chunk);
  }
  const password = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (password === '')
    throw new UsageError('give the password on stdin, e.g. printf %s "$PASSWORD" | postern hash-password');
  const hash = hashPassword(password);
  process.stdout.write(values.user === undefined ? `${hash}\n` : `${values.user}:${hash}\n`);
}
