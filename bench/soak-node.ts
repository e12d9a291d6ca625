// One side of the soak run in a process of its own, so its memory is its own: `node soak-node.js
// relay`, `node soak-node.js cluster-relay <redis>` or `node soak-node.js agent <relay> <http target> <tcp target> <ws target>`. Sends
// {"ready":…} over IPC once up, and answers each "stats" message with its RSS, heap and handles.
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay } from '../src/relay/relay.js';

const [role, relayAddress = '', httpTarget = '', tcpTarget = '', wsTarget = ''] = process.argv.slice(2);
const send = (message: unknown): void => {
  process.send?.(message);
};

process.on('message', (message) => {
  if (message !== 'stats') return;
  // Collect first so the heap figure is what is live, not what the collector has not reached yet.
  (globalThis as { gc?: () => void }).gc?.();
  const memory = process.memoryUsage();
  send({
    stats: {
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      external: memory.external,
      handles: process.getActiveResourcesInfo().length,
    },
  });
});

if (role === 'cluster-relay') {
  // One cluster node on the Redis at argv[3] (cluster sizing): limits high enough for many agents.
  const relay = await createRelay({
    listen: ['tcp://127.0.0.1:0'],
    registrationsPerMinutePerIp: 1_000_000,
    maxTunnels: 1_000_000,
    maxStreamsPerVisitorIp: 0,
    redis: relayAddress,
    nodeId: 'sizing',
    clusterSecret: 'cluster-sizing-secret-0123456789',
  });
  send({ ready: relay.addresses[0] });
} else if (role === 'relay') {
  // Reconnects come from one address many times over a long run.
  const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'], registrationsPerMinutePerIp: 100_000 });
  send({ ready: relay.addresses[0] });
} else {
  const agent = createAgent({
    relay: relayAddress,
    key: generateAgentKey(),
    services: [
      { name: 'web', target: httpTarget },
      { name: 'echo', target: tcpTarget },
      { name: 'ws', target: wsTarget },
    ],
    reconnectInitialMs: 200,
  });
  const services = await agent.ready;
  send({ ready: services });
}
