import { type Agent, createAgent } from '../../src/agent/agent.js';
import type { AgentOptions } from '../../src/agent/options.js';
import { type AgentKey, generateAgentKey } from '../../src/keys/key-file.js';
import type { RelayOptions } from '../../src/relay/options.js';
import { createRelay, type Relay } from '../../src/relay/relay.js';
import type { AssignedService } from '../../src/session/protocol.js';

export interface Tunnel {
  relay: Relay;
  agent: Agent;
  key: AgentKey;
  service: AssignedService;
  /** http://127.0.0.1:<port>, the relay's own address. */
  relayUrl: string;
  port: number;
  close(): Promise<void>;
}

/** An in-process relay on 127.0.0.1:0 and an agent exposing `target` through it. */
export async function startTunnel(
  target: string,
  options: { relay?: RelayOptions; agent?: Partial<AgentOptions>; key?: AgentKey } = {},
): Promise<Tunnel> {
  const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], ...options.relay });
  const address = relay.addresses[0] as string;
  const port = Number(address.split(':').pop());
  const key = options.key ?? generateAgentKey();
  const agent = createAgent({ relay: address, key, services: [{ target }], ...options.agent });
  const [service] = await agent.ready;
  return {
    relay,
    agent,
    key,
    service: service as AssignedService,
    relayUrl: `http://127.0.0.1:${port}`,
    port,
    close: async () => {
      await agent.close();
      await relay.close();
    },
  };
}

/**
 * The agent's services once it registered, or a rejection after `timeoutMs` that quotes why its
 * last attempt failed (so a test that cannot connect fails with the reason instead of hanging).
 */
export async function readyWithin(agent: Agent, timeoutMs = 15_000): Promise<AssignedService[]> {
  let lastReason = 'no attempt finished';
  const onDisconnected = (event: { reason: string }): void => {
    lastReason = event.reason;
  };
  agent.on('disconnected', onDisconnected);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      agent.ready,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`agent not ready within ${timeoutMs} ms; last: ${lastReason}`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    agent.off('disconnected', onDisconnected);
  }
}
