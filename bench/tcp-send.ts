// The sending end of the bench's library TCP row, in a process of its own: opens one connection
// with Postern's client library (`connect()`, so a preflight connection string goes through the
// relay and the agent) and sends <MiB> of data in 64 KiB writes to bench/tcp-sink.ts, honouring
// backpressure. Prints {"mbps": …}: bytes sent ÷ the time until the sink confirmed them all.
import { once } from 'node:events';
import { connect } from '../src/transport/connect.js';

const [connectionString = '', mibArgument = '256'] = process.argv.slice(2);
const total = Number(mibArgument) * 2 ** 20;
const socket = await connect(connectionString);
const block = Buffer.alloc(64 * 1024, 0x5a);
const length = Buffer.alloc(8);
length.writeBigUInt64BE(BigInt(total));
const confirmed = once(socket, 'data');
const started = performance.now();
socket.write(length);
for (let sent = 0; sent < total; sent += block.length) {
  if (!socket.write(block)) await once(socket, 'drain');
}
await confirmed;
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ mbps: total / seconds / 1e6 })}\n`);
socket.destroy();
