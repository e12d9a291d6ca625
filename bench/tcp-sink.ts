// The receiving end of the bench's library TCP row: each connection first says how many bytes
// follow (8 bytes, big-endian); the sink counts them and answers one byte when all have arrived,
// so the sender times the whole transfer without needing a half-close on the way.
import { createServer } from 'node:net';

const server = createServer({ noDelay: true }, (socket) => {
  let expected = -1;
  let received = 0;
  let header = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    if (expected < 0) {
      header = Buffer.concat([header, chunk]);
      if (header.length < 8) return;
      expected = Number(header.readBigUInt64BE(0));
      received = header.length - 8;
    } else received += chunk.length;
    if (received >= expected) socket.end('!');
  });
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
