import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The built CLI: dist/src/cli/main.js, next to this file's dist/test/helpers. */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');

export interface CliProcess {
  child: ChildProcessWithoutNullStreams;
  /** Resolves with the next JSON line on stdout matching `predicate` (rejects after timeoutMs or on exit). */
  nextEvent(
    predicate: (event: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  stderr(): string;
  /** Sends `signal` and resolves with the exit code once the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Starts `postern <args>` as a real process with --json output parsed line by line. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    // Every expose's inspector on a free port, never the fixed default 4040.
    env: { POSTERN_INSPECT: '127.0.0.1:0', ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const events: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      events.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      events.push({ event: 'text', line });
    }
    for (const wake of waiters) wake();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let cursor = 0;
  return {
    child,
    exited,
    stderr: () => stderr,
    nextEvent(predicate, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          while (cursor < events.length) {
            const event = events[cursor++] as Record<string, unknown>;
            if (predicate(event)) {
              cleanup();
              resolve(event);
              return true;
            }
          }
          return false;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no matching event within ${timeoutMs} ms; stderr: ${stderr}`));
        }, timeoutMs);
        const onExit = (): void => {
          if (!check()) {
            cleanup();
            reject(new Error(`process exited before the event; stderr: ${stderr}`));
          }
        };
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(wake);
          child.off('exit', onExit);
        };
        const wake = (): void => {
          check();
        };
        if (check()) return;
        waiters.add(wake);
        child.once('exit', onExit);
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs `postern <args>` to its exit: the exit code and everything it wrote. */
export async function runToExit(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = startCli(args, env);
  let stdout = '';
  cli.child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const code = await cli.exited;
  return { code, stdout, stderr: cli.stderr() };
}

/** The project's root folder (package.json), from dist/test/helpers. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Runs `node <args>` in the project's root to its exit: the exit code and what it wrote. */
export async function runNode(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

/** Resident set size of a process in bytes, from /proc. */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Open file descriptors of a process (sockets, pipes, files), from /proc. */
export async function openFds(pid: number): Promise<number> {
  const { readdir } = await import('node:fs/promises');
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/**
 * `postern relay --json` as a real process on 127.0.0.1 (`port` 0: a free one), with `flags`;
 * resolves once it listens, with the port it got.
 */
export async function startRelayProcess(
  flags: string[] = [],
  port = 0,
): Promise<{ relay: CliProcess; port: number; listening: Record<string, unknown> }> {
  const relay = startCli(['relay', '--listen', `tcp://127.0.0.1:${port}`, '--json', ...flags]);
  const listening = await relay.nextEvent((e) => e.event === 'listening');
  return {
    relay,
    port: Number(
      String((listening.listen as string[])[0])
        .split(':')
        .pop(),
    ),
    listening,
  };
}

/**
 * `postern expose <target> --json` as a real process, registered with the relay on 127.0.0.1:
 * `relayPort` under the key in `keyFile`; resolves once ready, with its first service's label.
 */
export async function startExposeProcess(
  target: string,
  relayPort: number,
  keyFile: string,
): Promise<{ agent: CliProcess; label: string }> {
  const agent = startCli([
    'expose',
    target,
    '--relay',
    `tcp://127.0.0.1:${relayPort}`,
    '--key',
    keyFile,
    '--json',
  ]);
  const ready = await agent.nextEvent((e) => e.event === 'ready');
  return { agent, label: (ready.services as { label: string }[])[0]?.label as string };
}

/** A process's resident memory and open descriptors, from /proc. */
export async function processFigures(pid: number): Promise<{ rss: number; fds: number }> {
  return { rss: await rssBytes(pid), fds: await openFds(pid) };
}
