// `npm run bench -- --peers DIR`: Postern beside the tunnels users would pick instead, in one run.
// DIR is laid out like ../shared/peers/: one `<peer>.sh` a tunnel (`start ORIGIN_PORT` prints
// "URL HOSTHEADER", `stop` kills what it started), `origin.js` the shared origin, binaries built by
// its rebuild.sh. Every target takes its turn in each round (the order rotates), against the same
// origin: wrk -t1 -c50 on a 13-byte file (2 s warm-up, then the measured run) and 100 MiB
// downloads: the first after start on its own (its sha256 checked in round 1), the median of
// three more, and the median of four after those (the steady state). Ratios are per round against `direct`, then medians.
// Postern runs as an HTTP tunnel (Host routing) and as a TCP service reached through
// `postern connect --listen`, the same path as the raw-TCP peers (rathole, bore, frp-tcp).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { freePort, waitForPort } from '../test/helpers/binaries.js';
import { CLI, startCli } from '../test/helpers/processes.js';

const run = promisify(execFile);

/** Scripts in DIR that are not tunnels. pagekite waits ~1.1 s per new connection by design. */
const NOT_TARGETS = new Set(['_lib', 'rebuild', 'side-by-side', 'pagekite']);

export interface PeerRow {
  target: string;
  rps: number;
  rpsRatio: number;
  p50: number;
  p99: number;
  /** The first 100 MiB download after the target started. */
  firstMbps: number;
  /** The median of the three downloads after it. */
  mbps: number;
  mbpsRatio: number;
  /** The median of downloads 5 to 8: a warm process's steady state. */
  steadyMbps: number;
  sha: string;
}

/**
 * Downloads measured after the first one. A process's first large transfer pays for growing its
 * heap and for compiling its byte path (Postern's: 150–270 MB/s where later ones run at 400–500),
 * which a tunnel that runs for days pays once; the first download keeps a column of its own.
 */
const WARM_DOWNLOADS = 3;
/**
 * Downloads measured after those, for the steady state. A Node process's byte path keeps getting
 * faster for about its first four 100 MiB (three plain `pipe()` hops do the same, see
 * docs/benchmarks.md); processes compiled ahead of time gain less. The two columns keep both.
 */
const STEADY_DOWNLOADS = 4;

interface Target {
  name: string;
  start(originPort: number): Promise<{ url: string; host: string | undefined }>;
  stop(): Promise<void>;
}

/** A peer of DIR, through its own start and stop script. */
function scriptTarget(dir: string, name: string): Target {
  const script = join(dir, `${name}.sh`);
  return {
    name,
    start: async (originPort) => {
      const { stdout } = await run('bash', [script, 'start', String(originPort)], { timeout: 120_000 });
      const [url = '', host = '-'] = stdout.trim().split('\n').pop()?.split(' ') ?? [];
      return { url, host: host === '-' ? undefined : host };
    },
    stop: async () => {
      await run('bash', [script, 'stop'], { timeout: 30_000 }).catch(() => {});
    },
  };
}

/**
 * Postern's TCP path: a relay, an agent exposing the origin as a TCP service, and `postern
 * connect --listen` on a local port, all processes of the current build; wrk and curl speak
 * HTTP to that port, which Postern carries as raw bytes (like rathole, bore and frp-tcp).
 */
function posternTcpTarget(): Target {
  let processes: ChildProcess[] = [];
  return {
    name: 'postern-tcp',
    start: async (originPort) => {
      const dir = join(process.env.PEERS_STATE ?? '/tmp/postern-peers', 'run', 'postern-tcp');
      mkdirSync(dir, { recursive: true });
      const key = join(dir, 'agent.key');
      if (!existsSync(key)) await startCli(['keygen', '--out', key]).exited;
      const relay = startCli([
        'relay',
        '--listen',
        'tcp://127.0.0.1:0',
        // <label>.localhost: the connection string the agent reports resolves to loopback.
        '--admin',
        'off',
        '--state-dir',
        dir,
        '--json',
      ]);
      processes.push(relay.child);
      const listening = await relay.nextEvent((e) => e.event === 'listening');
      const address = (listening.listen as string[])[0] as string;
      const agent = startCli([
        'expose',
        `tcp://127.0.0.1:${originPort}`,
        '--name',
        'web',
        '--relay',
        address,
        '--key',
        key,
        '--no-inspect',
        '--json',
      ]);
      processes.push(agent.child);
      const ready = await agent.nextEvent((e) => e.event === 'ready');
      const [service] = ready.services as { connect: string }[];
      const port = await freePort();
      const connect = spawn(
        process.execPath,
        [CLI, 'connect', service?.connect as string, '--listen', `tcp://127.0.0.1:${port}`],
        { stdio: 'ignore' },
      );
      processes.push(connect);
      await waitForPort(port);
      return { url: `http://127.0.0.1:${port}/`, host: undefined };
    },
    stop: async () => {
      await Promise.all(
        processes.map(async (child) => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = new Promise((resolve) => child.once('exit', resolve));
          child.kill('SIGTERM');
          await Promise.race([exited, delay(3_000)]);
          child.kill('SIGKILL');
        }),
      );
      processes = [];
    },
  };
}

/** The targets DIR holds, Postern's TCP path added after its HTTP one; and the scripts it lacks programs for. */
function targetsIn(dir: string): Target[] {
  const names = readdirSync(dir)
    .filter((file) => file.endsWith('.sh'))
    .map((file) => file.slice(0, -3))
    .filter((name) => !NOT_TARGETS.has(name))
    .sort((a, b) => (a === 'direct' ? -1 : b === 'direct' ? 1 : a.localeCompare(b)));
  const targets = names.map((name) => scriptTarget(dir, name));
  const postern = targets.findIndex((t) => t.name === 'postern');
  targets.splice(postern < 0 ? targets.length : postern + 1, 0, posternTcpTarget());
  return targets;
}

async function wrk(url: string, host: string | undefined, seconds: number) {
  const headers = host === undefined ? [] : ['-H', `Host: ${host}`];
  await run('wrk', ['-t1', '-c50', '-d2s', ...headers, url], { timeout: 60_000 });
  const { stdout } = await run('wrk', ['-t1', '-c50', `-d${seconds}s`, '--latency', ...headers, url], {
    timeout: (seconds + 60) * 1000,
  });
  const value = (pattern: RegExp): string => pattern.exec(stdout)?.[1] ?? 'NaN';
  const ms = (text: string): number =>
    text.endsWith('us')
      ? Number.parseFloat(text) / 1000
      : text.endsWith('ms')
        ? Number.parseFloat(text)
        : Number.parseFloat(text) * 1000;
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1];
  if (non2xx !== undefined) throw new Error(`${non2xx} answers were not 2xx`);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+)/.exec(stdout);
  if (errors?.slice(1).some((n) => Number(n) > 0)) throw new Error(errors[0]);
  return {
    rps: Number(value(/Requests\/sec:\s+([\d.]+)/)),
    p50: ms(value(/\s50%\s+(\S+)/)),
    p99: ms(value(/\s99%\s+(\S+)/)),
  };
}

async function download(url: string, host: string | undefined): Promise<number> {
  const headers = host === undefined ? [] : ['-H', `Host: ${host}`];
  const { stdout } = await run(
    'curl',
    ['-s', '-m', '120', ...headers, '-o', '/dev/null', '-w', '%{speed_download}', `${url}big.bin`],
    { timeout: 130_000 },
  );
  return Number(stdout) / 1e6;
}

/**
 * The first download, `WARM_DOWNLOADS` more and `STEADY_DOWNLOADS` after those (medians), and the
 * body's check in round 1.
 */
async function bulk(url: string, host: string | undefined, checkAgainst: string | undefined) {
  const firstMbps = await download(url, host);
  const warm: number[] = [];
  for (let i = 0; i < WARM_DOWNLOADS; i++) warm.push(await download(url, host));
  const steady: number[] = [];
  for (let i = 0; i < STEADY_DOWNLOADS; i++) steady.push(await download(url, host));
  let sha = '-';
  if (checkAgainst !== undefined) {
    const { stdout: body } = await run(
      'sh',
      ['-c', `curl -s -m 120 ${host === undefined ? '' : `-H 'Host: ${host}'`} '${url}big.bin' | sha256sum`],
      { timeout: 130_000 },
    );
    sha = body.split(' ')[0] === checkAgainst ? 'ok' : 'BAD';
  }
  return { firstMbps, mbps: median(warm), steadyMbps: median(steady), sha };
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

/**
 * Every target of DIR (and Postern's two paths) in `rounds` rounds; prints progress with `say`
 * and returns one row a target, plus the targets that could not start and why.
 */
export async function sideBySide(
  dir: string,
  options: { rounds: number; wrkSeconds: number; say: (line: string) => void },
): Promise<{ rows: PeerRow[]; missing: { target: string; reason: string }[] }> {
  if (!existsSync(join(dir, 'origin.js')) || !existsSync(join(dir, 'direct.sh')))
    throw new Error(`${dir} is not laid out like ../shared/peers/ (origin.js and direct.sh are missing)`);
  const state = process.env.PEERS_STATE ?? '/tmp/postern-peers';
  const folder = join(state, 'origin');
  mkdirSync(folder, { recursive: true });
  if (!existsSync(join(folder, 'index.html'))) writeFileSync(join(folder, 'index.html'), 'hello-origin\n');
  if (!existsSync(join(folder, 'big.bin')))
    writeFileSync(join(folder, 'big.bin'), randomBytes(100 * 1024 * 1024));
  const bigSha = await sha256(join(folder, 'big.bin'));
  const originPort = await freePort();
  const origin = spawn(process.execPath, [join(dir, 'origin.js'), String(originPort), folder], {
    stdio: 'ignore',
  });
  const targets = targetsIn(dir);
  const results = new Map<
    string,
    {
      round: number;
      rps: number;
      p50: number;
      p99: number;
      firstMbps: number;
      mbps: number;
      steadyMbps: number;
      sha: string;
    }[]
  >();
  const missing = new Map<string, string>();
  try {
    await waitForPort(originPort);
    for (let round = 1; round <= options.rounds; round++) {
      const turn = targets.filter((t) => !missing.has(t.name));
      const offset = (round - 1) % turn.length;
      for (let i = 0; i < turn.length; i++) {
        const target = turn[(i + offset) % turn.length] as Target;
        let address: { url: string; host: string | undefined };
        try {
          address = await target.start(originPort);
        } catch (error) {
          const said = String((error as { stderr?: string }).stderr ?? (error as Error).message).trim();
          missing.set(target.name, said.split('\n').pop() ?? 'did not start');
          options.say(`  ${target.name}: not measured (${missing.get(target.name)})`);
          await target.stop();
          continue;
        }
        try {
          const load = await wrk(address.url, address.host, options.wrkSeconds);
          const bytes = await bulk(address.url, address.host, round === 1 ? bigSha : undefined);
          const row = { round, ...load, ...bytes };
          results.set(target.name, [...(results.get(target.name) ?? []), row]);
          options.say(
            `  round ${round} ${target.name}: ${Math.round(load.rps)} req/s, p99 ${load.p99.toFixed(1)} ms, ${bytes.firstMbps.toFixed(0)}, ${bytes.mbps.toFixed(0)} then ${bytes.steadyMbps.toFixed(0)} MB/s${bytes.sha === '-' ? '' : ` (sha256 ${bytes.sha})`}`,
          );
        } catch (error) {
          options.say(`  round ${round} ${target.name}: failed (${(error as Error).message.split('\n')[0]})`);
        } finally {
          await target.stop();
          await delay(500);
        }
      }
    }
  } finally {
    origin.kill();
  }
  const direct = new Map((results.get('direct') ?? []).map((r) => [r.round, r]));
  const rows: PeerRow[] = [];
  for (const [target, runs] of results) {
    const paired = runs.filter((r) => direct.has(r.round));
    rows.push({
      target,
      rps: median(runs.map((r) => r.rps)),
      rpsRatio: median(paired.map((r) => r.rps / (direct.get(r.round)?.rps ?? Number.NaN))),
      p50: median(runs.map((r) => r.p50)),
      p99: median(runs.map((r) => r.p99)),
      firstMbps: median(runs.map((r) => r.firstMbps)),
      mbps: median(runs.map((r) => r.mbps)),
      mbpsRatio: median(paired.map((r) => r.mbps / (direct.get(r.round)?.mbps ?? Number.NaN))),
      steadyMbps: median(runs.map((r) => r.steadyMbps)),
      sha: [...new Set(runs.map((r) => r.sha).filter((s) => s !== '-'))].join(',') || '-',
    });
  }
  rows.sort((a, b) => b.rpsRatio - a.rpsRatio);
  return { rows, missing: [...missing].map(([target, reason]) => ({ target, reason })) };
}

/** The rows as the Markdown table docs/benchmarks.md keeps. */
export function peersTable(rows: PeerRow[]): string {
  const lines = [
    '| target | req/s | × direct | p50 ms | p99 ms | first 100 MiB MB/s | 100 MiB MB/s | × direct | steady 100 MiB MB/s | sha256 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows)
    lines.push(
      `| ${r.target} | ${Math.round(r.rps).toLocaleString('en-US').replaceAll(',', ' ')} | ${r.rpsRatio.toFixed(2)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.firstMbps.toFixed(0)} | ${r.mbps.toFixed(0)} | ${r.mbpsRatio.toFixed(2)} | ${r.steadyMbps.toFixed(0)} | ${r.sha} |`,
    );
  return lines.join('\n');
}
