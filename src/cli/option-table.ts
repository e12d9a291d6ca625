import type { ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/**
 * One option of a command, defined once: the command-line parser, the `POSTERN_*` variable, the
 * config file's key, the checks on a value (wherever it was written), `--help` and the option
 * tables of docs/cli.md all come from it.
 */
export interface OptionDef {
  /** What the value is, after the flag in help and docs (`<ms>`, `<cs>`); none for a switch. */
  readonly value?: string;
  /** The option may be given several times (a list; comma-separated in a variable). */
  readonly multiple?: boolean;
  /** The value is a whole number, within these bounds when given. */
  readonly integer?: { readonly min?: number; readonly max?: number };
  /** The value is one of these. */
  readonly choices?: readonly string[];
  /** Any further check of one value as written: what is wrong with it (a sentence), or undefined. */
  readonly check?: (value: string) => string | undefined;
  /** One line for `--help`. */
  readonly help: string;
  /** The meaning in docs/cli.md, when it says more than `help`. */
  readonly doc?: string;
  /** The default, as help and docs show it. */
  readonly default?: string;
  /** Set only on a command line: no variable, no config key. */
  readonly commandLineOnly?: boolean;
  /** Hidden from help and docs: an alias kept for scripts. */
  readonly hidden?: boolean;
}

export type OptionTable = Readonly<Record<string, OptionDef>>;

/** util.parseArgs's description of a table, typed so the parsed values keep their shapes. */
export type SpecOf<T extends OptionTable> = {
  [K in keyof T]: T[K] extends { value: string }
    ? T[K] extends { multiple: true }
      ? { type: 'string'; multiple: true }
      : { type: 'string' }
    : { type: 'boolean' };
};

export function specOf<T extends OptionTable>(table: T): SpecOf<T> {
  const spec: OptionSpec = {};
  for (const [name, option] of Object.entries(table)) {
    spec[name] =
      option.value === undefined
        ? { type: 'boolean' }
        : option.multiple === true
          ? { type: 'string', multiple: true }
          : { type: 'string' };
  }
  return spec as SpecOf<T>;
}

/** The environment variable of an option: POSTERN_ + its name in upper snake case. */
export function envName(option: string): string {
  return `POSTERN_${option.toUpperCase().replaceAll('-', '_')}`;
}

/** What is wrong with `value` for the option `name`, or undefined when nothing is. */
export function valueProblem(name: string, option: OptionDef, value: string): string | undefined {
  if (option.integer !== undefined) {
    if (!/^\d+$/.test(value)) return `${name} must be a whole number (got "${value}")`;
    const number = Number(value);
    const { min, max } = option.integer;
    if ((min !== undefined && number < min) || (max !== undefined && number > max)) {
      const range =
        max === undefined ? `at least ${min}` : min === undefined ? `at most ${max}` : `${min} to ${max}`;
      return `${name} must be ${range} (got ${value})`;
    }
  }
  if (option.choices !== undefined && !option.choices.includes(value))
    return `${name} must be one of ${option.choices.join(', ')} (got "${value}")`;
  const problem = option.check?.(value);
  return problem === undefined ? undefined : `${name}: ${problem}`;
}

/** `--name <value>`, as help and docs write the flag. */
export function flagText(name: string, option: OptionDef): string {
  return option.value === undefined ? `--${name}` : `--${name} ${option.value}`;
}

/** The options part of `postern <command> --help`: one line each, aligned. */
export function helpText(table: OptionTable): string {
  const rows = Object.entries(table)
    .filter(([, option]) => option.hidden !== true)
    .map(([name, option]) => {
      const repeat = option.multiple === true ? ' (repeatable)' : '';
      const fallback =
        option.default === undefined ? '' : ` [default: ${option.default.replaceAll('`', '')}]`;
      return [flagText(name, option), `${option.help}${repeat}${fallback}`] as const;
    });
  const width = Math.min(32, Math.max(...rows.map(([flag]) => flag.length)));
  return rows
    .map(([flag, text]) =>
      flag.length > width ? `  ${flag}\n  ${' '.repeat(width)}  ${text}` : `  ${flag.padEnd(width)}  ${text}`,
    )
    .join('\n');
}

/** The Markdown table of a command's options in docs/cli.md. */
export function docsTable(table: OptionTable): string {
  const cell = (text: string): string => text.replaceAll('|', '\\|');
  const rows = Object.entries(table)
    .filter(([, option]) => option.hidden !== true)
    .map(([name, option]) => {
      const repeat = option.multiple === true ? ' (repeatable)' : '';
      return `| \`${cell(flagText(name, option))}\`${repeat} | ${cell(option.doc ?? option.help)} | ${cell(option.default ?? '—')} |`;
    });
  return ['| option | meaning | default |', '|---|---|---|', ...rows].join('\n');
}

const VALUE_WORDS: Record<string, string> = {
  '<ms>': 'ms',
  '<n>': 'count',
  '<bytes>': 'bytes',
  '<bits>': 'bits',
  '<cs>': 'connection string',
  '<file>': 'file',
  '<url>': 'URL',
  '<rate>': 'requests/s, or `<n>/s`, `<n>/min`',
  '"Name: value"': '`Name: value`',
};

/** What a config file's key takes, in words: `ms`, `list of file`, `true/false`. */
export function configValueText(option: OptionDef): string {
  if (option.value === undefined) return 'true/false';
  let text =
    option.choices !== undefined
      ? option.choices.join(', ')
      : (VALUE_WORDS[option.value] ?? option.value.replace(/^<(.*)>$/, '$1'));
  const { min, max } = option.integer ?? {};
  if (min !== undefined && max !== undefined) text += ` (${min}–${max})`;
  else if (min !== undefined) text += ` (at least ${min})`;
  else if (max !== undefined) text += ` (at most ${max})`;
  return option.multiple === true ? `list of ${text}` : text;
}

/** The Markdown table of a command's config-file keys in docs/config.md. */
export function configKeysTable(table: OptionTable, extraRows: readonly string[] = []): string {
  const rows = Object.entries(table)
    .filter(([, option]) => option.commandLineOnly !== true && option.hidden !== true)
    .map(([name, option]) => `| \`${name}\` | ${configValueText(option).replaceAll('|', '\\|')} |`);
  return ['| key | value |', '|---|---|', ...extraRows, ...rows].join('\n');
}
