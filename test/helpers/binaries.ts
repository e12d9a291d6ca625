import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The path of `name`, or an error telling how to install it (tests fail clearly, never skip silently). */
export function requireBinary(name: string, debianPackage: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`])
      .toString()
      .trim();
  } catch {
    throw new Error(`${name} is not installed: apt-get install ${debianPackage} (.ci/run does this)`);
  }
}

/**
 * A free loopback port (bound, noted, released) for programs that cannot report an ephemeral one.
 * Taken below the kernel's ephemeral range (Linux: ip_local_port_range, 32768 and up): a port from
 * that range, released, could be handed out again as the source port of any connection another
 * test makes in the meantime, and a listener started on it seconds later then found it in use
 * (the ACME test, whose ports pebble is told before the relay binds them).
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  for (let attempt = 0; low !== undefined && attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * (low - 20_000));
    if (await canListen(port)) return port;
  }
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The first port of the kernel's ephemeral range when it leaves room below it (Linux), else undefined. */
function ephemeralLow(): number | undefined {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 21_000 ? low : undefined;
  } catch {
    return undefined;
  }
}

async function canListen(port: number): Promise<boolean> {
  const server = createServer();
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (listening) await new Promise((resolve) => server.close(resolve));
  return listening;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port` (bounded by `timeoutMs`). */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface Daemon {
  /** SIGTERM, up to 3 s to exit, then SIGKILL. */
  stop(): Promise<void>;
}

/**
 * Starts a server program and resolves once it accepts connections on 127.0.0.1:`port`; rejects
 * if it exits first, with `whyExited()` (e.g. the tail of its log) in the message.
 */
export async function startDaemon(
  binary: string,
  args: string[],
  port: number,
  options: { whyExited?: () => string; timeoutMs?: number } = {},
): Promise<Daemon> {
  const child = spawn(binary, args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const name = binary.split('/').pop();
  await Promise.race([
    waitForPort(port, options.timeoutMs),
    exited.then(() => Promise.reject(new Error(`${name} exited at start ${options.whyExited?.() ?? ''}`))),
  ]);
  return {
    stop: async () => {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
      child.kill('SIGKILL');
    },
  };
}
