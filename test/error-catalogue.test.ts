import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_CATALOGUE, errorCodeOf, PosternError, type PosternErrorCode } from '../src/errors.js';
import { readSources } from './helpers/import-graph.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECTIONS: Record<string, string> = {
  Visitors: 'visitor',
  'Agents registering': 'agent',
  'Relay nodes': 'node',
  'Library and CLI': 'caller',
};

interface DocumentedCode {
  code: string;
  audience: string;
  status: number | undefined;
  retryable: boolean;
}

/** Every table row of docs/errors.md that names a code, with the section it stands in. */
function documentedCodes(markdown: string): DocumentedCode[] {
  const found: DocumentedCode[] = [];
  let audience = '';
  for (const line of markdown.split('\n')) {
    const heading = /^## (.+)$/.exec(line);
    if (heading !== null) audience = SECTIONS[heading[1] as string] ?? '';
    if (!line.startsWith('| ') || audience === '') continue;
    const cells = line.split('|').map((cell) => cell.trim());
    const code = cells.map((cell) => /^`([A-Za-z_]+)`$/.exec(cell)?.[1]).find((c) => c !== undefined);
    if (code === undefined) continue;
    const status = cells.find((cell) => /^\d{3}$/.test(cell));
    const retry = cells.find((cell) => cell === 'yes' || cell === 'no');
    assert.ok(retry !== undefined, `docs/errors.md: the row of ${code} says yes or no under retry`);
    found.push({
      code,
      audience,
      status: status === undefined ? undefined : Number(status),
      retryable: retry === 'yes',
    });
  }
  return found;
}

describe('the error catalogue (src/error-codes.ts, docs/errors.md)', () => {
  const documented = documentedCodes(readFileSync(`${ROOT}docs/errors.md`, 'utf8'));

  test('docs/errors.md lists every code, in its section, with its status and retry', () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) {
      const rows = documented.filter((row) => row.code === code);
      const home = rows.find((row) => row.audience === entry.audience);
      assert.ok(home !== undefined, `docs/errors.md lists ${code} under the ${entry.audience} section`);
      for (const row of rows) {
        assert.equal(row.status, 'status' in entry ? entry.status : undefined, `status of ${code}`);
        assert.equal(row.retryable, entry.retryable, `retry of ${code}`);
      }
    }
  });

  test('docs/errors.md lists no code the catalogue lacks', () => {
    for (const row of documented)
      assert.ok(row.code in ERROR_CATALOGUE, `${row.code} is in src/error-codes.ts`);
  });

  test('every code the sources use is in the catalogue, and every catalogue code is used', () => {
    const sources = readSources(ROOT);
    const used = new Set<string>();
    for (const [file, text] of sources) {
      if (file === 'src/error-codes.ts') continue;
      // Environment variables share the prefix but are never written as a quoted string alone.
      for (const match of text.matchAll(/'(POSTERN_[A-Z_]+)'/g)) used.add(match[1] as string);
      for (const match of text.matchAll(/'([a-z]+(?:_[a-z]+)+)'/g))
        if ((match[1] as string) in ERROR_CATALOGUE) used.add(match[1] as string);
    }
    for (const code of used) assert.ok(code in ERROR_CATALOGUE, `${code} (used in src/) is in the catalogue`);
    for (const code of Object.keys(ERROR_CATALOGUE))
      assert.ok(used.has(code), `${code} is raised somewhere in src/`);
  });

  test('a PosternError takes its retry hint from the catalogue unless told otherwise', () => {
    const codes = Object.keys(ERROR_CATALOGUE) as PosternErrorCode[];
    for (const code of codes)
      assert.equal(new PosternError(code, 'x').retryable, ERROR_CATALOGUE[code].retryable);
    assert.equal(new PosternError('POSTERN_PREFLIGHT_REFUSED', 'x', { retryable: true }).retryable, true);
    assert.equal(errorCodeOf(new PosternError('POSTERN_STREAM_LIMIT', 'x')), 'POSTERN_STREAM_LIMIT');
    assert.equal(errorCodeOf(Object.assign(new Error('x'), { code: 'ECONNRESET' })), 'POSTERN_ERROR');
  });
});
