import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay, type Relay } from '../src/relay/relay.js';
import { PROOF_BYTES } from '../src/session/possession-proof.js';
import { startClusterRelays } from './helpers/cluster-node.js';
import { curlResponse } from './helpers/curl.js';
import { type Origin, startOrigin } from './helpers/origin.js';
import { type Redis, startRedis } from './helpers/redis.js';
import { startTcpForwarder } from './helpers/tcp-forwarder.js';
import { readyWithin } from './helpers/tunnel.js';

/**
 * A registration head recorded on a plaintext agent link must never be accepted again: not after a
 * relay restart (no nonce cache remembers it), not on another cluster node while Redis is down
 * (docs/protocol.md, "Proof of possession"). The replayer gets the 101 and a challenge it cannot
 * sign; the tunnel is never attached, so no visitor ever reaches it.
 */

/** Records the registration head a real agent sends through a forwarder to `relay`, then stops the agent. */
async function recordRegistration(
  relayAddress: string,
  target: string,
): Promise<{ head: string; label: string }> {
  const port = Number(relayAddress.split(':').pop());
  const forwarder = await startTcpForwarder(port);
  const agent = createAgent({
    relay: `tcp://127.0.0.1:${forwarder.port}`,
    key: generateAgentKey(),
    connections: 1,
    services: [{ target }],
  });
  try {
    const [service] = await readyWithin(agent);
    const head = forwarder.firstChunks.find((chunk) => /postern-signature/i.test(chunk));
    assert.ok(head !== undefined, 'the registration head went through the forwarder');
    return { head, label: (service as { label: string }).label };
  } finally {
    await agent.close();
    await forwarder.close();
  }
}

/**
 * Sends `head` as it was recorded, then what an attacker can send for the proof (64 bytes it made
 * up); resolves with the relay's status line and whether the relay closed the connection.
 */
async function replay(port: number, head: string): Promise<{ status: string; closed: boolean }> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
  });
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
  socket.write(head);
  // Bounded: the relay answers a replay at once; 15 s only guards a broken relay from hanging the test.
  const bound = setTimeout(() => socket.destroy(), 15_000);
  while (!text.includes('\r\n\r\n') && !socket.destroyed) await Promise.race([once(socket, 'data'), closed]);
  socket.write(Buffer.alloc(PROOF_BYTES, 7));
  await closed;
  clearTimeout(bound);
  return { status: text.split('\r\n')[0] ?? '', closed: !/PSOK/.test(text) };
}

describe('a registration recorded on the wire is never accepted again', () => {
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(async () => origin?.close());

  test('after a relay restart: the replay gets no tunnel, the real agent comes back at once', async () => {
    const first = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
    const { head, label } = await recordRegistration(first.addresses[0] as string, origin.url);
    await first.close();

    // The restarted relay: a fresh process state, nothing remembered of the first one.
    // No restart grace: an unknown label is a 404 at once instead of a wait for its agent.
    const restarted = await createRelay({ listen: ['tcp://127.0.0.1:0'], restartGraceMs: 0 });
    try {
      const port = Number((restarted.addresses[0] as string).split(':').pop());
      const sessions: unknown[] = [];
      restarted.on('session', (session) => sessions.push(session));
      const answer = await replay(port, head);
      assert.match(
        answer.status,
        /^HTTP\/1.1 101 /,
        'the head itself still verifies (its signature is good)',
      );
      assert.ok(answer.closed, 'the relay closed the connection after the made-up proof');
      assert.equal(sessions.length, 0, 'no session was admitted');
      assert.deepEqual(restarted.tunnels(), [], 'no tunnel was attached');
      const visitor = await curlResponse([`http://127.0.0.1:${port}/${label}/`]);
      assert.equal(visitor.status, 404, 'a visitor reaches nothing');

      // Reconnecting is one round trip more, no fixed wait: a real agent is ready as soon as it dials.
      const started = performance.now();
      const agent = createAgent({
        relay: restarted.addresses[0] as string,
        key: generateAgentKey(),
        services: [{ target: origin.url }],
      });
      try {
        await readyWithin(agent);
        const ms = performance.now() - started;
        assert.ok(ms < 10_000, `ready after ${Math.round(ms)} ms`);
      } finally {
        await agent.close();
      }
    } finally {
      await restarted.close();
    }
  });

  test('on another cluster node while Redis is down: refused, and nothing is half-admitted when Redis returns', async () => {
    const redis: Redis = await startRedis();
    let nodes: Relay[] = [];
    try {
      nodes = await startClusterRelays(redis, ['a', 'b']);
      const [a, b] = nodes as [Relay, Relay];
      const { head, label } = await recordRegistration(a.addresses[0] as string, origin.url);
      await redis.kill();
      const portB = Number((b.addresses[0] as string).split(':').pop());
      const answer = await replay(portB, head);
      assert.ok(answer.closed, `the relay closed the connection (${answer.status})`);
      assert.deepEqual(b.tunnels(), [], 'node b attached nothing');
      await redis.restart();
      const visitor = await curlResponse([`http://127.0.0.1:${portB}/${label}/`]);
      assert.notEqual(visitor.status, 200, 'no visitor is answered by the replayer');
      assert.deepEqual(b.tunnels(), []);
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
      await redis.stop();
    }
  });
});
