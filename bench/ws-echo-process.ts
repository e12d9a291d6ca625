// The WebSocket echo target of the benchmark, in its own process: every message goes back as it
// came. Prints {"port": N} when it listens.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const server = createServer();
new WebSocketServer({ server, perMessageDeflate: false }).on('connection', (ws) =>
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })),
);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
