import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runNode } from './helpers/processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** What a user's app does with the package: a relay, an agent through it, and connect(). */
const APP = (load: string): string => `${load}
const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
const agent = createAgent({ relay: relay.addresses[0], key: generateAgentKey(), services: [{ target: 'http://127.0.0.1:9' }] });
const [service] = await agent.ready;
if (typeof connect !== 'function') throw new Error('no connect');
await agent.close();
await relay.close();
console.log(service.url);`;

/**
 * The tarball `npm pack` makes, unpacked into a scratch project's node_modules (its dependencies
 * linked from ours: no registry needed), then imported as users do: ESM and CommonJS.
 */
describe('the packed package in a scratch project', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'postern-scratch-'));
  const unpacked = join(scratch, 'node_modules', 'postern');
  before(() => {
    const [packed] = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], {
        cwd: ROOT,
        encoding: 'utf8',
      }),
    ) as { filename: string }[];
    mkdirSync(unpacked, { recursive: true });
    execFileSync('tar', [
      '-xzf',
      join(scratch, packed?.filename ?? ''),
      '--strip-components=1',
      '-C',
      unpacked,
    ]);
    const manifest = JSON.parse(readFileSync(join(unpacked, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const name of [
      ...Object.keys(manifest.dependencies),
      ...Object.keys(manifest.optionalDependencies ?? {}),
    ])
      symlinkSync(join(ROOT, 'node_modules', name), join(scratch, 'node_modules', name));
    writeFileSync(join(scratch, 'package.json'), '{ "name": "scratch", "private": true }\n');
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  const run = async (file: string, text: string): Promise<string> => {
    writeFileSync(join(scratch, file), text);
    const { code, stdout, stderr } = await runNode([join(scratch, file)]);
    assert.equal(code, 0, stderr);
    return stdout.trim();
  };

  test('ESM: import from postern, postern/client, postern/agent, postern/relay', async () => {
    const url = await run(
      'app.mjs',
      APP(`import { connect } from 'postern/client';
import { createAgent, generateAgentKey } from 'postern/agent';
import { createRelay } from 'postern/relay';
import * as everything from 'postern';
if (everything.connect !== connect) throw new Error('two copies of connect');`),
    );
    assert.match(url, /^http:\/\/[a-z2-7]{52}\.localhost:\d+\/$/);
  });

  test('CommonJS: require() of the package and its entries', async () => {
    const url = await run(
      'app.cjs',
      `(async () => {${APP(`const { connect } = require('postern/client');
const { createAgent, generateAgentKey, createRelay } = require('postern');`)}})().catch((error) => { console.error(error); process.exit(1); });`,
    );
    assert.match(url, /^http:\/\/[a-z2-7]{52}\.localhost:\d+\/$/);
  });

  test('ships its licence and types, and source maps that carry their sources', () => {
    const names = readdirSync(unpacked);
    for (const name of ['LICENSE', 'README.md', 'package.json', 'dist'])
      assert.ok(names.includes(name), name);
    const files = readdirSync(join(unpacked, 'dist', 'src'), { recursive: true }).map(String);
    assert.ok(files.includes(join('entry', 'client.d.ts')));
    const maps = files.filter((file) => file.endsWith('.js.map'));
    assert.ok(maps.length > 50, `${maps.length} source maps`);
    for (const file of maps) {
      const map = JSON.parse(readFileSync(join(unpacked, 'dist', 'src', file), 'utf8')) as {
        sources: string[];
        sourcesContent?: (string | null)[];
      };
      assert.equal(
        map.sourcesContent?.filter((text) => typeof text === 'string').length,
        map.sources.length,
        file,
      );
    }
  });
});
