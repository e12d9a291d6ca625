import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import type { Agent, Relay } from '../src/index.js';

/**
 * Compiles only while the events are typed (AgentEvents, RelayEvents): without them every
 * `@ts-expect-error` below finds nothing to expect and `tsc` fails.
 */
export function typedEvents(agent: Agent, relay: Relay): void {
  agent.on('connected', (event) => event.services.map((service) => service.url));
  agent.on('request', (event) => event.durationMs.toFixed(0));
  // @ts-expect-error a 'connected' event has no status
  agent.on('connected', (event) => event.status);
  // @ts-expect-error no such agent event
  agent.on('connect', () => {});
  relay.on('session', (session) => session.keyLabel);
  // @ts-expect-error no such relay event
  relay.on('tunnel', () => {});
}

/**
 * The package as users import it: by its name, through package.json's `exports`, not by a path
 * into src/. Everything the README's library section uses must be there and work together.
 */
describe('import … from "postern"', () => {
  test('exports the documented API, and a relay, an agent and connect() work through it', async () => {
    const postern = await import('postern');
    for (const name of [
      'createRelay',
      'createAgent',
      'connect',
      'Client',
      'parseConnectionString',
      'formatConnectionString',
      'generateAgentKey',
      'loadKeyFile',
      'writeKeyFile',
      'keyLabel',
      'serviceLabel',
      'startInspector',
      'CaptureStore',
      'PosternError',
      'ConnectionStringError',
      'OptionError',
      'ERROR_CATALOGUE',
      'DEFAULT_RELAY_OPTIONS',
      'DEFAULT_AGENT_OPTIONS',
    ]) {
      assert.ok(name in postern, `postern exports ${name}`);
    }
    assert.throws(() => postern.parseConnectionString('htp://x:1'), postern.ConnectionStringError);

    const { createServer } = await import('node:net');
    const echo = createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const port = (echo.address() as { port: number }).port;
    const relay = await postern.createRelay({ listen: ['tcp://127.0.0.1:0'] });
    const agent = postern.createAgent({
      relay: relay.addresses[0] as string,
      key: postern.generateAgentKey(),
      services: [{ name: 'echo', target: `tcp://127.0.0.1:${port}` }],
    });
    try {
      const [service] = await agent.ready;
      assert.ok(service?.connect, 'a TCP service has a connection string for clients');
      const socket = await postern.connect(service.connect);
      socket.write('through the package');
      const [reply] = (await once(socket, 'data')) as [Buffer];
      assert.equal(reply.toString(), 'through the package');
      socket.destroy();
    } finally {
      await agent.close();
      await relay.close();
      echo.close();
    }
  });
});
