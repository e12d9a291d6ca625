import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, requireBinary, startDaemon } from './binaries.js';

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
  const daemon = await startDaemon(binary, ['-d', '-c', join(dir, 'tinyproxy.conf')], port);
  return {
    port,
    stop: async () => {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
