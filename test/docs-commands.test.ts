import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseCommandArgs } from '../src/cli/args.js';
import { COMMANDS } from '../src/cli/commands.js';
import { specOf } from '../src/cli/option-table.js';
import { codeLines, ROOT } from './helpers/doc-lines.js';

/** Every `postern …` command line in the fenced code blocks of a page, with its line number. */
function commandLines(page: string): { line: number; text: string }[] {
  return codeLines(page).filter(({ text }) => /^postern [a-z-]+( |$)/.test(text));
}

/** Shell words of one line, quotes removed, a trailing `# comment` and what follows a pipe dropped. */
function words(text: string): string[] {
  const out: string[] = [];
  let word = '';
  let quote: string | undefined;
  let started = false;
  for (const char of text) {
    if (quote !== undefined) {
      if (char === quote) quote = undefined;
      else word += char;
      continue;
    }
    if (char === "'" || char === '"') {
      quote = char;
      started = true;
    } else if (char === ' ') {
      if (started || word !== '') out.push(word);
      word = '';
      started = false;
    } else if ((char === '#' || char === '|') && word === '') break;
    else word += char;
  }
  if (started || word !== '') out.push(word);
  return out;
}

test('every postern command in README.md and docs/ names a real command and only its own options', async () => {
  const pages = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  const problems: string[] = [];
  let checked = 0;
  for (const page of pages) {
    for (const { line, text } of commandLines(page)) {
      const [, name, ...args] = words(text);
      const command = COMMANDS[name as string];
      if (command === undefined) {
        problems.push(`${page}:${line}: no command "${name}": ${text}`);
        continue;
      }
      try {
        parseCommandArgs(args, specOf((await command.load()).options), true);
        checked++;
      } catch (error) {
        problems.push(`${page}:${line}: ${(error as Error).message}: ${text}`);
      }
    }
  }
  assert.deepEqual(problems, []);
  // The scan found the tour and the guides' commands, so it can fail.
  assert.ok(checked >= 20, `${checked} commands checked`);
});
