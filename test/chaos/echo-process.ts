// A TCP echo service in a process of its own (the scale test's 10 000 connections need their own
// descriptor budget): `node echo-process.js`, prints {"port":N} when listening.
import { createServer } from 'node:net';

const server = createServer({ allowHalfOpen: true }, (socket) => {
  socket.on('error', () => {});
  socket.pipe(socket);
});
server.maxConnections = 50_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
