import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from 'yaml';
import { type parseCommandArgs, parseOptions, UsageError } from './args.js';
import { envName, type OptionDef, type OptionTable, type SpecOf, valueProblem } from './option-table.js';

type Value = string | boolean | string[];

/** The top-level keys of a config file: one section a command. */
export const CONFIG_SECTIONS = ['relay', 'expose'];

/**
 * Secrets, each with an option that reads it from a file instead. On a command line a secret is
 * readable by every local user (`ps`); the file form and the POSTERN_* variable are not.
 */
export const SECRET_OPTIONS: Record<string, string> = {
  'basic-auth': 'basic-auth-file',
  'bearer-token': 'bearer-token-file',
  'admin-token': 'admin-token-file',
  'cluster-secret': 'cluster-secret-file',
};

type ParsedValues<T extends OptionTable> = ReturnType<typeof parseCommandArgs<SpecOf<T>>>['values'];

/**
 * The command's options from three layers, highest first: command-line flags, `POSTERN_*`
 * environment variables, then the `<command>:` section of the YAML file given with `--config`
 * (docs/config.md). Every value is checked against the command's option table where it was
 * written. A list option set in a higher layer replaces the lower layers' list. For `expose`, the
 * file's `services:` map (name: target) stands in for positional targets when the command line has
 * none.
 */
export function parseLayeredArgs<T extends OptionTable>(
  command: string,
  argv: string[],
  table: T,
  allowPositionals: boolean,
  env: NodeJS.ProcessEnv = process.env,
  warn: (message: string) => void = (message) =>
    process.stderr.write(`postern ${command}: warning: ${message}\n`),
): { values: ParsedValues<T>; positionals: string[]; subdomains: Record<string, string> } {
  const cli = parseOptions(argv, table, allowPositionals);
  const cliValues = cli.values as Record<string, Value | undefined>;
  const configPath = (cliValues.config as string | undefined) ?? env[envName('config')];
  const file =
    configPath === undefined
      ? { values: {}, services: [], subdomains: {} }
      : loadSection(configPath, command, table);
  const values: Record<string, Value | undefined> = { ...file.values };
  for (const [name, option] of Object.entries(table)) {
    if (option.commandLineOnly === true) continue;
    const raw = env[envName(name)];
    if (raw === undefined || raw === '') continue;
    values[name] = fromEnv(name, option, raw);
  }
  for (const [name, value] of Object.entries(cliValues)) {
    if (value !== undefined && name !== 'config') values[name] = value;
  }
  for (const [secret, fileOption] of Object.entries(SECRET_OPTIONS)) {
    if (!(secret in table)) continue;
    const path = values[fileOption] as string | undefined;
    if (path !== undefined) {
      if (cliValues[secret] !== undefined)
        throw new UsageError(`give --${secret} or --${fileOption}, not both`);
      values[secret] = readSecretFile(path, fileOption, table[secret]?.multiple === true);
    }
    if (cliValues[secret] !== undefined)
      warn(
        `--${secret} on the command line is visible to every local user (ps); use --${fileOption} or ${envName(secret)}`,
      );
  }
  const fromFile = cli.positionals.length === 0;
  const positionals = fromFile ? file.services : cli.positionals;
  // Each layer was checked against `spec`, so the merged values have parseArgs' own shape.
  return { values: values as ParsedValues<T>, positionals, subdomains: fromFile ? file.subdomains : {} };
}

/**
 * A secret from a file: its one line, or for a list option one entry a line (blank lines and
 * lines starting with # skipped). Trailing newlines and spaces are not part of a secret.
 */
function readSecretFile(path: string, option: string, multiple: boolean): string | string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`--${option} ${path}: cannot read it (${(error as NodeJS.ErrnoException).code})`);
  }
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  if (lines.length === 0) throw new UsageError(`--${option} ${path}: the file is empty`);
  if (multiple) return lines;
  if (lines.length > 1) throw new UsageError(`--${option} ${path}: the file must hold one line`);
  return lines[0] as string;
}

function fromEnv(name: string, option: OptionDef, raw: string): Value {
  const where = `environment variable ${envName(name)}`;
  if (option.value === undefined) {
    if (raw !== 'true' && raw !== 'false' && raw !== '1' && raw !== '0')
      throw new UsageError(`${where} must be true or false (got "${raw}")`);
    return raw === 'true' || raw === '1';
  }
  const parts = option.multiple === true ? raw.split(',').map((part) => part.trim()) : [raw];
  for (const part of parts) checkValue(name, option, part, where);
  return option.multiple === true ? parts : raw;
}

function checkValue(name: string, option: OptionDef, value: string, where: string): void {
  const problem = valueProblem(name, option, value);
  if (problem !== undefined) throw new UsageError(`${where}: ${problem}`);
}

/** Reads and checks one command's section of a config file; every error names file:line:column. */
export function loadSection(
  path: string,
  command: string,
  table: OptionTable,
): { values: Record<string, Value>; services: string[]; subdomains: Record<string, string> } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code}`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const at = (node: Node | null | undefined): string => {
    const pos = lines.linePos(node?.range?.[0] ?? 0);
    return `${path}:${pos.line}:${pos.col}`;
  };
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = lines.linePos(first.pos[0]);
    throw new UsageError(`${path}:${pos.line}:${pos.col}: ${first.message.split('\n')[0]}`);
  }
  const root = doc.contents;
  if (root === null) return { values: {}, services: [], subdomains: {} };
  if (!isMap(root)) throw new UsageError(`${at(root)}: the file must be a map of commands (relay:, expose:)`);
  for (const pair of (root as YAMLMap<unknown, unknown>).items) {
    const key = pair.key as Node;
    if (!isScalar(key) || !CONFIG_SECTIONS.includes(String(key.value)))
      throw new UsageError(
        `${at(key)}: unknown section "${isScalar(key) ? String(key.value) : '?'}" (sections: ${CONFIG_SECTIONS.join(', ')})`,
      );
  }
  const section = root.get(command, true) as Node | undefined;
  if (section === undefined || (isScalar(section) && section.value === null))
    return { values: {}, services: [], subdomains: {} };
  if (!isMap(section)) throw new UsageError(`${at(section)}: "${command}:" must be a map of options`);
  const values: Record<string, Value> = {};
  const services: string[] = [];
  const subdomains: Record<string, string> = {};
  const allowed = Object.entries(table)
    .filter(([, option]) => option.commandLineOnly !== true)
    .map(([name]) => name);
  for (const pair of (section as YAMLMap<unknown, unknown>).items) {
    const keyNode = pair.key as Node;
    const name = isScalar(keyNode) ? String(keyNode.value) : '';
    const valueNode = pair.value as Node | null;
    if (command === 'expose' && name === 'services') {
      for (const service of readServices(valueNode, at)) {
        services.push(`${service.name}=${service.target}`);
        if (service.subdomain !== undefined) subdomains[service.name] = service.subdomain;
      }
      continue;
    }
    const option = table[name];
    if (option === undefined || option.commandLineOnly === true) {
      const extra = command === 'expose' ? ', services' : '';
      throw new UsageError(
        `${at(keyNode)}: unknown option "${name}" for ${command} (allowed: ${allowed.join(', ')}${extra})`,
      );
    }
    values[name] = readValue(name, option, valueNode, at);
  }
  return { values, services, subdomains };
}

function readValue(
  name: string,
  option: OptionDef,
  node: Node | null,
  at: (node: Node | null | undefined) => string,
): Value {
  const scalar = (one: Node | null): string => {
    if (!isScalar(one) || one.value === null || typeof one.value === 'object')
      throw new UsageError(`${at(one)}: ${name} must be a single value`);
    if (typeof one.value === 'boolean')
      throw new UsageError(`${at(one)}: ${name} must be text or a number, not ${String(one.value)}`);
    const text = String(one.value);
    checkValue(name, option, text, at(one));
    return text;
  };
  if (option.value === undefined) {
    if (!isScalar(node) || typeof node.value !== 'boolean')
      throw new UsageError(`${at(node)}: ${name} must be true or false`);
    return node.value;
  }
  if (option.multiple === true) {
    if (isSeq(node)) return node.items.map((item) => scalar(item as Node));
    return [scalar(node)];
  }
  if (isSeq(node)) throw new UsageError(`${at(node)}: ${name} takes one value, not a list`);
  return scalar(node);
}

/**
 * `services:` as a map of name: target, or name: {target, subdomain}, turned into the
 * `name=target` positionals of expose and the subdomains asked for.
 */
function readServices(
  node: Node | null,
  at: (node: Node | null | undefined) => string,
): { name: string; target: string; subdomain?: string }[] {
  if (!isMap(node)) throw new UsageError(`${at(node)}: services must be a map of name: target`);
  return (node as YAMLMap<unknown, unknown>).items.map((pair) => {
    const key = pair.key as Node;
    const value = pair.value as Node | null;
    if (!isScalar(key) || !/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/.test(String(key.value)))
      throw new UsageError(`${at(key)}: a service name is 1-32 of a-z, 0-9 and "-"`);
    const name = String(key.value);
    if (isScalar(value) && typeof value.value === 'string') return { name, target: value.value };
    if (!isMap(value))
      throw new UsageError(
        `${at(value ?? key)}: the target of ${name} must be a URL, or a map with target: and subdomain:`,
      );
    const fields: Record<string, string> = {};
    for (const item of (value as YAMLMap<unknown, unknown>).items) {
      const field = item.key as Node;
      const text = item.value as Node | null;
      const fieldName = isScalar(field) ? String(field.value) : '';
      if (fieldName !== 'target' && fieldName !== 'subdomain')
        throw new UsageError(
          `${at(field)}: unknown field "${fieldName}" of service ${name} (target, subdomain)`,
        );
      if (!isScalar(text) || typeof text.value !== 'string')
        throw new UsageError(`${at(text ?? field)}: ${fieldName} of ${name} must be a string`);
      fields[fieldName] = text.value;
    }
    if (fields.target === undefined) throw new UsageError(`${at(value)}: service ${name} needs a target:`);
    return {
      name,
      target: fields.target,
      ...(fields.subdomain === undefined ? {} : { subdomain: fields.subdomain }),
    };
  });
}
