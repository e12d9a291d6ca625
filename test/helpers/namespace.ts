import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  appendFileSync,
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { requireBinary } from './binaries.js';
import { CLI } from './processes.js';

/** A process started in a namespace, read line by line (stdout and stderr together). */
export interface NamespaceProcess {
  child: ChildProcessWithoutNullStreams;
  /** The first line so far or to come that matches `pattern` (rejects on exit or after timeoutMs). */
  line(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  output(): string;
  /** Sends `signal` and resolves with the exit code once the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * A network and mount namespace of the test's own (unshare; needs root): its own loopback, where
 * the fixed ports the docs use (80, 443, 3000, 4040, 8080, 9090) are free and reach nothing
 * outside, and its own /etc/hosts, so the docs' names (tunnels.example.com) resolve to it. Commands
 * run in it through `sh -c`, with `postern` on the PATH (the built CLI) and HOME a fresh folder.
 */
export interface Namespace {
  /** A scratch folder, the working directory of every command. */
  dir: string;
  /** Starts one command (exec'd by sh, so signals reach it: no `&&` or `;` lists). */
  start(command: string, env?: NodeJS.ProcessEnv): NamespaceProcess;
  /** Runs a command to its exit: its code, its stdout, and both streams' lines. */
  run(
    command: string,
    env?: NodeJS.ProcessEnv,
  ): Promise<{ code: number | null; stdout: string; output: string }>;
  /** Makes `name` resolve to `address` inside. */
  addHost(name: string, address?: string): void;
  /**
   * Joins `other` to this namespace's LAN: a bridge here at `.1` of the /24 (made on first use) and
   * a veth pair whose far end, in `other`, gets `address` (10.0.0.11/24).
   */
  link(other: Namespace, address: string): Promise<void>;
  /** The process holding the namespaces (for nsenter -t). */
  pid: number;
  close(): Promise<void>;
}

/** SIGKILL to every process in the network namespace of `pid`, except `pid` itself. */
function killAllIn(pid: number | undefined): void {
  if (pid === undefined) return;
  let namespace: string;
  try {
    namespace = readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return;
  }
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === pid) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/net`) === namespace) process.kill(Number(entry), 'SIGKILL');
    } catch {
      // Gone already, or not ours to read.
    }
  }
}

export async function startNamespace(hosts: string[], addresses: string[] = []): Promise<Namespace> {
  for (const [name, pkg] of [
    ['unshare', 'util-linux'],
    ['nsenter', 'util-linux'],
    ['ip', 'iproute2'],
  ] as const)
    requireBinary(name, pkg);
  const dir = mkdtempSync(join(tmpdir(), 'postern-namespace-'));
  const bin = join(dir, '.bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'postern'), `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
  chmodSync(join(bin, 'postern'), 0o755);
  mkdirSync(join(dir, '.home'));
  const hostsFile = join(dir, '.hosts');
  writeFileSync(hostsFile, `127.0.0.1 localhost ${hosts.join(' ')}\n::1 localhost\n`);
  const setup = [
    'ip link set lo up',
    ...addresses.map((address) => `ip addr add ${address}/32 dev lo`),
    `mount --bind ${hostsFile} /etc/hosts`,
    'echo ready',
    'exec sleep 100000',
  ].join(' && ');
  const holder = spawn('unshare', ['--net', '--mount', 'sh', '-c', setup], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const started: NamespaceProcess[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(started.map((p) => p.stop('SIGKILL')));
    // What those left behind (nginx's workers, a daemon's children) would hold their output pipes
    // open and keep the test file alive: every process still in this network namespace goes too.
    killAllIn(holder.pid);
    holder.kill('SIGKILL');
    if (holder.exitCode === null && holder.signalCode === null) await once(holder, 'exit');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [first] = (await Promise.race([
      once(holder.stdout, 'data'),
      once(holder, 'exit').then(() => {
        throw new Error('unshare --net --mount failed (the namespace tests run as root)');
      }),
    ])) as [Buffer];
    if (String(first).trim() !== 'ready') throw new Error(`the namespace did not start: ${first}`);
  } catch (error) {
    await close();
    throw error;
  }
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    HOME: join(dir, '.home'),
    NO_COLOR: '1',
    ...extra,
  });
  const start = (command: string, extra?: NodeJS.ProcessEnv): NamespaceProcess => {
    // nsenter and sh exec in place: a signal to the child reaches the command itself.
    const child = spawn(
      'nsenter',
      ['-t', String(holder.pid), '-n', '-m', `--wd=${dir}`, '--', 'sh', '-c', `exec ${command}`],
      { cwd: dir, env: env(extra), stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const lines: string[] = [];
    const waiters = new Set<() => void>();
    for (const stream of [child.stdout, child.stderr])
      createInterface({ input: stream }).on('line', (line) => {
        lines.push(line);
        for (const wake of waiters) wake();
      });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const process_: NamespaceProcess = {
      child,
      output: () => lines.join('\n'),
      line: (pattern, timeoutMs = 15_000) =>
        new Promise((resolve, reject) => {
          const check = (): boolean => {
            for (const line of lines) {
              const match = line.match(pattern);
              if (match !== null) {
                finish();
                resolve(match);
                return true;
              }
            }
            return false;
          };
          const fail = (why: string) => () => {
            if (check()) return;
            finish();
            reject(new Error(`${why} waiting for ${pattern} from: ${command}\n${lines.join('\n')}`));
          };
          const onExit = fail('exited');
          const timer = setTimeout(fail(`no line within ${timeoutMs} ms`), timeoutMs);
          const wake = (): void => void check();
          const finish = (): void => {
            clearTimeout(timer);
            waiters.delete(wake);
            child.off('exit', onExit);
          };
          if (check()) return;
          waiters.add(wake);
          child.once('exit', onExit);
        }),
      stop: async (signal = 'SIGTERM') => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        return exited;
      },
    };
    started.push(process_);
    return process_;
  };
  const self: Namespace = {
    dir,
    start,
    run: async (command, extra) => {
      const process_ = start(command, extra);
      let stdout = '';
      process_.child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk;
      });
      process_.child.stdin.end();
      const [code] = (await once(process_.child, 'close')) as [number | null];
      return { code, stdout, output: process_.output() };
    },
    addHost: (name, address = '127.0.0.1') => appendFileSync(hostsFile, `${address} ${name}\n`),
    pid: holder.pid as number,
    link: async (other, address) => {
      const sh = async (ns: Namespace, command: string): Promise<void> => {
        const { code, output } = await ns.run(command);
        if (code !== 0) throw new Error(`${command}: ${output}`);
      };
      const gateway = address.replace(/\.\d+\/24$/, '.1/24');
      await sh(
        self,
        `sh -c 'ip link show br0 >/dev/null 2>&1 || (ip link add br0 type bridge && ip addr add ${gateway} dev br0 && ip link set br0 up)'`,
      );
      const end = `v${other.pid}`;
      await sh(self, `ip link add ${end} type veth peer name eth0 netns ${other.pid}`);
      await sh(self, `ip link set ${end} master br0 up`);
      await sh(other, `sh -c 'ip addr add ${address} dev eth0 && ip link set eth0 up'`);
    },
    close,
  };
  return self;
}
