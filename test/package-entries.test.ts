import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { build } from 'esbuild';
import { runNode } from './helpers/processes.js';

/**
 * What each entry point drags in, seen by bundling `import … from 'postern/<entry>'` as a user's
 * bundler would (esbuild, through package.json's `exports`). The bundle's inputs must not include
 * the parts the entry promises to leave out; the sizes are printed for the notes.
 */
async function inputsOf(specifier: string): Promise<{ inputs: string[]; bytes: number }> {
  const result = await build({
    stdin: { contents: `export * from '${specifier}';`, resolveDir: process.cwd(), loader: 'js' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    minify: true,
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  return {
    inputs: Object.keys(result.metafile.inputs),
    bytes: result.outputFiles.reduce((sum, file) => sum + file.contents.length, 0),
  };
}

const HEAVY = {
  relay: /dist\/src\/relay\//,
  cluster: /dist\/src\/relay\/cluster\/|node_modules\/ioredis\//,
  metrics: /node_modules\/prom-client\//,
  inspector: /dist\/src\/inspector\//,
  agent: /dist\/src\/agent\//,
  yaml: /node_modules\/yaml\//,
  cli: /dist\/src\/cli\//,
};

describe('entry points load only their part', () => {
  for (const [entry, leftOut] of [
    ['postern/client', ['relay', 'cluster', 'metrics', 'inspector', 'agent', 'yaml', 'cli']],
    ['postern/agent', ['relay', 'cluster', 'metrics', 'inspector', 'yaml', 'cli']],
    // Cluster code is a dynamic import: a bundler inlines it, Node loads it only with --redis (below).
    ['postern/relay', ['inspector', 'agent', 'yaml', 'cli']],
  ] as const)
    test(`${entry} leaves out ${leftOut.join(', ')}`, async () => {
      const { inputs, bytes } = await inputsOf(entry);
      for (const part of leftOut) {
        const found = inputs.filter((input) => HEAVY[part].test(input));
        assert.deepEqual(found, [], `${entry} bundles ${part}`);
      }
      // The figure for the notes: the bundled (minified) size of the entry.
      process.stdout.write(`# ${entry}: ${(bytes / 1024).toFixed(0)} KiB bundled, ${inputs.length} inputs\n`);
    });

  test('the whole package still bundles everything (the check above can see what it looks for)', async () => {
    const { inputs } = await inputsOf('postern');
    for (const part of ['relay', 'metrics', 'inspector', 'agent'] as const)
      assert.ok(
        inputs.some((input) => HEAVY[part].test(input)),
        `postern bundles ${part}`,
      );
  });
});

/** The packages a fresh Node process has loaded after running `script` (an ES module). */
async function packagesLoadedBy(script: string): Promise<string[]> {
  const { code, stdout, stderr } = await runNode([
    '--input-type=module',
    '-e',
    `${script}
const { createRequire } = await import('node:module');
const names = Object.keys(createRequire(import.meta.url).cache)
  .filter((path) => path.includes('/node_modules/'))
  .map((path) => path.split('/node_modules/').pop().split('/')[0]);
process.stdout.write(JSON.stringify([...new Set(names)]));`,
  ]);
  assert.equal(code, 0, stderr);
  return JSON.parse(stdout) as string[];
}

describe('in Node, a part loads only when used', () => {
  test('postern/client loads no relay, agent or Redis package', async () => {
    const loaded = await packagesLoadedBy(
      "const { connect } = await import('postern/client'); void connect;",
    );
    for (const name of ['ioredis', 'prom-client', 'yaml']) assert.ok(!loaded.includes(name), `loads ${name}`);
  });

  test('a relay without --redis never loads ioredis; the check sees it when one has it', async () => {
    const run = (redis: string): Promise<string[]> =>
      packagesLoadedBy(`const { createRelay } = await import('postern/relay');
const relay = await createRelay({ ${redis} });
await relay.close();`);
    const alone = await run('');
    assert.ok(!alone.includes('ioredis'), 'a single relay loaded ioredis');
    const clustered = await run(
      "listen: ['tcp://127.0.0.1:0'], redis: 'redis://127.0.0.1:9', clusterSecret: 'a-cluster-secret-0123', nodeId: 'n1'",
    );
    assert.ok(clustered.includes('ioredis'), 'a cluster node did not load ioredis');
  });

  test('a relay with metrics: false never loads prom-client; the check sees it when one keeps metrics', async () => {
    const run = (options: string): Promise<string[]> =>
      packagesLoadedBy(`const { createRelay } = await import('postern/relay');
const relay = await createRelay({ ${options} });
await relay.close();`);
    assert.ok(!(await run('metrics: false')).includes('prom-client'), 'a relay without metrics loaded it');
    assert.ok((await run('')).includes('prom-client'), 'a relay with metrics did not load it');
  });
});
