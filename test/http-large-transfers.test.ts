import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { curl } from './helpers/curl.js';
import { type Origin, patternBlock, sha256OfPattern, startOrigin } from './helpers/origin.js';
import { type CliProcess, rssBytes, startCli } from './helpers/processes.js';

const MiB = 1024 * 1024;
/** The bound: relay and agent may not grow by this much while moving 100 MiB. */
const RSS_GROWTH_LIMIT = 100 * MiB;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Samples the RSS of `pids` every 100 ms while `work` runs; returns the largest growth over the start. */
async function maxRssGrowth(pids: number[], work: () => Promise<void>): Promise<number[]> {
  const start = await Promise.all(pids.map(rssBytes));
  const peak = [...start];
  const timer = setInterval(async () => {
    const now = await Promise.all(pids.map((pid) => rssBytes(pid).catch(() => 0)));
    now.forEach((rss, i) => {
      peak[i] = Math.max(peak[i] ?? 0, rss);
    });
  }, 100);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return peak.map((p, i) => p - (start[i] ?? 0));
}

describe('large transfers through relay and agent processes', () => {
  let dir: string;
  let origin: Origin;
  let relay: CliProcess;
  let agent: CliProcess;
  let url: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-large-'));
    origin = await startOrigin();
    relay = startCli(['relay', '--listen', 'tcp://127.0.0.1:0', '--json', '--log-level', 'warn']);
    const listening = await relay.nextEvent((e) => e.event === 'listening');
    const relayAddress = (listening.listen as string[])[0] as string;
    const keygen = startCli(['keygen', '--out', join(dir, 'agent.key'), '--json']);
    assert.equal(await keygen.exited, 0);
    agent = startCli([
      'expose',
      origin.url,
      '--relay',
      relayAddress,
      '--key',
      join(dir, 'agent.key'),
      '--json',
    ]);
    const ready = await agent.nextEvent((e) => e.event === 'ready');
    url = ((ready.services as { url: string }[])[0] as { url: string }).url;
  });
  after(async () => {
    await agent?.stop();
    await relay?.stop();
    await origin?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('100 MiB download: sha256 matches; relay and agent RSS stay bounded', async () => {
    const out = join(dir, 'download.bin');
    const growth = await maxRssGrowth([relay.child.pid as number, agent.child.pid as number], async () => {
      const res = await curl(['-o', out, `${url}bytes?n=${100 * MiB}`], { timeoutMs: 120_000 });
      assert.equal(res.exitCode, 0, res.stderr);
    });
    assert.equal(await sha256File(out), sha256OfPattern(100 * MiB));
    assert.ok(
      growth.every((g) => g < RSS_GROWTH_LIMIT),
      `RSS growth relay/agent: ${growth.map((g) => (g / MiB).toFixed(1))} MiB`,
    );
  });

  test('100 MiB download by a slow reader (30 MB/s): RSS stays bounded, bytes intact', async () => {
    const out = join(dir, 'slow.bin');
    const growth = await maxRssGrowth([relay.child.pid as number, agent.child.pid as number], async () => {
      const res = await curl(['--limit-rate', '30M', '-o', out, `${url}bytes?n=${100 * MiB}`], {
        timeoutMs: 120_000,
      });
      assert.equal(res.exitCode, 0, res.stderr);
    });
    assert.equal(await sha256File(out), sha256OfPattern(100 * MiB));
    assert.ok(
      growth.every((g) => g < RSS_GROWTH_LIMIT),
      `RSS growth relay/agent: ${growth.map((g) => (g / MiB).toFixed(1))} MiB`,
    );
  });

  test('50 MiB upload: the target receives every byte (sha256)', async () => {
    const file = join(dir, 'upload.bin');
    const writer = createWriteStream(file);
    for (let i = 0; i < (50 * MiB) / (64 * 1024); i++) {
      if (!writer.write(patternBlock(i))) await once(writer, 'drain');
    }
    writer.end();
    await once(writer, 'finish');
    const growth = await maxRssGrowth([relay.child.pid as number, agent.child.pid as number], async () => {
      const res = await curl(['--data-binary', `@${file}`, `${url}upload`], { timeoutMs: 120_000 });
      assert.equal(res.exitCode, 0, res.stderr);
      assert.deepEqual(JSON.parse(res.stdout), { size: 50 * MiB, sha256: sha256OfPattern(50 * MiB) });
    });
    assert.ok(
      growth.every((g) => g < RSS_GROWTH_LIMIT),
      `RSS growth relay/agent: ${growth.map((g) => (g / MiB).toFixed(1))} MiB`,
    );
  });
});
