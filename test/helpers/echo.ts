import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { WebSocketServer } from 'ws';

export interface EchoServer {
  port: number;
  /** The target address an agent exposes: tcp://127.0.0.1:<port> or http://127.0.0.1:<port>. */
  target: string;
  close(): Promise<void>;
}

/** A TCP service on loopback that sends back every byte (half-close passes through). */
export async function startTcpEcho(): Promise<EchoServer> {
  const server = createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    target: `tcp://127.0.0.1:${port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A WebSocket service on loopback that sends every message back as it came (text or binary). */
export async function startWebSocketEcho(): Promise<EchoServer> {
  const server = createHttpServer();
  new WebSocketServer({ server }).on('connection', (ws) =>
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    target: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
