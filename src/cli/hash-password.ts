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
  const password = process.stdin.isTTY ? await promptHidden('Password: ') : await firstLineOfStdin();
  if (password === '')
    throw new UsageError('give the password on stdin, e.g. printf %s "$PASSWORD" | postern hash-password');
  const hash = hashPassword(password);
  process.stdout.write(values.user === undefined ? `${hash}\n` : `${values.user}:${hash}\n`);
}

/** The first line of a piped stdin, at most 4 KiB. */
async function firstLineOfStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 4096) throw new UsageError('the password on stdin is longer than 4096 bytes');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

/**
 * Reads a password typed on the terminal without echoing it, up to Enter; Backspace deletes,
 * Ctrl+C stops the command (exit 130), Ctrl+D ends the input.
 */
function promptHidden(prompt: string): Promise<string> {
  const input = process.stdin;
  process.stderr.write(prompt);
  input.setRawMode(true);
  input.resume();
  return new Promise((resolve) => {
    let typed = '';
    const finish = (): void => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
    };
    const onData = (chunk: Buffer): void => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n' || char === '\u0004') {
          finish();
          resolve(typed);
          return;
        }
        if (char === '\u0003') {
          finish();
          process.exit(130);
        }
        if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1);
        else if (typed.length < 4096) typed += char;
      }
    };
    input.on('data', onData);
  });
}
