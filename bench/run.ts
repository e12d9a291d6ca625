// `npm run bench [-- --quick]`: the same workloads through the direct path (client → target) and
// through Postern (client → relay → agent → target), measured in one run and printed as ratios.
// Every process runs on loopback and stops by itself; results go to bench/results/<time>.json.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeCertificates } from '../test/helpers/certs.js';
import { startCli } from '../test/helpers/processes.js';
import { bytesPerIdleStream, relayBytesPerIdleTunnel } from './idle-memory.js';
import { peersTable, sideBySide } from './peers.js';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const peersAt = process.argv.indexOf('--peers');
/** `--peers DIR`: the side-by-side run of bench/peers.ts instead of the usual rows. */
const peersDir = peersAt < 0 ? undefined : process.argv[peersAt + 1];
const MiB = 1024 * 1024;
const settings = quick
  ? {
      wrkSeconds: 2,
      wrkRounds: 2,
      bulkMiB: 32,
      parallelMiB: 16,
      startRuns: 2,
      tcpMiB: 128,
      warmMiB: 64,
      // None: at smaller counts the processes' fixed growth shows as per-stream cost (13.5 KiB a
      // stream at 5 000 vs 10.6 at 10 000), and the full counts take the seconds --quick lacks.
      idleTunnels: 0,
      idleStreams: 0,
    }
  : {
      wrkSeconds: 10,
      wrkRounds: 5,
      bulkMiB: 100,
      parallelMiB: 64,
      startRuns: 5,
      tcpMiB: 1024,
      warmMiB: 1024,
      idleTunnels: 1_000,
      idleStreams: 10_000,
    };

interface Row {
  scenario: string;
  unit: string;
  direct: number | null;
  postern: number;
  /** postern / direct for throughput; for latency the added ms. */
  ratio: number | null;
  note?: string;
}

function ensureTools(): void {
  const missing = ['wrk', 'curl', 'iperf3'].filter((tool) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0)
    throw new Error(`the benchmark needs ${missing.join(', ')}: apt-get install ${missing.join(' ')}`);
  execFileSync(
    'sh',
    [
      '-c',
      `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(' ')}`,
    ],
    { stdio: 'inherit' },
  );
}

async function startOriginProcess(): Promise<{ port: number; stop(): void }> {
  return startHelperProcess('origin-process.js', []);
}

/** One way's delay of the "agent far away" rows: 50 ms round trips, a continent apart. */
const FAR_DELAY_MS = 25;

/** Starts one of the bench's helper scripts; it prints {"port": N} when it listens. */
async function startHelperProcess(script: string, args: string[]): Promise<{ port: number; stop(): void }> {
  const child = spawn(process.execPath, [join(here, script), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
  return { port: (JSON.parse(line) as { port: number }).port, stop: () => child.kill() };
}

/**
 * autocannon at a fixed 1 000 requests/s over 10 connections, in a process of its own: p50/p99
 * latency in ms from each response's exact time (its summary rounds to whole milliseconds).
 */
async function fixedRate(url: string, host: string | undefined): Promise<{ p50: number; p99: number }> {
  const { stdout } = await run(
    process.execPath,
    [join(here, 'fixed-rate.js'), url, host ?? '-', String(settings.wrkSeconds)],
    { timeout: (settings.wrkSeconds + 30) * 1000 },
  );
  const result = JSON.parse(stdout) as { p50: number; p99: number; requests: number; non2xx: number };
  if (result.non2xx > 0) throw new Error(`fixed-rate run got ${result.non2xx} non-2xx answers`);
  if (result.requests === 0) throw new Error('fixed-rate run got no answers');
  return result;
}

/** WebSocket echo with 50 connections in a process of its own: messages/s and p50/p99 in ms. */
async function webSocketEcho(url: string): Promise<{ messagesPerSecond: number; p50: number; p99: number }> {
  const { stdout } = await run(
    process.execPath,
    [join(here, 'ws-load.js'), url, '50', String(settings.wrkSeconds)],
    {
      timeout: (settings.wrkSeconds + 30) * 1000,
    },
  );
  return JSON.parse(stdout) as { messagesPerSecond: number; p50: number; p99: number };
}

/** iperf3 sending `mib` (default `settings.tcpMiB`) to 127.0.0.1:port over one TCP connection: MB/s. */
async function iperf(port: number, mib = settings.tcpMiB): Promise<number> {
  // The iperf3 server runs one test at a time and may still be closing the previous one (its end
  // comes through the tunnel a moment later): it then answers "busy", and a later try succeeds.
  for (let attempt = 1; ; attempt++) {
    const { stdout } = await run('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-n', `${mib}M`, '-J'], {
      timeout: 120_000,
    }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '{}' }));
    const result = JSON.parse(stdout) as {
      error?: string;
      end?: { sum_received?: { bits_per_second: number } };
    };
    const bitsPerSecond = result.end?.sum_received?.bits_per_second;
    if (bitsPerSecond !== undefined) return bitsPerSecond / 8 / 1e6;
    if (attempt === 5)
      throw new Error(`iperf3 to port ${port} failed: ${result.error ?? stdout.slice(0, 200)}`);
    await delay(500);
  }
}

/**
 * bench/tcp-send.ts in a process of its own: `settings.tcpMiB` over one connection opened with
 * Postern's client library (a preflight connection string, or a plain tcp:// one), MB/s.
 */
async function tcpSend(connectionString: string, mib = settings.tcpMiB): Promise<number> {
  const { stdout } = await run(process.execPath, [join(here, 'tcp-send.js'), connectionString, String(mib)], {
    timeout: 120_000,
  });
  return (JSON.parse(stdout) as { mbps: number }).mbps;
}

/** wrk with 50 connections: requests/s and p50/p99 latency in ms. */
async function wrk(
  url: string,
  host: string | undefined,
  seconds: number = settings.wrkSeconds,
): Promise<{ rps: number; p50: number; p99: number }> {
  const args = ['-t2', '-c50', `-d${seconds}s`, '--latency', ...(host ? ['-H', `Host: ${host}`] : []), url];
  const { stdout } = await run('wrk', args, { timeout: (seconds + 30) * 1000 });
  const ms = (label: string): number => {
    const match = new RegExp(`\\s${label}\\s+([\\d.]+)(us|ms|s)`).exec(stdout);
    if (!match) return Number.NaN;
    const value = Number(match[1]);
    return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
  };
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  if (non2xx) throw new Error(`wrk saw ${non2xx[1]} error responses on ${url}`);
  return { rps, p50: ms('50%'), p99: ms('99%') };
}

/** curl's own measured speed in bytes/s for one transfer. */
async function curlSpeed(args: string[], field: 'speed_download' | 'speed_upload'): Promise<number> {
  const { stdout } = await run(
    'curl',
    ['-sS', '-o', '/dev/null', '-w', `%{http_code} %{${field}}`, ...args],
    { timeout: 300_000, maxBuffer: 1 << 20 },
  );
  const [code, speed] = stdout.trim().split(' ');
  if (code !== '200') throw new Error(`curl got ${code} for ${args.join(' ')}`);
  return Number(speed);
}

async function parallelDownloads(url: string, host: string | undefined, streams: number): Promise<number> {
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: streams }, () =>
      curlSpeed(
        [...(host ? ['-H', `Host: ${host}`] : []), `${url}/bytes?n=${settings.parallelMiB * MiB}`],
        'speed_download',
      ),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return (streams * settings.parallelMiB * MiB) / seconds;
}

/** A loopback port free right now (bind to 0, read it, close). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function repeat<T>(times: number, work: () => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < times; i++) results.push(await work());
  return results;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/**
 * Every run once a round, for `rounds` rounds: the paths a ratio compares see the machine in the
 * same minutes. Run one after the other, this machine's drift of about a tenth over tens of
 * seconds came out as differences between them.
 */
async function inTurns<K extends string>(
  rounds: number,
  runs: Record<K, () => Promise<number>>,
): Promise<Record<K, number[]>> {
  const keys = Object.keys(runs) as K[];
  const results = Object.fromEntries(keys.map((key) => [key, []])) as unknown as Record<K, number[]>;
  for (let round = 0; round < rounds; round++) for (const key of keys) results[key].push(await runs[key]());
  return results;
}

/** The median of the rounds' ratios a[i] / b[i]. */
function medianRatio(a: number[], b: number[]): number {
  return median(a.map((value, i) => value / (b[i] ?? Number.NaN)));
}

/**
 * `--peers DIR`: every peer of DIR and Postern's HTTP and TCP paths in turns (bench/peers.ts); the
 * table on stdout and in bench/results/peers-<time>.md, the missing peers named.
 */
async function mainPeers(dir: string): Promise<void> {
  ensureTools();
  const started = performance.now();
  const say = (text: string): void => {
    process.stderr.write(`bench: [${((performance.now() - started) / 1000).toFixed(0)} s] ${text}\n`);
  };
  const rounds = quick ? 1 : 3;
  say(`side by side with the peers in ${dir}: ${rounds} round(s), each target in turn`);
  const { rows, missing } = await sideBySide(dir, { rounds, wrkSeconds: quick ? 2 : 5, say });
  const table = peersTable(rows);
  const header = `One run, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}, ${rounds} round(s): small GETs at 50 connections (wrk -t1, 13-byte file); 100 MiB downloads: the first after start, the median of the next three, and the median of four more (steady).`;
  const absent =
    missing.length === 0
      ? ''
      : `\n\nNot measured: ${missing.map((m) => `${m.target} (${m.reason})`).join('; ')}.`;
  process.stdout.write(`${header}\n\n${table}${absent}\n`);
  const resultsDir = join(here, '..', '..', 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `peers-${new Date().toISOString().replace(/[:.]/g, '-')}.md`);
  writeFileSync(file, `${header}\n\n${table}${absent}\n`);
  process.stderr.write(`bench: wrote ${file}\n`);
}

async function main(): Promise<void> {
  ensureTools();
  const work = mkdtempSync(join(tmpdir(), 'postern-bench-'));
  const origin = await startOriginProcess();
  const certs = makeCertificates();
  const relay = startCli([
    'relay',
    '--listen',
    'tcp://127.0.0.1:0',
    '--listen',
    'tcps://127.0.0.1:0',
    '--tls-cert',
    certs.cert,
    '--tls-key',
    certs.key,
    '--json',
    '--log-level',
    'warn',
  ]);
  const rows: Row[] = [];
  const stops: (() => unknown)[] = [() => relay.stop(), () => origin.stop()];
  try {
    const [relayAddress, relayTlsAddress] = (await relay.nextEvent((e) => e.event === 'listening'))
      .listen as [string, string];
    const relayPort = Number(relayAddress.split(':').pop());
    const relayTlsPort = Number(relayTlsAddress.split(':').pop());
    const keyFile = join(work, 'agent.key');
    await startCli(['keygen', '--out', keyFile]).exited;
    /** `postern expose <target> --relay <relay> --key <key> --json …flags` as a process. */
    const expose = (target: string, flags: string[] = [], relay = relayAddress, key = keyFile) =>
      startCli(['expose', target, '--relay', relay, '--key', key, '--json', ...flags]);
    const startAgent = (address = relayAddress): ReturnType<typeof startCli> =>
      expose(`http://127.0.0.1:${origin.port}`, [], address);
    const agent = startAgent();
    stops.unshift(() => agent.stop());
    const ready = await agent.nextEvent((e) => e.event === 'ready');
    const label = (ready.services as { label: string }[])[0]?.label as string;
    const direct = `http://127.0.0.1:${origin.port}`;
    const tunnel = `http://127.0.0.1:${relayPort}`;
    const tunnelHost = `${label}.localhost:${relayPort}`;
    const hostArgs = ['-H', `Host: ${tunnelHost}`];
    const started = performance.now();
    const say = (text: string): void => {
      process.stderr.write(`bench: [${((performance.now() - started) / 1000).toFixed(0)} s] ${text}\n`);
    };

    /** The two-hop pipe baseline in front of 127.0.0.1:targetPort: the port to dial. */
    const startPipe = async (targetPort: number): Promise<number> => {
      const hopB = await startHelperProcess('pipe-hop.js', [String(targetPort)]);
      const hopA = await startHelperProcess('pipe-hop.js', [String(hopB.port)]);
      stops.push(hopA.stop, hopB.stop);
      return hopA.port;
    };
    /** An agent exposing 127.0.0.1:port as TCP service `name`: the connection string clients dial. */
    const exposeTcp = async (port: number, name: string): Promise<string> => {
      const tcpAgent = expose(`tcp://127.0.0.1:${port}`, ['--name', name]);
      stops.unshift(() => tcpAgent.stop());
      const services = (await tcpAgent.nextEvent((e) => e.event === 'ready')).services;
      return (services as { connect: string }[])[0]?.connect as string;
    };

    // An agent with the inspector off, beside the default one: its own key, so its own tunnel.
    const quietKey = join(work, 'quiet.key');
    await startCli(['keygen', '--out', quietKey]).exited;
    const quiet = expose(`http://127.0.0.1:${origin.port}`, ['--no-inspect'], relayAddress, quietKey);
    stops.unshift(() => quiet.stop());
    const quietReady = await quiet.nextEvent((e) => e.event === 'ready');
    const quietHost = `${(quietReady.services as { label: string }[])[0]?.label}.localhost:${relayPort}`;

    const rounds = settings.wrkRounds;
    say(
      `small GET, 50 keep-alive connections: direct, Postern and Postern --no-inspect in turn, ` +
        `${rounds} rounds of ${settings.wrkSeconds / rounds} s each`,
    );
    await wrk(`${tunnel}/small`, tunnelHost, 2); // warm-up: JIT and connection pools
    await wrk(`${tunnel}/small`, quietHost, 2);
    // In turn, not one after the other: this machine's speed drifts by ±10 % over tens of seconds,
    // which a ratio of two runs minutes apart would take for a difference.
    const smallRuns: Record<'direct' | 'tunnel' | 'quiet', Awaited<ReturnType<typeof wrk>>[]> = {
      direct: [],
      tunnel: [],
      quiet: [],
    };
    for (let round = 0; round < rounds; round++) {
      const seconds = settings.wrkSeconds / rounds;
      smallRuns.direct.push(await wrk(`${direct}/small`, undefined, seconds));
      smallRuns.tunnel.push(await wrk(`${tunnel}/small`, tunnelHost, seconds));
      smallRuns.quiet.push(await wrk(`${tunnel}/small`, quietHost, seconds));
    }
    const medianOf = (runs: Awaited<ReturnType<typeof wrk>>[]) => ({
      rps: median(runs.map((r) => r.rps)),
      p50: median(runs.map((r) => r.p50)),
      p99: median(runs.map((r) => r.p99)),
    });
    const smallDirect = medianOf(smallRuns.direct);
    const smallTunnel = medianOf(smallRuns.tunnel);
    const smallQuiet = medianOf(smallRuns.quiet);
    const ratioOf = (a: typeof smallRuns.direct, b: typeof smallRuns.direct): number =>
      medianRatio(
        a.map((run) => run.rps),
        b.map((run) => run.rps),
      );
    rows.push({
      scenario: `small GET, 50 connections (median of ${rounds} rounds)`,
      unit: 'req/s',
      direct: smallDirect.rps,
      postern: smallTunnel.rps,
      ratio: ratioOf(smallRuns.tunnel, smallRuns.direct),
      note: 'ratio: median of the rounds',
    });
    rows.push({
      scenario: 'small GET p50 latency',
      unit: 'ms',
      direct: smallDirect.p50,
      postern: smallTunnel.p50,
      ratio: null,
      note: `+${(smallTunnel.p50 - smallDirect.p50).toFixed(2)} ms`,
    });
    rows.push({
      scenario: 'small GET p99 latency',
      unit: 'ms',
      direct: smallDirect.p99,
      postern: smallTunnel.p99,
      ratio: null,
      note: `+${(smallTunnel.p99 - smallDirect.p99).toFixed(2)} ms`,
    });

    say(`${settings.bulkMiB} MiB download and upload, one stream`);
    const bulk = settings.bulkMiB * MiB;
    const file = join(work, 'upload.bin');
    const writer = createWriteStream(file);
    for (let i = 0; i < settings.bulkMiB; i++) writer.write(Buffer.alloc(MiB, i % 251));
    writer.end();
    await once(writer, 'finish');
    const download = (base: string, extra: string[]) => () =>
      curlSpeed([...extra, `${base}/bytes?n=${bulk}`], 'speed_download');
    const upload = (base: string, extra: string[]) => () =>
      curlSpeed([...extra, '--data-binary', `@${file}`, `${base}/upload`], 'speed_upload');
    // Node's JIT needs about a GiB of bulk traffic before a fresh process moves bytes at its
    // steady speed (docs/benchmarks.md, "Warm-up"): every path gets settings.warmMiB each way
    // before its median of three, so the rows compare long-running processes, as deployed.
    const warm = async (base: string, extra: string[]): Promise<void> => {
      await curlSpeed([...extra, `${base}/bytes?n=${settings.warmMiB * MiB}`], 'speed_download');
      for (let sent = 0; sent < settings.warmMiB; sent += settings.bulkMiB) await upload(base, extra)();
    };
    const pipe = `http://127.0.0.1:${await startPipe(origin.port)}`;
    // Postern twice: relay and agent come here from the small-GET rows, and after those one warm-up
    // left their downloads at 838–853 MB/s while fresh agents on the same relay moved 1 140–1 289
    // later in the same run (docs/benchmarks.md, "Warm-up").
    for (const [base, extra] of [
      [direct, []],
      [pipe, []],
      [tunnel, hostArgs],
      [tunnel, hostArgs],
    ] as const)
      await warm(base, [...extra]);
    const downs = await inTurns(3, {
      direct: download(direct, []),
      pipe: download(pipe, []),
      tunnel: download(tunnel, hostArgs),
    });
    const ups = await inTurns(3, {
      direct: upload(direct, []),
      pipe: upload(pipe, []),
      tunnel: upload(tunnel, hostArgs),
    });
    const downTunnel = median(downs.tunnel);
    const downDirect = median(downs.direct);
    const upDirect = median(ups.direct);
    for (const [what, runs] of [
      ['download', downs],
      ['upload', ups],
    ] as const) {
      rows.push({
        scenario: `${settings.bulkMiB} MiB ${what}, 1 stream (median of 3 rounds)`,
        unit: 'MB/s',
        direct: median(runs.direct) / 1e6,
        postern: median(runs.tunnel) / 1e6,
        ratio: medianRatio(runs.tunnel, runs.direct),
      });
      rows.push({
        scenario: `… the same ${what} vs a plain two-hop socket pipe`,
        unit: 'MB/s',
        direct: median(runs.pipe) / 1e6,
        postern: median(runs.tunnel) / 1e6,
        ratio: medianRatio(runs.tunnel, runs.pipe),
        note: 'direct column = the pipe',
      });
    }

    say('the inspector off (--no-inspect): download');
    const quietArgs = ['-H', `Host: ${quietHost}`];
    // Twice, like the default agent: it too comes from the small-GET rows (with one warm-up it
    // downloaded 11-24 % slower than the default agent in three full runs).
    await warm(tunnel, quietArgs);
    await warm(tunnel, quietArgs);
    const downQuiet = median(await repeat(3, download(tunnel, quietArgs)));
    // The rows below start agents of their own on the same key: this one must not share the load.
    await quiet.stop();
    await agent.stop();
    rows.push({
      scenario: 'small GET, 50 connections: inspector on vs --no-inspect',
      unit: 'req/s',
      direct: smallQuiet.rps,
      postern: smallTunnel.rps,
      ratio: ratioOf(smallRuns.tunnel, smallRuns.quiet),
      note: 'direct column = --no-inspect',
    });
    rows.push({
      scenario: `${settings.bulkMiB} MiB download: inspector on vs --no-inspect`,
      unit: 'MB/s',
      direct: downQuiet / 1e6,
      postern: downTunnel / 1e6,
      ratio: downTunnel / downQuiet,
      note: 'direct column = --no-inspect',
    });

    /** The warm-up, then the median of three downloads and three uploads, as rows against direct. */
    const bulkRows = async (what: string, url: string, host: string[]): Promise<void> => {
      await warm(url, host);
      const down = median(await repeat(3, download(url, host)));
      const up = median(await repeat(3, upload(url, host)));
      for (const [direction, t, d] of [
        ['download', down, downDirect],
        ['upload', up, upDirect],
      ] as const) {
        rows.push({
          scenario: `${settings.bulkMiB} MiB ${direction}, ${what}`,
          unit: 'MB/s',
          direct: d / 1e6,
          postern: t / 1e6,
          ratio: t / d,
        });
      }
    };

    say('the same download and upload over each session transport (median of 3)');
    for (const [name, address] of [
      ['tcp:// raw upgrade', relayAddress],
      ['ws://', `ws://127.0.0.1:${relayPort}`],
      ['tcps:// raw upgrade', `tcps://localhost:${relayTlsPort}?ca=${certs.ca}`],
      ['wss://', `wss://localhost:${relayTlsPort}?ca=${certs.ca}`],
    ] as const) {
      const transportAgent = startAgent(address);
      await transportAgent.nextEvent((e) => e.event === 'ready');
      await bulkRows(`agent session over ${name}`, tunnel, hostArgs);
      await transportAgent.stop();
    }

    // A far agent: its session crosses a delay line, FAR_DELAY_MS each way. The direct column is
    // the same transfer over the same kind of line to the origin (TCP's own window tuning).
    say(`an agent ${2 * FAR_DELAY_MS} ms away (a delay line): download and upload (median of 3)`);
    {
      const farKey = join(work, 'far.key');
      await startCli(['keygen', '--out', farKey]).exited;
      const towardsRelay = await startHelperProcess('delay-hop.js', [
        String(relayPort),
        String(FAR_DELAY_MS),
      ]);
      const towardsOrigin = await startHelperProcess('delay-hop.js', [
        String(origin.port),
        String(FAR_DELAY_MS),
      ]);
      stops.push(towardsRelay.stop, towardsOrigin.stop);
      const farAgent = expose(
        `http://127.0.0.1:${origin.port}`,
        ['--connections', '1'],
        `tcp://127.0.0.1:${towardsRelay.port}`,
        farKey,
      );
      const farReady = await farAgent.nextEvent((e) => e.event === 'ready');
      const farLabel = (farReady.services as { label: string }[])[0]?.label as string;
      const farHost = ['-H', `Host: ${farLabel}.localhost:${relayPort}`];
      const farDirect = `http://127.0.0.1:${towardsOrigin.port}`;
      for (const [what, transfer] of [
        ['download', download],
        ['upload', upload],
      ] as const) {
        const d = median(await repeat(3, transfer(farDirect, [])));
        const t = median(await repeat(3, transfer(tunnel, farHost)));
        rows.push({
          scenario: `${settings.bulkMiB} MiB ${what}, agent ${2 * FAR_DELAY_MS} ms away (delay line)`,
          unit: 'MB/s',
          direct: d / 1e6,
          postern: t / 1e6,
          ratio: t / d,
          note: `direct column = the same line to the origin; a fixed 1 MiB window allows ${(((MiB / (2 * FAR_DELAY_MS)) * 1000) / 1e6).toFixed(0)} MB/s`,
        });
      }
      await farAgent.stop();
    }
    // Full runs only: --quick stays under a minute.
    if (!quick) say('the same download and upload with other stream windows (relay and agent; median of 3)');
    for (const kib of quick ? [] : [256, 4096]) {
      const windowRelay = startCli([
        'relay',
        '--listen',
        'tcp://127.0.0.1:0',
        '--stream-window',
        String(kib * 1024),
        '--json',
        '--log-level',
        'warn',
        '--admin',
        'off',
      ]);
      const windowAddress = (
        (await windowRelay.nextEvent((e) => e.event === 'listening')).listen as string[]
      )[0];
      const windowAgent = expose(
        `http://127.0.0.1:${origin.port}`,
        ['--stream-window', String(kib * 1024)],
        windowAddress as string,
      );
      await windowAgent.nextEvent((e) => e.event === 'ready');
      const windowPort = Number(windowAddress?.split(':').pop());
      const windowUrl = `http://127.0.0.1:${windowPort}`;
      const windowHost = ['-H', `Host: ${label}.localhost:${windowPort}`];
      const size = kib >= 1024 ? `${kib / 1024} MiB` : `${kib} KiB`;
      await bulkRows(`stream window ${size} (default 1 MiB)`, windowUrl, windowHost);
      await windowAgent.stop();
      await windowRelay.stop();
    }
    const mainAgent = startAgent();
    stops.unshift(() => mainAgent.stop());
    await mainAgent.nextEvent((e) => e.event === 'ready');

    say(`fixed rate: 1 000 requests/s, ${settings.wrkSeconds} s each way`);
    await fixedRate(`${tunnel}/small`, tunnelHost);
    const rateDirect = await fixedRate(`${direct}/small`, undefined);
    const rateTunnel = await fixedRate(`${tunnel}/small`, tunnelHost);
    for (const p of ['p50', 'p99'] as const) {
      rows.push({
        scenario: `fixed 1 000 req/s, ${p} latency (autocannon)`,
        unit: 'ms',
        direct: rateDirect[p],
        postern: rateTunnel[p],
        ratio: null,
        note: `+${(rateTunnel[p] - rateDirect[p]).toFixed(2)} ms`,
      });
    }

    say(`WebSocket echo, 50 connections, ${settings.wrkSeconds} s each way`);
    const wsEcho = await startHelperProcess('ws-echo-process.js', []);
    stops.push(() => wsEcho.stop());
    const wsAgent = expose(`http://127.0.0.1:${wsEcho.port}`, ['--name', 'ws']);
    stops.unshift(() => wsAgent.stop());
    const wsLabel = ((await wsAgent.nextEvent((e) => e.event === 'ready')).services as { label: string }[])[0]
      ?.label as string;
    const wsDirect = await webSocketEcho(`ws://127.0.0.1:${wsEcho.port}/`);
    const wsTunnel = await webSocketEcho(`ws://127.0.0.1:${relayPort}/${wsLabel}/`);
    rows.push({
      scenario: 'WebSocket echo, 50 connections',
      unit: 'msg/s',
      direct: wsDirect.messagesPerSecond,
      postern: wsTunnel.messagesPerSecond,
      ratio: wsTunnel.messagesPerSecond / wsDirect.messagesPerSecond,
    });
    rows.push({
      scenario: 'WebSocket echo p99 latency',
      unit: 'ms',
      direct: wsDirect.p99,
      postern: wsTunnel.p99,
      ratio: null,
      note: `+${(wsTunnel.p99 - wsDirect.p99).toFixed(2)} ms`,
    });

    say(`TCP through the preflight: iperf3 sends ${settings.tcpMiB} MiB on one connection, median of 3`);
    const iperfPort = await freePort();
    const iperfDaemon = spawn('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort)], {
      stdio: 'ignore',
    });
    stops.push(() => {
      iperfDaemon.kill();
    });
    const connectString = await exposeTcp(iperfPort, 'iperf');
    const localPort = await freePort();
    const client = startCli(['connect', connectString, '--listen', `tcp://127.0.0.1:${localPort}`, '--json']);
    stops.unshift(() => client.stop());
    await client.nextEvent((e) => e.event === 'listening');
    const tcpPipePort = await startPipe(iperfPort);
    // The warm-up (as for the HTTP transfers), then the median of three, since a single
    // transfer's figure swings by a third on this machine.
    for (const port of [tcpPipePort, localPort]) await iperf(port, settings.warmMiB);
    const tcpRuns = await inTurns(3, {
      direct: () => iperf(iperfPort),
      pipe: () => iperf(tcpPipePort),
      tunnel: () => iperf(localPort),
    });
    const [tcpDirect, tcpPipe, tcpTunnel] = [
      median(tcpRuns.direct),
      median(tcpRuns.pipe),
      median(tcpRuns.tunnel),
    ];
    rows.push({
      scenario: `preflight TCP, ${settings.tcpMiB} MiB, 1 connection (iperf3, median of 3 rounds)`,
      unit: 'MB/s',
      direct: tcpDirect,
      postern: tcpTunnel,
      ratio: medianRatio(tcpRuns.tunnel, tcpRuns.direct),
    });
    rows.push({
      scenario: '… the same vs a plain two-hop socket pipe',
      unit: 'MB/s',
      direct: tcpPipe,
      postern: tcpTunnel,
      ratio: medianRatio(tcpRuns.tunnel, tcpRuns.pipe),
      note: 'pipe',
    });

    say(`TCP through the client library: ${settings.tcpMiB} MiB on one connection, median of 3`);
    const sink = await startHelperProcess('tcp-sink.js', []);
    stops.push(() => sink.stop());
    const sinkConnect = await exposeTcp(sink.port, 'sink');
    const sinkPipe = `tcp://127.0.0.1:${await startPipe(sink.port)}`;
    for (const target of [sinkPipe, sinkConnect]) await tcpSend(target, settings.warmMiB);
    const libraryRuns = await inTurns(3, {
      direct: () => tcpSend(`tcp://127.0.0.1:${sink.port}`),
      pipe: () => tcpSend(sinkPipe),
      tunnel: () => tcpSend(sinkConnect),
    });
    const libraryDirect = median(libraryRuns.direct);
    const libraryPipe = median(libraryRuns.pipe);
    const libraryTunnel = median(libraryRuns.tunnel);
    rows.push({
      scenario: `preflight TCP, client library, ${settings.tcpMiB} MiB, 1 connection (median of 3 rounds)`,
      unit: 'MB/s',
      direct: libraryDirect,
      postern: libraryTunnel,
      ratio: medianRatio(libraryRuns.tunnel, libraryRuns.direct),
    });
    rows.push({
      scenario: '… the same vs a plain two-hop socket pipe',
      unit: 'MB/s',
      direct: libraryPipe,
      postern: libraryTunnel,
      ratio: medianRatio(libraryRuns.tunnel, libraryRuns.pipe),
      note: 'pipe',
    });

    say(`8 parallel downloads of ${settings.parallelMiB} MiB`);
    const parDirect = await parallelDownloads(direct, undefined, 8);
    const parTunnel = await parallelDownloads(tunnel, tunnelHost, 8);
    rows.push({
      scenario: '8 parallel downloads',
      unit: 'MB/s',
      direct: parDirect / 1e6,
      postern: parTunnel / 1e6,
      ratio: parTunnel / parDirect,
    });

    say(`agent start → first 200, ${settings.startRuns} runs`);
    const startTimes: number[] = [];
    for (let i = 0; i < settings.startRuns; i++) {
      const started = Date.now();
      const fresh = startAgent();
      await fresh.nextEvent((e) => e.event === 'ready');
      for (;;) {
        const { stdout } = await run('curl', [
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          ...hostArgs,
          `${tunnel}/small`,
        ]);
        if (stdout === '200') break;
      }
      startTimes.push(Date.now() - started);
      await fresh.stop();
    }
    rows.push({
      scenario: 'agent start → first 200 (process start included)',
      unit: 'ms',
      direct: null,
      postern: median(startTimes),
      ratio: null,
    });

    const { idleTunnels, idleStreams } = settings;
    // Full runs only (see settings).
    if (idleTunnels > 0) {
      say(
        `memory: ${idleTunnels} idle tunnels on one relay, ${idleStreams} idle TCP streams through one tunnel`,
      );
      const memoryRow = (scenario: string, bytes: number, note?: string): Row => ({
        scenario,
        unit: 'KiB',
        direct: null,
        postern: bytes / 1024,
        ratio: null,
        ...(note === undefined ? {} : { note }),
      });
      const perTunnel = await relayBytesPerIdleTunnel(idleTunnels);
      const perStream = await bytesPerIdleStream(idleStreams);
      rows.push(
        memoryRow(`relay RSS per idle tunnel, ${idleTunnels} tunnels`, perTunnel, 'target ≤ 64'),
        memoryRow(`relay RSS per idle stream, ${idleStreams} TCP streams`, perStream.relay, 'target ≤ 16'),
        memoryRow(`agent RSS per idle stream, ${idleStreams} TCP streams`, perStream.agent),
      );
    }
  } finally {
    for (const stop of stops) await stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(certs.dir, { recursive: true, force: true });
  }

  const format = (value: number | null): string =>
    value === null ? '—' : value >= 100 ? value.toFixed(0) : value.toFixed(2);
  const lines = [
    `| scenario | unit | direct | postern | ratio |`,
    `|---|---|---:|---:|---:|`,
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.unit} | ${format(r.direct)} | ${format(r.postern)} | ${r.ratio === null ? (r.note ?? '—') : `${(r.ratio * 100).toFixed(0)} %`} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const resultsDir = join(here, '..', '..', 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), quick, node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, settings, rows }, null, 2)}\n`,
  );
  process.stderr.write(`bench: wrote ${file}\n`);
}

if (peersAt >= 0 && (peersDir === undefined || peersDir.startsWith('--')))
  throw new Error('--peers takes the folder of peer scripts, e.g. --peers ../shared/peers');
await (peersDir === undefined ? main() : mainPeers(peersDir));
