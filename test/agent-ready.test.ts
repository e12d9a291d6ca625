import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { describe, test } from 'node:test';
import {
  createAgent,
  createRelay,
  generateAgentKey,
  localhostLookup,
  OptionError,
  PosternError,
} from '../src/index.js';
import type { AgentKey } from '../src/keys/key-file.js';
import { freePort } from './helpers/binaries.js';

/** Counts the agent's attempts from now on. */
function attempts(agent: ReturnType<typeof createAgent>): () => number {
  let count = 0;
  agent.on('disconnected', () => count++);
  return () => count;
}

describe('agent.ready settles: admitted, refused, timed out or aborted', () => {
  test('no relay within readyTimeoutMs: rejects with POSTERN_READY_TIMEOUT and the last reason, and the agent stops', async () => {
    const agent = createAgent({
      relay: `tcp://127.0.0.1:${await freePort()}`,
      key: generateAgentKey(),
      services: [{ target: 'http://127.0.0.1:1' }],
      readyTimeoutMs: 400,
      reconnectInitialMs: 20,
      reconnectMaxMs: 50,
    });
    try {
      const counted = attempts(agent);
      await assert.rejects(agent.ready, (error: unknown) => {
        assert.ok(error instanceof PosternError);
        assert.equal(error.code, 'POSTERN_READY_TIMEOUT');
        assert.equal(error.retryable, true);
        assert.match(
          error.message,
          /^no relay admitted the agent within 400 ms \(last: cannot connect to .*connection refused/,
        );
        return true;
      });
      // The agent closed itself: over six of its longest backoffs, no new attempt.
      const after = counted();
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(counted(), after, 'the agent kept trying after ready was rejected');
    } finally {
      await agent.close();
    }
  });

  test('a signal aborts it: POSTERN_ABORTED with the reason as cause, the agent closed; an aborted signal at once', async () => {
    const controller = new AbortController();
    const agent = createAgent({
      relay: `tcp://127.0.0.1:${await freePort()}`,
      key: generateAgentKey(),
      services: [{ target: 'http://127.0.0.1:1' }],
      readyTimeoutMs: 0,
      signal: controller.signal,
    });
    const reason = new Error('the app shuts down');
    controller.abort(reason);
    await assert.rejects(agent.ready, (error: unknown) => {
      assert.ok(error instanceof PosternError);
      assert.equal(error.code, 'POSTERN_ABORTED');
      assert.equal(error.cause, reason);
      return true;
    });
    await agent.close();
    const early = createAgent({
      relay: 'tcp://127.0.0.1:1',
      key: generateAgentKey(),
      services: [{ target: 'http://127.0.0.1:1' }],
      signal: AbortSignal.abort(),
    });
    await assert.rejects(early.ready, { code: 'POSTERN_ABORTED' });
    await early.close();
  });

  test('admitted: ready resolves, a later abort closes the agent, and Symbol.asyncDispose closes both ends', async () => {
    const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
    const controller = new AbortController();
    const agent = createAgent({
      relay: relay.addresses[0] as string,
      key: generateAgentKey(),
      services: [{ target: 'http://127.0.0.1:1' }],
      signal: controller.signal,
    });
    const [service] = await agent.ready;
    assert.match(service?.url ?? '', /^http:\/\//);
    // The path form works from Node's own fetch, which does not resolve *.localhost on glibc.
    assert.equal(
      service?.pathUrl,
      `${(relay.addresses[0] as string).replace('tcp://', 'http://')}/${service?.label}/`,
    );
    const viaPath = await fetch(service?.pathUrl as string);
    assert.equal(
      viaPath.headers.get('postern-error'),
      'target_unreachable',
      'the request reached the tunnel',
    );
    const closed = new Promise((resolve) => relay.once('session-closed', resolve));
    controller.abort();
    await closed;
    await agent[Symbol.asyncDispose]();
    await relay[Symbol.asyncDispose]();
    assert.equal(
      relay.tunnels().every((t) => t.sessions === 0),
      true,
    );
  });

  test('localhostLookup resolves <label>.localhost to loopback for Node clients', async () => {
    const address = await new Promise((resolve, reject) =>
      localhostLookup('abc.localhost', {}, (error, found) => (error ? reject(error) : resolve(found))),
    );
    assert.equal(address, '127.0.0.1');
  });

  test('a key that is not ed25519 is refused at once, not retried', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }) as AgentKey;
    for (const [key, message] of [
      [ec, /must be an ed25519 key pair .*, not ec$/],
      [{} as AgentKey, /must be an ed25519 key pair .*, not undefined$/],
    ] as const)
      assert.throws(
        () => createAgent({ relay: 'tcp://127.0.0.1:1', key, services: [{ target: 'http://127.0.0.1:1' }] }),
        (error: unknown) => error instanceof OptionError && message.test(error.message),
      );
  });
});

describe('publishing an application without a port', () => {
  test('a request handler, a server not listening, and one already listening are each served', async () => {
    const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
    const listening = createHttpServer((_req, res) => res.end('listening server'));
    listening.listen(0, '127.0.0.1');
    await once(listening, 'listening');
    const idle = createHttpServer((_req, res) => res.end('idle server'));
    const agent = createAgent({
      relay: relay.addresses[0] as string,
      key: generateAgentKey(),
      services: [
        { name: 'handler', target: (req, res) => res.end(`handler saw ${req.url}`) },
        { name: 'idle', target: idle },
        { name: 'listening', target: listening },
      ],
    });
    try {
      const services = await agent.ready;
      const body = async (name: string, path: string): Promise<string> => {
        const url = services.find((s) => s.name === name)?.pathUrl as string;
        return (await fetch(`${url}${path}`)).text();
      };
      assert.equal(await body('handler', 'x?y=1'), 'handler saw /x?y=1');
      assert.equal(await body('idle', ''), 'idle server');
      assert.equal(await body('listening', ''), 'listening server');
      assert.equal(idle.listening, true);
    } finally {
      await agent.close();
      await relay.close();
    }
    // What the agent started, it stopped; what was listening already still is.
    assert.equal(idle.listening, false);
    assert.equal(listening.listening, true);
    listening.close();
  });
});
