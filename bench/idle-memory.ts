// The bench's memory rows: relay RSS per idle tunnel and relay + agent RSS per idle stream, on real
// processes (the same set-up as test/chaos/scale.test.ts, which checks that they all work and are
// all released; here only their memory is read).
import { setTimeout as delay } from 'node:timers/promises';
import { processFigures, startRelayProcess } from '../test/helpers/processes.js';
import { openIdleConnections, startIdleAgents, startIdleStreamTunnel } from '../test/helpers/scale.js';

/** Relay RSS growth per tunnel with `count` agents registered and idle (bytes). */
export async function relayBytesPerIdleTunnel(count: number): Promise<number> {
  const { relay, port } = await startRelayProcess(['--registration-rate', '1000000', '--log-level', 'error']);
  try {
    const pid = relay.child.pid as number;
    await delay(200);
    const empty = await processFigures(pid);
    const { agents } = await startIdleAgents(`tcp://127.0.0.1:${port}`, count);
    try {
      // Settled: the registrations' garbage is collected while the relay idles.
      await delay(500);
      const loaded = await processFigures(pid);
      return (loaded.rss - empty.rss) / count;
    } finally {
      agents.child.kill('SIGKILL');
    }
  } finally {
    await relay.stop('SIGKILL');
  }
}

/**
 * Relay and agent RSS growth per stream with `count` preflight TCP connections open and idle
 * through one tunnel to an echo service (bytes, each process apart).
 */
export async function bytesPerIdleStream(count: number): Promise<{ relay: number; agent: number }> {
  const { relay, agent, port, label, stop } = await startIdleStreamTunnel(count);
  try {
    const pids = { relay: relay.child.pid as number, agent: agent.child.pid as number };
    await delay(200);
    const before = { relay: await processFigures(pids.relay), agent: await processFigures(pids.agent) };
    const { sockets } = await openIdleConnections(port, label, count);
    try {
      await delay(1_000);
      const open = { relay: await processFigures(pids.relay), agent: await processFigures(pids.agent) };
      return {
        relay: (open.relay.rss - before.relay.rss) / count,
        agent: (open.agent.rss - before.agent.rss) / count,
      };
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  } finally {
    await stop();
  }
}
