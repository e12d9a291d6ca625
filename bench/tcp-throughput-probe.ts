// Not part of the bench: a one-off probe of preflight TCP throughput with relay, agent and a
// sink target in one process (CPU cost of the byte path, not cross-process wake-ups).
import { createServer } from 'node:net';
import { createAgent } from '../src/agent/agent.js';
import { generateAgentKey } from '../src/keys/key-file.js';
import { createRelay } from '../src/relay/relay.js';
import { connect } from '../src/transport/connect.js';

const mib = Number(process.argv[2] ?? 512);
let received = 0;
let done: () => void = () => {};
const sink = createServer((socket) => {
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received >= mib * 2 ** 20) done();
  });
});
await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
const target = `tcp://127.0.0.1:${(sink.address() as { port: number }).port}`;
const relay = await createRelay({ listen: ['tcp://127.0.0.1:0'] });
const agent = createAgent({
  relay: relay.addresses[0] as string,
  key: generateAgentKey(),
  services: [{ target }],
  connections: 1,
});
const [service] = await agent.ready;
const port = Number((relay.addresses[0] as string).split(':').pop());
const socket = await connect(`tcp://${service?.label}.localhost:${port}?http_preflight=true`);
const block = Buffer.alloc(64 * 1024, 7);
const finished = new Promise<void>((resolve) => {
  done = resolve;
});
const started = performance.now();
for (let sent = 0; sent < mib * 2 ** 20; sent += block.length)
  if (!socket.write(block)) await new Promise((resolve) => socket.once('drain', resolve));
await finished;
const seconds = (performance.now() - started) / 1000;
console.log(`${mib} MiB in ${seconds.toFixed(2)} s: ${((mib * 2 ** 20) / seconds / 1e6).toFixed(0)} MB/s`);
socket.destroy();
await agent.close();
await relay.close();
sink.close();
