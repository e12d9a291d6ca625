// Not part of the bench: a one-off probe of what one idle preflight TCP stream keeps alive in the
// relay's JS heap. Relay, agent, target and clients share this process; run with --expose-gc.
import { writeHeapSnapshot } from 'node:v8';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay } from '../src/relay/relay.js';
import { connect } from '../src/transport/connect.js';
import { startTcpEcho } from '../test/helpers/echo.js';

const n = Number(process.argv[2] ?? 2000);
const gc = (globalThis as { gc?: () => void }).gc as () => void;
const echo = await startTcpEcho();
const relay = await createRelay({
  listen: ['tcp://127.0.0.1:0'],
  maxConcurrentStreamsPerTunnel: 100_000,
  maxStreamsPerVisitorIp: 0,
});
const agent = createAgent({
  relay: relay.addresses[0] as string,
  key: generateAgentKey(),
  services: [{ target: echo.target }],
  connections: 1,
  maxConcurrentStreams: 100_000,
});
const [service] = await agent.ready;
const port = Number((relay.addresses[0] as string).split(':').pop());
const cs = `tcp://${service?.label}.localhost:${port}?http_preflight=true`;
const warm = await connect(cs);
warm.destroy();
await new Promise((r) => setTimeout(r, 500));
gc();
const before = process.memoryUsage();
const sockets = [];
for (let i = 0; i < n; i += 100)
  sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => connect(cs)))));
await new Promise((r) => setTimeout(r, 1000));
gc();
const after = process.memoryUsage();
console.log(
  `heap per stream (relay+agent+client+target): ${((after.heapUsed - before.heapUsed) / n / 1024).toFixed(2)} KiB; rss ${((after.rss - before.rss) / n / 1024).toFixed(2)} KiB`,
);
if (process.argv[3] === 'snapshot') console.log(writeHeapSnapshot('/tmp/mem/idle.heapsnapshot'));
for (const s of sockets) s.destroy();
await agent.close();
await relay.close();
await echo.close();
