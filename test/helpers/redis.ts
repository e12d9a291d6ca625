import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBinary } from './binaries.js';

export interface Redis {
  socketPath: string;
  /** Stops redis-server (SIGKILL: clients see the connection drop) but keeps its socket path for `restart`. */
  kill(): Promise<void>;
  /** Starts redis-server again on the same socket path, empty (no persistence). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A real redis-server listening only on a Unix socket in a temporary directory (no TCP port). */
export async function startRedis(): Promise<Redis> {
  const binary = requireBinary('redis-server', 'redis-server');
  const dir = mkdtempSync(join(tmpdir(), 'postern-redis-'));
  const socketPath = join(dir, 'redis.sock');
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    rmSync(socketPath, { force: true });
    const started = spawn(
      binary,
      ['--port', '0', '--unixsocket', socketPath, '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: 'ignore' },
    );
    child = started;
    const deadline = Date.now() + 10_000;
    while (!existsSync(socketPath)) {
      if (Date.now() > deadline || started.exitCode !== null) throw new Error('redis-server did not start');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const running = child;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(signal);
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
  };
  await launch();
  return {
    socketPath,
    kill: () => halt('SIGKILL'),
    restart: launch,
    stop: async () => {
      await halt('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
