import { type ChildProcess, spawn } from 'node:child_process';
import { freePort, requireBinary, waitForPort } from './binaries.js';

export interface Microsocks {
  port: number;
  stop(): Promise<void>;
}

/** A real SOCKS5 proxy (microsocks) on loopback that requires username/password authentication. */
export async function startMicrosocks(options: { user: string; password: string }): Promise<Microsocks> {
  const binary = requireBinary('microsocks', 'microsocks');
  const port = await freePort();
  const child: ChildProcess = spawn(
    binary,
    ['-i', '127.0.0.1', '-p', String(port), '-u', options.user, '-P', options.password],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await Promise.race([
    waitForPort(port),
    exited.then(() => Promise.reject(new Error('microsocks exited at start'))),
  ]);
  return {
    port,
    stop: async () => {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
      child.kill('SIGKILL');
    },
  };
}
