import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { openFds, processFigures, startRelayProcess } from '../helpers/processes.js';
import { openIdleConnections, startIdleAgents, startIdleStreamTunnel } from '../helpers/scale.js';

const AGENTS = 1_000;
const IDLE_CONNECTIONS = 10_000;
const MiB = 1 << 20;

const mb = (n: number): string => `${(n / MiB).toFixed(0)} MiB`;

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('chaos: scale', () => {
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  test(`${AGENTS} agents on one relay: all register, all serve, the relay's memory and handles reported`, async (t) => {
    const { relay, port } = await startRelayProcess([
      '--registration-rate',
      '1000000',
      '--log-level',
      'error',
    ]);
    cleanup.push(() => relay.stop('SIGKILL'));
    const relayPid = relay.child.pid as number;
    await delay(200);
    const empty = await processFigures(relayPid);
    const { agents, labels: list, registeredMs } = await startIdleAgents(`tcp://127.0.0.1:${port}`, AGENTS);
    cleanup.push(() => agents.child.kill('SIGKILL'));
    await delay(500);
    const loaded = await processFigures(relayPid);

    for (let i = 0; i < list.length; i += 50) {
      const batch = await Promise.all(list.slice(i, i + 50).map((label) => get(port, `/${label}/check`)));
      for (const res of batch) assert.deepEqual(res, { status: 200, body: 'ok /check' });
    }

    agents.child.kill('SIGTERM');
    await once(agents.child, 'exit');
    let fds = await openFds(relayPid);
    for (let i = 0; i < 200 && fds > empty.fds + 5; i++) {
      await delay(50);
      fds = await openFds(relayPid);
    }
    assert.ok(fds <= empty.fds + 5, `relay fds ${fds} after the agents left (empty: ${empty.fds})`);
    t.diagnostic(
      `${AGENTS} agents registered in ${registeredMs} ms; relay rss ${mb(empty.rss)} → ${mb(loaded.rss)} ` +
        `(${((loaded.rss - empty.rss) / AGENTS / 1024).toFixed(0)} KiB an agent), fds ${empty.fds} → ${loaded.fds} → ${fds} after they left; ` +
        `one request to each of the ${AGENTS} tunnels answered`,
    );
  });

  test(`${IDLE_CONNECTIONS} idle TCP connections (preflight) through one tunnel: all open, all echo, all released`, async (t) => {
    const { relay, agent, port, label, stop } = await startIdleStreamTunnel(IDLE_CONNECTIONS);
    cleanup.push(stop);
    const relayPid = relay.child.pid as number;
    const agentPid = agent.child.pid as number;
    await delay(200);
    const before = { relay: await processFigures(relayPid), agent: await processFigures(agentPid) };

    const { sockets, openedMs } = await openIdleConnections(port, label, IDLE_CONNECTIONS);
    cleanup.push(() => {
      for (const socket of sockets) socket.destroy();
    });
    await delay(1_000);
    const open = { relay: await processFigures(relayPid), agent: await processFigures(agentPid) };

    // Every connection is alive after idling and carries its own bytes.
    const echoStarted = Date.now();
    for (let i = 0; i < sockets.length; i += 500) {
      await Promise.all(
        sockets.slice(i, i + 500).map(async (socket, j) => {
          const token = `#${i + j};`;
          socket.write(token);
          let got = '';
          while (got.length < token.length) {
            const [chunk] = (await once(socket, 'data')) as [Buffer];
            got += chunk.toString();
          }
          assert.equal(got, token);
        }),
      );
    }
    const echoMs = Date.now() - echoStarted;

    for (const socket of sockets) socket.destroy();
    let relayFds = await openFds(relayPid);
    let agentFds = await openFds(agentPid);
    for (let i = 0; i < 300 && (relayFds > before.relay.fds + 5 || agentFds > before.agent.fds + 5); i++) {
      await delay(50);
      relayFds = await openFds(relayPid);
      agentFds = await openFds(agentPid);
    }
    assert.ok(relayFds <= before.relay.fds + 5, `relay fds ${relayFds} (before: ${before.relay.fds})`);
    assert.ok(agentFds <= before.agent.fds + 5, `agent fds ${agentFds} (before: ${before.agent.fds})`);
    const perConnection = (a: number, b: number): string =>
      `${((b - a) / IDLE_CONNECTIONS / 1024).toFixed(1)} KiB`;
    t.diagnostic(
      `${IDLE_CONNECTIONS} preflight connections opened in ${openedMs} ms; all echoed in ${echoMs} ms; ` +
        `relay rss ${mb(before.relay.rss)} → ${mb(open.relay.rss)} (${perConnection(before.relay.rss, open.relay.rss)} a connection), fds ${before.relay.fds} → ${open.relay.fds} → ${relayFds}; ` +
        `agent rss ${mb(before.agent.rss)} → ${mb(open.agent.rss)} (${perConnection(before.agent.rss, open.agent.rss)}), fds ${before.agent.fds} → ${open.agent.fds} → ${agentFds}`,
    );
  });
});
