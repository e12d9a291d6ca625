// A hop that passes every chunk on `delay` ms after it arrived, both ways: a long path on loopback,
// for the bench's "agent far away" rows (this machine has no netem). It holds at most 64 MiB a
// direction and stops reading past that, and past the same amount unsent to its destination.
// Usage: delay-hop.js <target port> <delay ms>; prints {"port": …} once it listens.
import { connect, createServer, type Socket } from 'node:net';

const [targetPort, delayMs] = process.argv.slice(2).map(Number) as [number, number];
const LIMIT = 64 << 20;

function delayLine(from: Socket, to: Socket): void {
  const queue: { due: number; chunk: Buffer | null }[] = [];
  let queued = 0;
  let timer: NodeJS.Timeout | undefined;
  const resumeIfRoom = (): void => {
    if (queued < LIMIT && to.writableLength < LIMIT) from.resume();
  };
  to.on('drain', resumeIfRoom);
  const schedule = (): void => {
    const next = queue[0];
    if (timer !== undefined || next === undefined) return;
    timer = setTimeout(release, Math.max(0, next.due - performance.now()));
  };
  const release = (): void => {
    timer = undefined;
    const now = performance.now();
    for (let next = queue[0]; next !== undefined && next.due <= now; next = queue[0]) {
      queue.shift();
      if (next.chunk === null) to.end();
      else {
        queued -= next.chunk.length;
        to.write(next.chunk);
      }
    }
    resumeIfRoom();
    schedule();
  };
  const enqueue = (chunk: Buffer | null): void => {
    queue.push({ due: performance.now() + delayMs, chunk });
    schedule();
  };
  from.on('data', (chunk: Buffer) => {
    queued += chunk.length;
    if (queued >= LIMIT) from.pause();
    enqueue(chunk);
  });
  from.on('end', () => enqueue(null));
}

const server = createServer({ noDelay: true, allowHalfOpen: true }, (inbound) => {
  const outbound = connect({ port: targetPort, host: '127.0.0.1', noDelay: true, allowHalfOpen: true });
  const close = (): void => {
    inbound.destroy();
    outbound.destroy();
  };
  inbound.on('error', close).on('close', close);
  outbound.on('error', close).on('close', close);
  delayLine(inbound, outbound);
  delayLine(outbound, inbound);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
