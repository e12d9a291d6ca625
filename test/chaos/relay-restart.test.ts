import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { get } from 'node:http';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type CliProcess, startRelayProcess } from '../helpers/processes.js';
import { until } from '../helpers/wait.js';

const AGENTS = 200;
/** 200 agents × 2 sessions from one address register at once after a restart. */
const RELAY_FLAGS = ['--registration-rate', '100000', '--log-level', 'warn'];
const AGENTS_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'agents-process.js');

interface AgentEvent {
  event: 'connected' | 'disconnected' | 'reconnecting';
  agent: number;
  connection: number;
  label?: string;
  attempt?: number;
  delayMs?: number;
  at: number;
}

/** The agents process: every event it printed, and a way to wait for a condition on them. */
function startAgents(relay: string, count: number): { child: ChildProcess; events: AgentEvent[] } {
  const child = spawn(process.execPath, [AGENTS_SCRIPT, relay, String(count), '2'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const events: AgentEvent[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) =>
    events.push(JSON.parse(line) as AgentEvent),
  );
  return { child, events };
}

/** GET through the relay by path routing; resolves with the status, or 0 when the connection failed. */
function request(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.once('error', () => resolve({ status: 0, body }));
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve({ status: 0, body: '' }));
  });
}

/** The most values of `sorted` that fit in one window of `width`. */
function busiestWindow(sorted: number[], width: number): number {
  let most = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while ((sorted[i] as number) - (sorted[j] as number) >= width) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

describe(`chaos: the relay restarts under steady load with ${AGENTS} agents`, () => {
  let relay: CliProcess;
  let port: number;
  let agents: { child: ChildProcess; events: AgentEvent[] };

  before(async () => {
    ({ relay, port } = await startRelayProcess(RELAY_FLAGS));
    agents = startAgents(`tcp://127.0.0.1:${port}`, AGENTS);
  });
  after(async () => {
    agents?.child.kill('SIGKILL');
    await relay?.stop('SIGKILL');
  });

  test('every agent comes back under its name, spread out by jitter; no request fails once they are back', async (t) => {
    const connectedAgents = (since: number): Set<number> =>
      new Set(agents.events.filter((e) => e.event === 'connected' && e.at >= since).map((e) => e.agent));
    await until(() => connectedAgents(0).size === AGENTS, `${AGENTS} agents connected`, 60_000);
    const labels = new Map<number, string>();
    for (const e of agents.events) if (e.event === 'connected') labels.set(e.agent, e.label as string);

    // Steady load: a request to a random tunnel every 10 ms, each recorded with its outcome.
    // `at`: when sent; `done`: when answered (or failed).
    const outcomes: { at: number; done: number; status: number }[] = [];
    let loading = true;
    const loadStartedAt = Date.now();
    const load = (async () => {
      const inFlight = new Set<Promise<void>>();
      while (loading && Date.now() - loadStartedAt < 90_000) {
        const label = labels.get(Math.floor(Math.random() * AGENTS)) as string;
        const sent = Date.now();
        const one = request(port, `/${label}/load`).then((res) => {
          outcomes.push({
            at: sent,
            done: Date.now(),
            status: res.body === `ok /load` ? res.status : res.status || 0,
          });
          inFlight.delete(one);
        });
        inFlight.add(one);
        await delay(10);
      }
      await Promise.all(inFlight);
    })();
    await delay(1_000);

    // The restart: SIGTERM (GOAWAY, drain, exit 0), then a new relay on the same port.
    const stoppedAt = Date.now();
    assert.equal(await relay.stop('SIGTERM'), 0);
    ({ relay } = await startRelayProcess(RELAY_FLAGS, port));
    const upAt = Date.now();
    await until(() => connectedAgents(upAt).size === AGENTS, `${AGENTS} agents back`, 60_000);
    const allBackAt = Date.now();
    await delay(1_000);
    loading = false;
    await load;

    // Same names: each agent's label after the restart is the one it had.
    for (const e of agents.events) {
      if (e.event === 'connected') assert.equal(e.label, labels.get(e.agent));
    }
    // Every tunnel answers through the new relay.
    const labelList = [...labels.values()];
    for (let i = 0; i < labelList.length; i += 20) {
      const batch = await Promise.all(labelList.slice(i, i + 20).map((l) => request(port, `/${l}/check`)));
      for (const res of batch) assert.deepEqual(res, { status: 200, body: 'ok /check' });
    }

    // Spread: the first reconnection of each agent after the new relay was up.
    const firstBack = new Map<number, number>();
    for (const e of agents.events) {
      if (e.event === 'connected' && e.at >= upAt && !firstBack.has(e.agent))
        firstBack.set(e.agent, e.at - upAt);
    }
    const delays = [...firstBack.values()].sort((a, b) => a - b);
    // No thundering herd: the sessions' first dials after the relay's GOAWAY are spread by jitter.
    // Without it every session would dial at the same instant.
    const firstDials = agents.events
      .filter((e) => e.event === 'reconnecting' && e.attempt === 1 && e.at >= stoppedAt)
      .map((e) => e.at + (e.delayMs as number))
      .sort((a, b) => a - b);
    assert.equal(firstDials.length, AGENTS * 2, 'every session dialled again');
    const busiest = busiestWindow(firstDials, 100);
    assert.ok(
      busiest <= firstDials.length * 0.4,
      `${busiest} of ${firstDials.length} sessions dialled within 100 ms`,
    );
    const after = outcomes.filter((o) => o.at >= allBackAt);
    const failedAfter = after.filter((o) => o.status !== 200);
    assert.equal(
      failedAfter.length,
      0,
      `requests failed after every agent was back: ${JSON.stringify(failedAfter.slice(0, 5))}`,
    );
    // A request sent a moment before SIGTERM may reach a relay that has stopped accepting: it
    // belongs to the restart, not to the steady state before it.
    const during = outcomes.filter((o) => o.done >= stoppedAt && o.at < allBackAt);
    const byStatus = new Map<number, number>();
    for (const o of during) byStatus.set(o.status, (byStatus.get(o.status) ?? 0) + 1);
    const before = outcomes.filter((o) => o.done < stoppedAt);
    assert.ok(
      before.every((o) => o.status === 200),
      'requests before the restart all succeeded',
    );
    t.diagnostic(
      `relay down ${upAt - stoppedAt} ms; agents back after ${percentile(delays, 10)} / ${percentile(delays, 50)} / ` +
        `${percentile(delays, 90)} / ${delays.at(-1)} ms (p10/p50/p90/max); first dials after GOAWAY spread over ${(firstDials.at(-1) ?? 0) - (firstDials[0] ?? 0)} ms, busiest 100 ms: ${busiest} of ${firstDials.length}; ` +
        `agents back in the busiest 100 ms: ${busiestWindow(delays, 100)}`,
    );
    t.diagnostic(
      `requests: ${before.length} before (all 200), ${during.length} during (${[...byStatus].map(([s, n]) => `${n}× ${s || 'refused'}`).join(', ')}), ${after.length} after (all 200)`,
    );
  });
});
