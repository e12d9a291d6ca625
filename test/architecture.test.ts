import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ALLOWED_IMPORTS, architectureViolations, readSources } from './helpers/import-graph.js';

/** The repository, from dist/test/ where this file runs. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('architecture (docs/architecture.md)', () => {
  const sources = readSources(ROOT);

  test('src/ keeps every boundary and has no import cycle', () => {
    assert.ok(sources.size > 100, `read ${sources.size} files from ${ROOT}src`);
    assert.deepEqual(architectureViolations(sources), []);
  });

  test('an import across a forbidden boundary is found and named', () => {
    const broken = new Map(sources);
    const agent = 'src/agent/agent.ts';
    broken.set(agent, `import { createRelay } from '../relay/relay.js';\n${sources.get(agent)}`);
    assert.deepEqual(architectureViolations(broken), [
      'src/agent/agent.ts imports src/relay/relay.ts: agent must not import relay',
    ]);
  });

  test('the forbidden imports the docs name are each refused', () => {
    const cases: [string, string][] = [
      ['src/connection-string/parse.ts', '../transport/dial.js'],
      ['src/relay/relay.ts', '../agent/agent.js'],
      ['src/session/registration.ts', '../relay/registry.js'],
      ['src/session/registration.ts', '../agent/agent.js'],
      ['src/client/client.ts', '../relay/relay.js'],
      ['src/mux/mux-session.ts', '../session/protocol.js'],
      ['src/agent/agent.ts', '../cli/main.js'],
      ['src/index.ts', './cli/main.js'],
    ];
    for (const [file, specifier] of cases) {
      const broken = new Map(sources);
      broken.set(file, `import '${specifier}';\n${sources.get(file)}`);
      const problems = architectureViolations(broken);
      assert.ok(
        problems.some(
          (problem) => problem.startsWith(`${file} imports`) && problem.includes('must not import'),
        ),
        `${file} → ${specifier}: ${problems.join('; ') || 'no problem found'}`,
      );
    }
  });

  test('an import cycle inside one folder is found', () => {
    const broken = new Map(sources);
    const admission = 'src/relay/stream-admission.ts';
    broken.set(
      admission,
      `import type { forwardHttpRequest } from './http-forward.js';\n${sources.get(admission)}`,
    );
    const problems = architectureViolations(broken);
    assert.equal(problems.length, 1, problems.join('; '));
    assert.match(
      problems[0] as string,
      /^import cycle: .*stream-admission\.ts.*http-forward\.ts|^import cycle: .*http-forward\.ts.*stream-admission\.ts/,
    );
  });

  test('a package loaded outside the parts that own it is found', () => {
    const broken = new Map(sources);
    broken.set('src/agent/agent.ts', `import 'ioredis';\n${sources.get('src/agent/agent.ts')}`);
    assert.deepEqual(architectureViolations(broken), [
      'src/agent/agent.ts imports the package ioredis, which only relay/cluster may load',
    ]);
  });

  test('docs/architecture.md lists every folder the rules know', () => {
    const doc = readFileSync(`${ROOT}docs/architecture.md`, 'utf8');
    for (const unit of Object.keys(ALLOWED_IMPORTS)) {
      if (unit === 'core' || unit === 'index') continue;
      assert.match(doc, new RegExp(`\`src/${unit}/\``), `docs/architecture.md names src/${unit}/`);
    }
    const folders = new Set(
      [...sources.keys()].map((file) => file.split('/')[1]).filter((f) => !f?.endsWith('.ts')),
    );
    for (const folder of folders)
      assert.ok(folder !== undefined && folder in ALLOWED_IMPORTS, `rules for src/${folder}/`);
  });
});
