import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The repository's root, from dist/test/helpers. */
export const ROOT = join(import.meta.dirname, '..', '..', '..');

/**
 * Every line of the fenced code blocks of a page (README.md, docs/x.md), with its line number: a
 * command continued over several lines (`\` at the end) as one line, a leading `$ ` dropped.
 */
export function codeLines(page: string): { line: number; text: string }[] {
  const found: { line: number; text: string }[] = [];
  const lines = readFileSync(join(ROOT, page), 'utf8').split('\n');
  let fenced = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trimStart().startsWith('```')) {
      fenced = !fenced;
      continue;
    }
    if (!fenced) continue;
    const start = i + 1;
    let text = line.trim().replace(/^\$ /, '');
    while (text.endsWith('\\') && i + 1 < lines.length)
      text = `${text.slice(0, -1)} ${(lines[++i] as string).trim()}`;
    found.push({ line: start, text });
  }
  return found;
}

/**
 * The command `text` exactly as a code block of `page` has it (a trailing `# comment` aside), with
 * `<placeholders>` filled from `values`; throws when the page no longer has it, so a test that
 * runs it follows the docs.
 */
export function documented(page: string, text: string, values: Record<string, string> = {}): string {
  if (!codeLines(page).some((l) => commandText(l.text) === text))
    throw new Error(`${page} no longer shows: ${text}`);
  ran.add(`${page}: ${text}`);
  return text.replace(/<([a-z]+)>/g, (whole, name: string) => values[name] ?? whole);
}

/** A code line as a command: without a trailing `# comment`, single spaces. */
export function commandText(line: string): string {
  return line.replace(/\s+# .*$/, '').replace(/\s+/g, ' ');
}

const ran = new Set<string>();

/** Every `page: command` documented() gave out so far in this process. */
export function documentedSoFar(): ReadonlySet<string> {
  return ran;
}

/** The fenced blocks of `page` marked with `language` (```nginx), as written. */
export function codeBlocks(page: string, language: string): string[] {
  const blocks: string[] = [];
  let current: string[] | undefined;
  for (const line of readFileSync(join(ROOT, page), 'utf8').split('\n')) {
    if (current === undefined) {
      if (line.trim() === `\`\`\`${language}`) current = [];
    } else if (line.trim() === '```') {
      blocks.push(current.join('\n'));
      current = undefined;
    } else current.push(line);
  }
  return blocks;
}
