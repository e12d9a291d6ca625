import { type Daemon, freePort, requireBinary, startDaemon } from './binaries.js';

export interface Microsocks extends Daemon {
  port: number;
}

/** A real SOCKS5 proxy (microsocks) on loopback that requires username/password authentication. */
export async function startMicrosocks(options: { user: string; password: string }): Promise<Microsocks> {
  const binary = requireBinary('microsocks', 'microsocks');
  const port = await freePort();
  const args = ['-i', '127.0.0.1', '-p', String(port), '-u', options.user, '-P', options.password];
  const daemon = await startDaemon(binary, args, port);
  return { port, stop: daemon.stop };
}
