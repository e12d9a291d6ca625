// `npm run soak [-- --minutes 10 --sample-seconds 10]`: mixed traffic through a relay and an agent
// (each in its own process) for a fixed time — small and 1 MiB HTTP downloads, uploads, WebSocket
// and TCP-preflight echoes — while every agent session is cut every 30 s so the agent reconnects.
// RSS, heap (after a full GC) and handles of both processes are sampled; the run fails (exit 1)
// when the second half grew beyond the tolerances below, or when any transfer that completed
// carried wrong bytes. Everything runs on loopback and stops by itself.
import { type ChildProcess, fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import type { AssignedService } from '../src/session/protocol.js';
import { connect } from '../src/transport/connect.js';
import { startTcpEcho, startWebSocketEcho } from '../test/helpers/echo.js';
import { startFaultProxy } from '../test/helpers/fault-proxy.js';
import { sha256OfPattern, startOrigin } from '../test/helpers/origin.js';

const { values } = parseArgs({
  options: { minutes: { type: 'string' }, 'sample-seconds': { type: 'string' } },
});
const durationMs = Number(values.minutes ?? 10) * 60_000;
const sampleMs = Number(values['sample-seconds'] ?? 10) * 1000;
const CUT_EVERY_MS = 30_000;
/** An operation that has not finished after this failed (a cut can leave a socket silent). */
const OP_TIMEOUT_MS = 10_000;
const MiB = 1 << 20;
/** Growth allowed between the early and the late part of the run (medians of samples). */
const TOLERANCE = { heapUsed: 8 * MiB, rss: 32 * MiB, handles: 10, fds: 10 };

interface Stats {
  rss: number;
  heapUsed: number;
  external: number;
  handles: number;
  fds: number;
}

const here = dirname(fileURLToPath(import.meta.url));

async function startNode(args: string[]): Promise<{ child: ChildProcess; ready: unknown }> {
  const child = fork(join(here, 'soak-node.js'), args, { execArgv: ['--expose-gc'], stdio: 'inherit' });
  const [message] = (await once(child, 'message')) as [{ ready: unknown }];
  return { child, ready: message.ready };
}

async function statsOf(child: ChildProcess): Promise<Stats> {
  child.send('stats');
  const [message] = (await once(child, 'message')) as [{ stats: Omit<Stats, 'fds'> }];
  const fds = (await readdir(`/proc/${child.pid}/fd`)).length;
  return { ...message.stats, fds };
}

function httpCall(port: number, path: string, body?: Buffer): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: body ? 'POST' : 'GET', agent: false, timeout: OP_TIMEOUT_MS },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.once('error', reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end(body);
  });
}

async function wsEcho(url: string): Promise<boolean> {
  const ws = new WebSocket(url);
  ws.on('error', () => {});
  const signal = AbortSignal.timeout(OP_TIMEOUT_MS);
  try {
    await once(ws, 'open', { signal });
    for (let i = 0; i < 10; i++) {
      const text = `message ${i} ${randomBytes(8).toString('hex')}`;
      ws.send(text);
      const [data] = (await once(ws, 'message', { signal })) as [Buffer];
      if (data.toString() !== text) return false;
    }
    return true;
  } finally {
    ws.terminate();
  }
}

async function tcpEcho(connectString: string): Promise<boolean> {
  const socket = await connect(connectString);
  socket.on('error', () => {});
  const signal = AbortSignal.timeout(OP_TIMEOUT_MS);
  try {
    const payload = randomBytes(4096);
    socket.write(payload);
    let got = Buffer.alloc(0);
    while (got.length < payload.length) {
      const [chunk] = (await once(socket, 'data', { signal })) as [Buffer];
      got = Buffer.concat([got, chunk]);
    }
    return got.equals(payload);
  } finally {
    socket.destroy();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const origin = await startOrigin();
  const tcpTarget = await startTcpEcho();
  const wsTarget = await startWebSocketEcho();
  const relay = await startNode(['relay']);
  const relayPort = Number(String(relay.ready).split(':').pop());
  // The tests' fault proxy between agent and relay: resetAll() cuts both agent sessions.
  const cutter = await startFaultProxy(relayPort);
  const agent = await startNode([
    'agent',
    `tcp://127.0.0.1:${cutter.port}`,
    origin.url,
    tcpTarget.target,
    wsTarget.target,
  ]);
  const services = new Map((agent.ready as AssignedService[]).map((s) => [s.name, s]));
  const web = services.get('web')?.label as string;
  const ws = services.get('ws')?.label as string;
  const echoConnect = services.get('echo')?.connect as string;

  const counts = new Map<string, { ok: number; failed: number; wrong: number }>();
  const record = (kind: string, outcome: 'ok' | 'failed' | 'wrong'): void => {
    const entry = counts.get(kind) ?? { ok: 0, failed: 0, wrong: 0 };
    entry[outcome]++;
    counts.set(kind, entry);
  };
  const deadline = Date.now() + durationMs;
  const download = sha256OfPattern(MiB);
  const loop = async (kind: string, once: () => Promise<boolean>): Promise<void> => {
    while (Date.now() < deadline) {
      try {
        record(kind, (await once()) ? 'ok' : 'wrong');
      } catch {
        record(kind, 'failed');
        await delay(50);
      }
    }
  };
  const small = async (): Promise<boolean> => {
    const res = await httpCall(relayPort, `/${web}/bytes?n=64`);
    if (res.status !== 200) throw new Error(String(res.status));
    return res.body.length === 64;
  };
  const workers = [
    ...Array.from({ length: 4 }, () => loop('http small', small)),
    loop('http 1 MiB down', async () => {
      const res = await httpCall(relayPort, `/${web}/bytes?n=${MiB}`);
      if (res.status !== 200) throw new Error(String(res.status));
      return createHash('sha256').update(res.body).digest('hex') === download;
    }),
    loop('http 256 KiB up', async () => {
      const body = randomBytes(256 * 1024);
      const res = await httpCall(relayPort, `/${web}/upload`, body);
      if (res.status !== 200) throw new Error(String(res.status));
      const answer = JSON.parse(res.body.toString()) as { sha256: string };
      return answer.sha256 === createHash('sha256').update(body).digest('hex');
    }),
    loop('websocket echo', () => wsEcho(`ws://127.0.0.1:${relayPort}/${ws}/`)),
    loop('tcp preflight echo', () => tcpEcho(echoConnect)),
  ];

  const samples: { at: number; relay: Stats; agent: Stats }[] = [];
  const started = Date.now();
  let cuts = 0;
  let nextCut = started + CUT_EVERY_MS;
  process.stdout.write(`soak: ${durationMs / 60_000} min, a sample every ${sampleMs / 1000} s\n`);
  while (Date.now() < deadline) {
    await delay(Math.min(sampleMs, Math.max(0, deadline - Date.now())));
    if (Date.now() >= nextCut) {
      cutter.resetAll();
      cuts++;
      nextCut += CUT_EVERY_MS;
    }
    const sample = {
      at: Date.now() - started,
      relay: await statsOf(relay.child),
      agent: await statsOf(agent.child),
    };
    samples.push(sample);
    const total = [...counts.values()].reduce((n, c) => n + c.ok, 0);
    process.stdout.write(
      `${(sample.at / 1000).toFixed(0).padStart(5)} s  ops ${total}  relay heap ${(sample.relay.heapUsed / MiB).toFixed(1)} MiB rss ${(sample.relay.rss / MiB).toFixed(0)} MiB handles ${sample.relay.handles} fds ${sample.relay.fds}  ` +
        `agent heap ${(sample.agent.heapUsed / MiB).toFixed(1)} MiB rss ${(sample.agent.rss / MiB).toFixed(0)} MiB handles ${sample.agent.handles} fds ${sample.agent.fds}\n`,
    );
  }
  await Promise.all(workers);

  // Trend: the first 20 % of samples are warm-up; compare the medians of the next third and the last third.
  const steady = samples.slice(Math.ceil(samples.length * 0.2));
  const third = Math.max(1, Math.floor(steady.length / 3));
  const early = steady.slice(0, third);
  const late = steady.slice(-third);
  let failed = false;
  process.stdout.write('\nprocess  figure     early → late (median)   growth   allowed\n');
  for (const side of ['relay', 'agent'] as const) {
    for (const figure of Object.keys(TOLERANCE) as (keyof typeof TOLERANCE)[]) {
      const a = median(early.map((s) => s[side][figure]));
      const b = median(late.map((s) => s[side][figure]));
      const growth = b - a;
      const over = growth > TOLERANCE[figure];
      failed ||= over;
      const show = (n: number): string =>
        figure === 'heapUsed' || figure === 'rss' ? `${(n / MiB).toFixed(1)} MiB` : String(n);
      process.stdout.write(
        `${side.padEnd(8)} ${figure.padEnd(10)} ${show(a).padStart(10)} → ${show(b).padEnd(10)} ${show(growth).padStart(9)}   ${show(TOLERANCE[figure])}${over ? '  OVER' : ''}\n`,
      );
    }
  }
  process.stdout.write(`\nsessions cut ${cuts} times\n`);
  for (const [kind, c] of counts) {
    process.stdout.write(`${kind.padEnd(20)} ok ${c.ok}  failed ${c.failed}  wrong bytes ${c.wrong}\n`);
    failed ||= c.wrong > 0;
  }
  relay.child.kill();
  agent.child.kill();
  await cutter.close();
  await Promise.all([origin.close(), tcpTarget.close(), wsTarget.close()]);
  process.stdout.write(failed ? '\nsoak: FAILED\n' : '\nsoak: ok\n');
  process.exit(failed ? 1 : 0);
}

await main();
