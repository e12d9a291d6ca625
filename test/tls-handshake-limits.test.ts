import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { requireBinary } from './helpers/binaries.js';
import { makeCertificates, type TestCertificates } from './helpers/certs.js';
import { curlResponse } from './helpers/curl.js';
import { type CliProcess, openFds, startCli } from './helpers/processes.js';
import { until } from './helpers/wait.js';

const HANDSHAKE_TIMEOUT_MS = 1_000;
const FLOOD = 3_000;

/**
 * Unfinished TLS handshakes must not hold the relay's descriptors: tls.Server kept each for 120 s,
 * and one the client half-closed until then too, so a flood of them starved the listener.
 */
describe('TLS listeners under unfinished handshakes', () => {
  let certs: TestCertificates;
  let relay: CliProcess;
  let port: number;
  let baseline: number;
  before(async () => {
    certs = makeCertificates();
    relay = startCli([
      'relay',
      '--listen',
      'tcps://127.0.0.1:0',
      '--tls-cert',
      certs.cert,
      '--tls-key',
      certs.key,
      '--head-timeout',
      String(HANDSHAKE_TIMEOUT_MS),
      '--admin',
      'off',
      '--json',
    ]);
    const listening = await relay.nextEvent((e) => e.event === 'listening');
    port = Number(
      String((listening.listen as string[])[0])
        .split(':')
        .pop(),
    );
    // As on a small server: 256 descriptors, so a flood reaches the limit.
    execFileSync(requireBinary('prlimit', 'util-linux'), [
      '--pid',
      String(relay.child.pid),
      '--nofile=256:256',
    ]);
    baseline = await openFds(relay.child.pid as number);
  });
  after(async () => {
    await relay?.stop();
    if (certs !== undefined) rmSync(certs.dir, { recursive: true, force: true });
  });

  /** The relay answers an HTTPS request (a 404 for no tunnel is an answer). */
  const answers = async (): Promise<boolean> =>
    (await curlResponse(['--cacert', certs.ca, '--max-time', '2', `https://localhost:${port}/`])).status ===
    404;

  test(`${FLOOD} connections that half-close before the handshake: descriptors back at once, the listener serves`, async () => {
    assert.ok(await answers(), 'serves before the flood');
    // In waves of 500, so the test's own descriptors stay few; every socket sends FIN at once.
    for (let wave = 0; wave < FLOOD / 500; wave++) {
      const sockets = await Promise.all(
        Array.from({ length: 500 }, async () => {
          const socket = connect(port, '127.0.0.1');
          socket.on('error', () => {});
          await Promise.race([once(socket, 'connect'), once(socket, 'close')]);
          socket.end();
          return socket;
        }),
      );
      // The relay closes each at once; the bound only keeps a regression from hanging the test.
      await Promise.race([
        Promise.all(sockets.map((s) => (s.closed ? undefined : once(s, 'close')))),
        new Promise((resolve) => setTimeout(resolve, 30_000)),
      ]);
      const open = sockets.filter((s) => !s.closed).length;
      for (const s of sockets) s.destroy();
      assert.equal(open, 0, `wave ${wave + 1}: ${open} half-closed connections still held by the relay`);
    }
    // Well inside the handshake timeout, so it is the half-close that frees them, not the timer.
    const started = performance.now();
    await until(
      async () => (await openFds(relay.child.pid as number)) <= baseline + 5,
      'descriptors back',
      30_000,
    );
    const ms = Math.round(performance.now() - started);
    assert.ok(await answers(), `serves right after the flood (descriptors back after ${ms} ms)`);
  });

  test('a connection that opens and says nothing is cut after the handshake timeout', async () => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    const started = performance.now();
    // Bounded with margin for a busy machine; tls.Server's own limit was 120 s.
    const closed = await Promise.race([
      once(socket, 'close').then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), HANDSHAKE_TIMEOUT_MS * 20)),
    ]);
    socket.destroy();
    assert.ok(closed, 'closed by the relay');
    assert.ok(performance.now() - started >= HANDSHAKE_TIMEOUT_MS * 0.9);
  });
});
