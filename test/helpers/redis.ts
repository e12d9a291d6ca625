import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBinary } from './binaries.js';

export interface Redis {
  socketPath: string;
  stop(): Promise<void>;
}

/** A real redis-server listening only on a Unix socket in a temporary directory (no TCP port). */
export async function startRedis(): Promise<Redis> {
  const binary = requireBinary('redis-server', 'redis-server');
  const dir = mkdtempSync(join(tmpdir(), 'postern-redis-'));
  const socketPath = join(dir, 'redis.sock');
  const child: ChildProcess = spawn(
    binary,
    ['--port', '0', '--unixsocket', socketPath, '--save', '', '--appendonly', 'no', '--dir', dir],
    {
      stdio: 'ignore',
    },
  );
  const deadline = Date.now() + 10_000;
  while (!existsSync(socketPath)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('redis-server did not start');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    socketPath,
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
