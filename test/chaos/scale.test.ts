import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { openFds, processFigures, startCli, startRelayProcess } from '../helpers/processes.js';
import { until } from '../helpers/wait.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const AGENTS = 1_000;
const IDLE_CONNECTIONS = 10_000;
const MiB = 1 << 20;

/** Starts a helper script of this folder and resolves with its JSON lines as they come. */
function startScript(
  script: string,
  args: string[],
): { child: ReturnType<typeof spawn>; lines: Record<string, unknown>[] } {
  const child = spawn(process.execPath, [join(HERE, script), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) =>
    lines.push(JSON.parse(line) as Record<string, unknown>),
  );
  return { child, lines };
}

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

/** A raw preflight: Upgrade: tcp by path routing; resolves with the socket once the 101 is read. */
async function openPreflight(port: number, label: string): Promise<Socket> {
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
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`preflight refused: ${head.split('\r\n')[0]}`);
  return socket;
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
    const started = Date.now();
    const agents = startScript('agents-process.js', [`tcp://127.0.0.1:${port}`, String(AGENTS), '1']);
    cleanup.push(() => agents.child.kill('SIGKILL'));
    const labels = new Set<string>();
    await until(
      () => {
        for (const line of agents.lines.splice(0))
          if (line.event === 'connected') labels.add(line.label as string);
        return labels.size === AGENTS;
      },
      `${AGENTS} agents registered`,
      90_000,
    );
    const registeredMs = Date.now() - started;
    await delay(500);
    const loaded = await processFigures(relayPid);

    const list = [...labels];
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
    const echo = startScript('echo-process.js', []);
    cleanup.push(() => echo.child.kill('SIGKILL'));
    await until(() => echo.lines.length > 0, 'echo listening', 10_000);
    const echoPort = echo.lines[0]?.port as number;
    const { relay, port } = await startRelayProcess([
      '--max-streams',
      String(IDLE_CONNECTIONS),
      // All 10 000 come from 127.0.0.1.
      '--max-streams-per-ip',
      '0',
      '--log-level',
      'error',
    ]);
    cleanup.push(() => relay.stop('SIGKILL'));
    const agent = startCli([
      'expose',
      `tcp://127.0.0.1:${echoPort}`,
      '--relay',
      `tcp://127.0.0.1:${port}`,
      '--max-streams',
      String(IDLE_CONNECTIONS),
      '--json',
    ]);
    cleanup.push(() => agent.stop('SIGKILL'));
    const ready = await agent.nextEvent((e) => e.event === 'ready');
    const label = (ready.services as { label: string }[])[0]?.label as string;
    const relayPid = relay.child.pid as number;
    const agentPid = agent.child.pid as number;
    await delay(200);
    const before = { relay: await processFigures(relayPid), agent: await processFigures(agentPid) };

    const started = Date.now();
    const sockets: Socket[] = [];
    // Opened 200 at a time: a bounded burst, like clients reconnecting after an outage.
    for (let i = 0; i < IDLE_CONNECTIONS; i += 200) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(200, IDLE_CONNECTIONS - i) }, () => openPreflight(port, label)),
      );
      sockets.push(...batch);
    }
    const openedMs = Date.now() - started;
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
