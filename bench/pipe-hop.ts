// One hop of the "plain two-hop socket pipe" baseline: every connection is forwarded raw to
// 127.0.0.1:<target port> with no framing. Two of these in a row (visitor → hop → hop → target)
// are the floor any relay-plus-agent design in Node pays; the bench compares Postern with it.
import { connect, createServer } from 'node:net';
import { tuneGarbageCollector } from '../src/cli/gc-tuning.js';
import { raiseMallocTrimThreshold } from '../src/cli/malloc-tuning.js';
import { countRead } from '../src/read-buffer-collector.js';

// The same process settings as every postern command, so the floor is measured as fast as Node
// moves these bytes, not slowed by the settings Postern's processes escape.
const tuned = process.env.PIPE_HOP_UNTUNED === undefined;
if (tuned) {
  tuneGarbageCollector();
  raiseMallocTrimThreshold();
}

const targetPort = Number(process.argv[2]);
const server = createServer({ noDelay: true }, (inbound) => {
  const outbound = connect({ port: targetPort, host: '127.0.0.1', noDelay: true });
  const close = (): void => {
    inbound.destroy();
    outbound.destroy();
  };
  inbound.on('error', close).on('close', close);
  outbound.on('error', close).on('close', close);
  inbound.pipe(outbound);
  outbound.pipe(inbound);
  // Postern's byte paths count what they read so that dead read buffers are collected young
  // (src/read-buffer-collector.ts); the tuned floor does the same.
  if (tuned) {
    inbound.on('data', (chunk: Buffer) => countRead(chunk.length));
    outbound.on('data', (chunk: Buffer) => countRead(chunk.length));
  }
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
