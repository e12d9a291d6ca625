import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, requireBinary, waitForPort } from './binaries.js';

export interface Tinyproxy {
  port: number;
  stop(): Promise<void>;
}

/**
 * A real tinyproxy on loopback that requires Basic proxy auth (`user`/`password`) and allows CONNECT
 * only to `connectPort`.
 */
export async function startTinyproxy(options: {
  user: string;
  password: string;
  connectPort: number;
}): Promise<Tinyproxy> {
  const binary = requireBinary('tinyproxy', 'tinyproxy');
  const dir = mkdtempSync(join(tmpdir(), 'postern-tinyproxy-'));
  // tinyproxy started as root drops to nobody, who must be able to write its log and pid.
  chmodSync(dir, 0o777);
  const port = await freePort();
  const lines = [
    ...(process.getuid?.() === 0 ? ['User nobody', 'Group nogroup'] : []),
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Timeout 600',
    'MaxClients 200',
    `BasicAuth ${options.user} ${options.password}`,
    `ConnectPort ${options.connectPort}`,
    'Allow 127.0.0.1',
    'LogLevel Error',
    `PidFile "${join(dir, 'tinyproxy.pid')}"`,
    `LogFile "${join(dir, 'tinyproxy.log')}"`,
  ];
  writeFileSync(join(dir, 'tinyproxy.conf'), `${lines.join('\n')}\n`);
  const child: ChildProcess = spawn(binary, ['-d', '-c', join(dir, 'tinyproxy.conf')], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await Promise.race([
    waitForPort(port),
    exited.then(() => Promise.reject(new Error('tinyproxy exited at start'))),
  ]);
  return {
    port,
    stop: async () => {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
