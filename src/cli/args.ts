import { parseArgs } from 'node:util';
import { PosternError } from '../errors.js';
import type { PreflightHeader } from '../transport/preflight-headers.js';
import { type OptionSpec, type OptionTable, type SpecOf, specOf, valueProblem } from './option-table.js';

/** A mistake in how the command was called; the CLI exits with 2. */
export class UsageError extends PosternError {
  constructor(message: string) {
    super('POSTERN_USAGE', message);
    this.name = 'UsageError';
  }
}

/** util.parseArgs with its errors turned into one-line usage errors. */
export function parseCommandArgs<T extends OptionSpec>(
  argv: string[],
  options: T,
  allowPositionals: boolean,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: boolean; strict: true }>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (error) {
    throw new UsageError(argumentProblem(error as NodeJS.ErrnoException, Object.keys(options)));
  }
}

/** parseArgs' complaint in the words of this CLI, with the option the user probably meant. */
function argumentProblem(error: NodeJS.ErrnoException, known: readonly string[]): string {
  const quoted = /'([^']*)'/.exec(error.message)?.[1] ?? '';
  const flag = quoted.split(' ')[0] ?? quoted;
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const meant = closest(flag.replace(/^-+/, ''), known);
      return `unknown option ${flag}${meant === undefined ? '' : ` (did you mean --${meant}?)`}; --help lists them all`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /argument missing/.test(error.message) ? `${flag} needs a value` : `${flag} takes no value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument "${quoted}": this command takes options only`;
    default:
      return error.message.split('\n')[0] ?? 'bad arguments';
  }
}

/** The known name nearest to `typed` (edit distance at most a third of its length, at least 1). */
export function closest(typed: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(typed.length / 3)) + 1;
  for (const name of known) {
    const distance = editDistance(typed.toLowerCase(), name);
    if (distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(
        (previous[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    previous = row;
  }
  return previous[b.length] as number;
}

/** A command's flags by its option table: parsed, and every value checked as the table says. */
export function parseOptions<T extends OptionTable>(argv: string[], table: T, allowPositionals: boolean) {
  const parsed = parseCommandArgs(argv, specOf(table), allowPositionals);
  for (const [name, value] of Object.entries(parsed.values as Record<string, unknown>)) {
    const option = table[name];
    if (option === undefined) continue;
    for (const one of typeof value === 'string' ? [value] : Array.isArray(value) ? value : []) {
      const problem = valueProblem(`--${name}`, option, String(one));
      if (problem !== undefined) throw new UsageError(problem);
    }
  }
  return parsed as ReturnType<typeof parseCommandArgs<SpecOf<T>>>;
}

/** A non-negative integer flag, with its name in the error. */
export function integerFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number (got "${value}")`);
  return Number(value);
}

/** Writes one JSON object as a line: the --json contract documented in docs/cli.md. */
export function jsonLine(value: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** `--header "Name: value"` is a raw line; `--header Name=value` (no colon before the '=') a pair. */
export function headerArgument(text: string): PreflightHeader {
  const colon = text.indexOf(':');
  const equals = text.indexOf('=');
  return equals > 0 && (colon < 0 || equals < colon) ? [text.slice(0, equals), text.slice(equals + 1)] : text;
}
