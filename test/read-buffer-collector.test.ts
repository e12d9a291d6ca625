import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const moduleUrl = new URL('../src/read-buffer-collector.js', import.meta.url).href;

/**
 * In a process of its own (it changes V8 flags): "reads" 64 KiB buffers that die at once, 32 MiB
 * of them, counting each, and reports how many young collections ran.
 */
const probe = (install: boolean): string => `
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { setImmediate as turn } from 'node:timers/promises';
const { collectReadBuffers, countRead } = await import(${JSON.stringify(moduleUrl)});
let minor = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++;
}).observe({ entryTypes: ['gc'] });
if (${install}) collectReadBuffers();
for (let i = 0; i < 512; i++) {
  const buffer = Buffer.allocUnsafeSlow(64 * 1024);
  buffer[0] = i;
  countRead(buffer.length);
  if (i % 16 === 15) await turn();
}
await new Promise((resolve) => setTimeout(resolve, 50));
process.stdout.write(String(minor));
`;

async function youngCollections(install: boolean): Promise<number> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', probe(install)]);
  return Number(stdout);
}

test('read buffers: once installed, every ~4 MiB of dead read buffers brings a young collection', async (t) => {
  const installed = await youngCollections(true);
  // 32 MiB read: 5–6 measured (each waits for the turn after the read that crossed 4 MiB, and
  // buffers still in hand then are counted towards the next one).
  assert.ok(installed >= 3, `${installed} young collections with the collector`);
  const left = await youngCollections(false);
  assert.ok(left < installed, `${left} without it, ${installed} with it`);
  t.diagnostic(
    `young collections over 32 MiB of dead read buffers: ${installed} with the collector, ${left} without`,
  );
});
