import { readFileSync, writeFileSync } from 'node:fs';
import { COMMANDS } from '../../src/cli/commands.js';
import { CONFIG_SECTIONS } from '../../src/cli/config-layers.js';
import { configKeysTable, docsTable, type OptionTable } from '../../src/cli/option-table.js';

/**
 * docs/cli.md's option tables and docs/config.md's key tables come from the commands' option
 * tables: each sits between `<!-- options: <command> -->` and `<!-- /options -->` (or
 * `<!-- config-keys: <section> -->` and `<!-- /config-keys -->`). `npm run docs` writes them; the
 * option test fails when a page and the code differ.
 */
/** Each command's option table, loaded once. */
const TABLES: Record<string, OptionTable> = Object.fromEntries(
  await Promise.all(
    Object.entries(COMMANDS).map(async ([name, command]) => [name, (await command.load()).options]),
  ),
);

const BLOCK = /(<!-- options: ([a-z-]+) -->\n)[\s\S]*?<!-- \/options -->/g;

/** The page with every option block rendered from the code; throws on a block naming no command. */
export function renderCliDocs(page: string): string {
  return page.replace(BLOCK, (_match, open: string, command: string) => {
    const options = TABLES[command];
    if (options === undefined)
      throw new Error(`docs/cli.md: an options block for unknown command "${command}"`);
    return `${open}${docsTable(options)}\n<!-- /options -->`;
  });
}

const KEYS_BLOCK = /(<!-- config-keys: ([a-z-]+) -->\n)[\s\S]*?<!-- \/config-keys -->/g;

/** docs/config.md with each section's key table rendered from the command's option table. */
export function renderConfigDocs(page: string): string {
  return page.replace(KEYS_BLOCK, (_match, open: string, section: string) => {
    const options = TABLES[section];
    if (options === undefined || !CONFIG_SECTIONS.includes(section))
      throw new Error(`docs/config.md: a keys block for unknown section "${section}"`);
    const extra = section === 'expose' ? ['| `services` | map of name: target |'] : [];
    return `${open}${configKeysTable(options, extra)}\n<!-- /config-keys -->`;
  });
}

/** The config sections that have a keys block in the page. */
export function documentedSections(page: string): string[] {
  return [...page.matchAll(KEYS_BLOCK)].map((match) => match[2] as string);
}

/** The commands that have an options block in the page. */
export function documentedCommands(page: string): string[] {
  return [...page.matchAll(BLOCK)].map((match) => match[2] as string);
}

if (process.argv[2] === '--write') {
  for (const [path, render] of [
    ['docs/cli.md', renderCliDocs],
    ['docs/config.md', renderConfigDocs],
  ] as const) {
    const page = readFileSync(path, 'utf8');
    const updated = render(page);
    if (updated !== page) writeFileSync(path, updated);
    process.stdout.write(`${path}: ${updated === page ? 'up to date' : 'option tables rewritten'}\n`);
  }
}
