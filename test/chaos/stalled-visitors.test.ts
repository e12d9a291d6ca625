import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { WINDOW_GROWTH_BUDGET } from '../../src/mux/windows.js';
import { curl } from '../helpers/curl.js';
import { sha256OfPattern } from '../helpers/origin.js';
import {
  type CliProcess,
  openFds,
  processFigures,
  startCli,
  startExposeProcess,
  startRelayProcess,
} from '../helpers/processes.js';
import { startTarget, type TargetProcess } from '../helpers/target.js';

const STALLED = 200;
const RESPONSE_BYTES = 64 << 20;
/**
 * A stalled visitor stops reading at its first bytes: reading more first lets the kernel grow the
 * socket's receive buffer (up to tcp_rmem's max, 32 MiB here), which keeps taking bytes for many
 * seconds and hides the stall from the relay.
 */
const READ_BEFORE_STALL = 1;
const STALL_TIMEOUT_MS = 15_000;
const MiB = 1 << 20;

interface StalledVisitor {
  socket: Socket;
  received: number;
  stalled: boolean;
  /** When it stopped reading. */
  stalledAt: number;
  closed: Promise<void>;
}

/** A raw HTTP/1.1 visitor that reads the start of a big response, then stops reading. */
function stalledVisitor(port: number, path: string): { visitor: StalledVisitor; stalled: Promise<void> } {
  const socket = connect({ host: '127.0.0.1', port });
  const visitor: StalledVisitor = {
    socket,
    received: 0,
    stalled: false,
    stalledAt: 0,
    closed: new Promise((resolve) => socket.once('close', () => resolve())),
  };
  socket.on('error', () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  const stalled = new Promise<void>((resolve, reject) => {
    socket.once('close', () => reject(new Error(`closed after ${visitor.received} bytes, before stalling`)));
    socket.on('data', (chunk: Buffer) => {
      visitor.received += chunk.length;
      if (visitor.received >= READ_BEFORE_STALL && !visitor.stalled) {
        visitor.stalled = true;
        visitor.stalledAt = Date.now();
        socket.pause();
        resolve();
      }
    });
  });
  return { visitor, stalled };
}

/** CPU time (user + system) of a process in clock ticks, from /proc. */
async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Resolves (with the time) once every process used under 5 % of a core over 300 ms; rejects after timeoutMs. */
async function untilQuiet(pids: number[], timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const before = await Promise.all(pids.map(cpuTicks));
    await delay(300);
    const after = await Promise.all(pids.map(cpuTicks));
    // 100 ticks a second: 5 % of 300 ms is 1.5 ticks.
    if (after.every((ticks, i) => ticks - (before[i] ?? 0) <= 1)) return Date.now();
    if (Date.now() > deadline) throw new Error(`still busy after ${timeoutMs} ms`);
  }
}

describe('chaos: 200 visitors stop reading mid-response (real relay, agent and target processes)', () => {
  let dir: string;
  let relay: CliProcess;
  let agent: CliProcess;
  let target: TargetProcess;
  let relayPort: number;
  let label: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-stalls-'));
    const keyFile = join(dir, 'agent.key');
    await startCli(['keygen', '--out', keyFile]).exited;
    ({ relay, port: relayPort } = await startRelayProcess(['--stall-timeout', String(STALL_TIMEOUT_MS)]));
    target = await startTarget();
    ({ agent, label } = await startExposeProcess(`http://127.0.0.1:${target.port}`, relayPort, keyFile));
  });
  after(async () => {
    await agent?.stop('SIGKILL');
    await relay?.stop('SIGKILL');
    target?.child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  test('memory stays bounded, other visitors are served, stalled ones are cut by the stall timeout', async (t) => {
    // Warm both processes up (first request, pools, JIT) so the baseline is a fair one.
    for (let i = 0; i < 3; i++)
      await curl(['-o', '/dev/null', `http://127.0.0.1:${relayPort}/${label}/bytes?n=${MiB}`]);
    await delay(300);
    const relayPid = relay.child.pid as number;
    const agentPid = agent.child.pid as number;
    const baseline = { relay: await processFigures(relayPid), agent: await processFigures(agentPid) };
    // Other visitors: 4 parallel downloads of 8 MiB, each verified; timed alone first, for the figures.
    const othersDownload = async (): Promise<number> => {
      const start = Date.now();
      const results = await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          curl(
            [
              '--max-time',
              '20',
              '-o',
              join(dir, `other-${i}`),
              `http://127.0.0.1:${relayPort}/${label}/bytes?n=${8 * MiB}`,
            ],
            { timeoutMs: 25_000 },
          ),
        ),
      );
      for (const [i, other] of results.entries()) {
        assert.equal(other.exitCode, 0, other.stderr);
        const body = await readFile(join(dir, `other-${i}`));
        assert.equal(createHash('sha256').update(body).digest('hex'), sha256OfPattern(8 * MiB));
      }
      return Date.now() - start;
    };
    const othersAloneMs = await othersDownload();

    const started = Date.now();
    const opened = Array.from({ length: STALLED }, () =>
      stalledVisitor(relayPort, `/${label}/bytes?n=${RESPONSE_BYTES}`),
    );
    await Promise.all(opened.map((o) => o.stalled));
    const allStalledAt = Date.now();
    // No response can fill up (and so be cut) before its visitor stopped reading.
    const firstStalledAt = Math.min(...opened.map((o) => o.visitor.stalledAt));
    const visitors = opened.map((o) => o.visitor);

    // From now until the cut: peak memory, and the relay's open descriptors over time.
    let peak = { relay: baseline.relay, agent: baseline.agent };
    let sampling = true;
    const fdSamples: { at: number; fds: number }[] = [];
    const sampler = (async () => {
      while (sampling) {
        const now = { relay: await processFigures(relayPid), agent: await processFigures(agentPid) };
        fdSamples.push({ at: Date.now(), fds: now.relay.fds });
        if (now.relay.rss > peak.relay.rss) peak = { ...peak, relay: now.relay };
        if (now.agent.rss > peak.agent.rss) peak = { ...peak, agent: now.agent };
        await delay(100);
      }
    })();

    // Until every stalled response has filled its buffers (socket buffers, one stream window) the
    // relay and agent are busy moving bytes; once both are quiet, 200 stalled streams hold slots
    // and buffers but no CPU, and other visitors must be served as if they were alone.
    const filledAfterMs = (await untilQuiet([relayPid, agentPid], STALL_TIMEOUT_MS * 0.75)) - allStalledAt;
    const othersStalledMs = await othersDownload();
    const quietOthersAt = Date.now();

    // The relay cuts every stalled visitor after the stall timeout (+ one sweep), not before.
    // Once all is quiet almost every stalled response is blocked, so each is cut within one timeout
    // and a sweep from here; all 200 sockets must be gone (not "most": a straggler left open would
    // read its whole response when it resumes), so the wait is for every descriptor to go. "Quiet"
    // is read from CPU time: a visitor whose loopback socket buffers still grow (TCP autotuning)
    // is blocked a little later and cut a sweep or two after the others (once in five runs, when
    // this loop still stopped at two descriptors above the baseline); one more timeout allows it.
    const deadline = allStalledAt + filledAfterMs + STALL_TIMEOUT_MS * 2.25 + 5_000;
    let relayFds = await openFds(relayPid);
    while (relayFds > baseline.relay.fds && Date.now() < deadline) {
      await delay(50);
      relayFds = await openFds(relayPid);
    }
    const cutAfterMs = Date.now() - allStalledAt;
    sampling = false;
    await sampler;
    assert.ok(relayFds <= baseline.relay.fds + 2, `relay fds ${relayFds}, baseline ${baseline.relay.fds}`);
    const early = fdSamples.filter((s) => s.at < firstStalledAt + STALL_TIMEOUT_MS);
    assert.ok(
      early.every((s) => s.fds >= baseline.relay.fds + STALLED),
      `a stalled visitor was cut before the stall timeout: ${JSON.stringify(early)}`,
    );
    assert.ok(
      quietOthersAt < firstStalledAt + STALL_TIMEOUT_MS,
      'the other visitors ran while all were stalled',
    );
    // The visitors read what was queued for them before the cut, then see the end: always short.
    for (const v of visitors) v.socket.resume();
    await Promise.all(visitors.map((v) => v.closed));
    for (const v of visitors) assert.ok(v.received < RESPONSE_BYTES, `a cut response, ${v.received} bytes`);
    const received = visitors.map((v) => v.received).sort((a, b) => a - b);
    let agentFds = await openFds(agentPid);
    while (agentFds > baseline.agent.fds + 5 && Date.now() < deadline) {
      await delay(100);
      agentFds = await openFds(agentPid);
    }
    assert.ok(agentFds <= baseline.agent.fds + 5, `agent fds ${agentFds}, baseline ${baseline.agent.fds}`);

    // The session's flow control bounds what the relay holds per stalled response to one stream window
    // (1 MiB), and the agent to a write buffer; without it 200 × 64 MiB would pile up. RSS also
    // holds socket read buffers already let go but not yet collected: those that lived long enough
    // to reach V8's old generation go at its next full collection, which V8 starts once external
    // memory grew by 64 MiB (kExternalAllocationSoftLimit). Since the renewing tables (fewer full
    // collections) the relay's growth measured 229–307 MiB over six runs.
    // Visitors whose socket buffers still took bytes fast look like fast readers, so some windows
    // grow before the stall; all growth together is bounded by the relay's budget.
    const gcSlack = 64 * MiB;
    const relayGrowth = peak.relay.rss - baseline.relay.rss;
    const agentGrowth = peak.agent.rss - baseline.agent.rss;
    assert.ok(
      relayGrowth < STALLED * 1.5 * MiB + WINDOW_GROWTH_BUDGET + gcSlack,
      `relay grew ${relayGrowth} bytes`,
    );
    assert.ok(agentGrowth < STALLED * 1.5 * MiB + gcSlack, `agent grew ${agentGrowth} bytes`);
    const after = { relay: await processFigures(relayPid), agent: await processFigures(agentPid) };
    const mb = (n: number): string => `${(n / MiB).toFixed(0)} MiB`;
    t.diagnostic(
      `${STALLED} stalled after ${allStalledAt - started} ms; buffers full after ${filledAfterMs} ms; then 4 × 8 MiB others verified in ${othersStalledMs} ms (alone: ${othersAloneMs} ms); ` +
        `stalled cut after ${cutAfterMs} ms (timeout ${STALL_TIMEOUT_MS}); each had read ${mb(received[0] ?? 0)}–${mb(received.at(-1) ?? 0)}`,
    );
    t.diagnostic(
      `relay rss ${mb(baseline.relay.rss)} → peak ${mb(peak.relay.rss)} → ${mb(after.relay.rss)}, fds ${baseline.relay.fds} → ${peak.relay.fds} → ${after.relay.fds}; ` +
        `agent rss ${mb(baseline.agent.rss)} → peak ${mb(peak.agent.rss)} → ${mb(after.agent.rss)}, fds ${baseline.agent.fds} → ${peak.agent.fds} → ${after.agent.fds}`,
    );
  });
});
