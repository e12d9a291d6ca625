import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type CliProcess, startCli, startExposeProcess, startRelayProcess } from '../helpers/processes.js';
import { startTarget, type TargetProcess } from '../helpers/target.js';

/** curl in the background (the test's event loop stays free); resolves with its exit code. */
function curlInBackground(args: string[]): { done: Promise<number> } {
  return {
    done: new Promise((resolve) => {
      execFile('curl', ['-sS', ...args], { timeout: 60_000 }, (error) =>
        resolve(error ? Number((error as { code?: number }).code ?? -1) : 0),
      );
    }),
  };
}

async function untilFileHas(path: string, bytes: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let size = 0;
    try {
      size = statSync(path).size;
    } catch {
      // not created yet
    }
    if (size >= bytes) return;
    if (Date.now() > deadline) throw new Error(`${path} stayed below ${bytes} bytes`);
    await delay(10);
  }
}

describe('chaos: processes killed mid-transfer (real relay, agent and target processes, real curl)', () => {
  let dir: string;
  let keyFile: string;
  let relay: CliProcess;
  let relayPort: number;
  let target: TargetProcess;
  let agent: CliProcess;
  let label: string;

  const startAgent = async (): Promise<void> => {
    ({ agent, label } = await startExposeProcess(`http://127.0.0.1:${target.port}`, relayPort, keyFile));
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-kills-'));
    keyFile = join(dir, 'agent.key');
    await startCli(['keygen', '--out', keyFile]).exited;
    ({ relay, port: relayPort } = await startRelayProcess());
    target = await startTarget();
    await startAgent();
  });
  after(async () => {
    await agent?.stop('SIGKILL');
    await relay?.stop('SIGKILL');
    target?.child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  const total = 1 << 30;
  for (const [name, path] of [
    ['with a Content-Length', `/bytes?n=${total}`],
    ['chunked', `/stream?n=${total}`],
  ] as const) {
    test(`the agent killed (SIGKILL) mid-download, ${name}: curl reports an error, never a clean end`, async (t) => {
      const out = join(dir, `download-${name.length}`);
      const download = curlInBackground([
        '--limit-rate',
        '20M',
        '-o',
        out,
        `http://127.0.0.1:${relayPort}/${label}${path}`,
      ]);
      await untilFileHas(out, 4 << 20);
      await agent.stop('SIGKILL');
      const code = await download.done;
      assert.ok(code === 18 || code === 56 || code === 92, `curl exit code ${code} (18/56/92: cut transfer)`);
      assert.ok(statSync(out).size < total);
      t.diagnostic(`curl exit ${code} after ${statSync(out).size} of ${total} bytes`);
      await startAgent();
    });
  }

  test('the target killed mid-download: curl reports an error, never a clean end; a new target serves again', async (t) => {
    const out = join(dir, 'download-target');
    const download = curlInBackground([
      '--limit-rate',
      '20M',
      '-o',
      out,
      `http://127.0.0.1:${relayPort}/${label}/stream?n=${total}`,
    ]);
    await untilFileHas(out, 4 << 20);
    const port = target.port;
    target.child.kill('SIGKILL');
    const code = await download.done;
    assert.ok(code === 18 || code === 56 || code === 92, `curl exit code ${code}`);
    t.diagnostic(`curl exit ${code} after ${statSync(out).size} bytes`);
    target = await startTarget(port);
  });

  test('the relay killed mid-upload: the target sees an aborted request, never a complete one', async (t) => {
    const file = join(dir, 'upload.bin');
    writeFileSync(file, Buffer.alloc(64 << 20, 7));
    const before = target.lines.length;
    const upload = curlInBackground([
      '--limit-rate',
      '8M',
      '--data-binary',
      `@${file}`,
      `http://127.0.0.1:${relayPort}/${label}/upload`,
    ]);
    await delay(1_000);
    await relay.stop('SIGKILL');
    const code = await upload.done;
    assert.notEqual(code, 0, 'curl saw the upload fail');
    for (let i = 0; i < 100 && target.lines.length === before; i++) await delay(50);
    const outcome = target.lines.slice(before);
    assert.equal(outcome.length, 1, JSON.stringify(outcome));
    assert.equal(outcome[0]?.upload, 'aborted');
    assert.ok((outcome[0]?.size as number) < 64 << 20);
    t.diagnostic(`curl exit ${code}; the target saw an aborted upload after ${outcome[0]?.size} bytes`);
  });
});
