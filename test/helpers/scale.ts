// Many idle tunnels and many idle streams on real processes: shared by the scale chaos test (which
// checks they all work and are all released) and `npm run bench` (which reports their memory).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type CliProcess, startCli, startRelayProcess } from './processes.js';
import { until } from './wait.js';

const CHAOS = join(dirname(fileURLToPath(import.meta.url)), '..', 'chaos');

export interface ScriptProcess {
  child: ChildProcess;
  /** Its JSON lines so far; take them with splice(0). */
  lines: Record<string, unknown>[];
}

/** Starts a helper script of test/chaos (`agents-process.js`, `echo-process.js`) that prints JSON lines. */
export function startChaosScript(script: string, args: string[]): ScriptProcess {
  const child = spawn(process.execPath, [join(CHAOS, script), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) =>
    lines.push(JSON.parse(line) as Record<string, unknown>),
  );
  return { child, lines };
}

/**
 * `count` agents in one process, one tunnel each, registered with the relay at `relay`; resolves
 * once every one is connected, with their labels and how long that took.
 */
export async function startIdleAgents(
  relay: string,
  count: number,
  timeoutMs = 90_000,
): Promise<{ agents: ScriptProcess; labels: string[]; registeredMs: number }> {
  const started = Date.now();
  const agents = startChaosScript('agents-process.js', [relay, String(count), '1']);
  const labels = new Set<string>();
  try {
    await until(
      () => {
        for (const line of agents.lines.splice(0))
          if (line.event === 'connected') labels.add(line.label as string);
        return labels.size === count;
      },
      `${count} agents registered`,
      timeoutMs,
    );
  } catch (error) {
    agents.child.kill('SIGKILL');
    throw error;
  }
  return { agents, labels: [...labels], registeredMs: Date.now() - started };
}

/** A raw preflight: Upgrade: tcp by path routing; resolves with the socket once the 101 is read. */
export async function openPreflight(port: number, label: string): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(
    `GET /${label}/ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`,
  );
  let head = '';
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    head += chunk.toString('latin1');
  }
  if (!head.startsWith('HTTP/1.1 101')) {
    socket.destroy();
    throw new Error(`preflight refused: ${head.split('\r\n')[0]}`);
  }
  return socket;
}

/**
 * `count` preflight connections to the TCP tunnel `label`, opened 200 at a time (a bounded burst,
 * like clients reconnecting after an outage). On a failure the ones already open are closed.
 */
export async function openIdleConnections(
  port: number,
  label: string,
  count: number,
): Promise<{ sockets: Socket[]; openedMs: number }> {
  const started = Date.now();
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i += 200) {
    const batch = await Promise.allSettled(
      Array.from({ length: Math.min(200, count - i) }, () => openPreflight(port, label)),
    );
    for (const result of batch) if (result.status === 'fulfilled') sockets.push(result.value);
    const failed = batch.find((result) => result.status === 'rejected');
    if (failed !== undefined) {
      for (const socket of sockets) socket.destroy();
      throw failed.reason;
    }
  }
  return { sockets, openedMs: Date.now() - started };
}

export interface IdleStreamTunnel {
  relay: CliProcess;
  agent: CliProcess;
  /** The relay's port. */
  port: number;
  /** The TCP tunnel to the echo service. */
  label: string;
  /** Kills every process started. */
  stop(): Promise<void>;
}

/**
 * An echo service (its own process: `count` connections need their own descriptor budget), a
 * relay and `postern expose tcp://` in front of it, all limits raised for `count` streams from
 * one address.
 */
export async function startIdleStreamTunnel(count: number): Promise<IdleStreamTunnel> {
  const stops: (() => unknown)[] = [];
  const stop = async (): Promise<void> => {
    for (const step of stops.reverse()) await step();
  };
  try {
    const echo = startChaosScript('echo-process.js', []);
    stops.push(() => echo.child.kill('SIGKILL'));
    await until(() => echo.lines.length > 0, 'echo listening', 10_000);
    const { relay, port } = await startRelayProcess([
      '--max-streams',
      String(count),
      // All come from 127.0.0.1.
      '--max-streams-per-ip',
      '0',
      '--log-level',
      'error',
    ]);
    stops.push(() => relay.stop('SIGKILL'));
    const agent = startCli([
      'expose',
      `tcp://127.0.0.1:${echo.lines[0]?.port as number}`,
      '--relay',
      `tcp://127.0.0.1:${port}`,
      '--max-streams',
      String(count),
      '--json',
    ]);
    stops.push(() => agent.stop('SIGKILL'));
    const ready = await agent.nextEvent((e) => e.event === 'ready');
    const label = (ready.services as { label: string }[])[0]?.label as string;
    return { relay, agent, port, label, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
