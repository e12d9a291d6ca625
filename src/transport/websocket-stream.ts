import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/**
 * An open WebSocket as a byte stream for an HTTP/2 session: every batch of writes goes out as ONE
 * binary message (HTTP/2 writes a frame's 9-byte header and its payload as separate buffers in one
 * corked batch; ws's own createWebSocketStream would send each as a message of its own), and
 * received messages are pushed in order, pausing the socket while the reader is behind, so a slow
 * reader slows the peer instead of growing memory.
 */
export function webSocketStream(ws: WebSocket): Duplex {
  const stream = new Duplex({
    allowHalfOpen: false,
    read() {
      ws.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      ws.send(chunk, { binary: true }, callback);
    },
    writev(chunks, callback) {
      const buffers = chunks.map((c) => c.chunk as Buffer);
      ws.send(
        buffers.length === 1 ? (buffers[0] as Buffer) : Buffer.concat(buffers),
        { binary: true },
        callback,
      );
    },
    final(callback) {
      ws.close(1000);
      callback();
    },
    destroy(error, callback) {
      if (ws.readyState !== ws.CLOSED) ws.terminate();
      callback(error);
    },
  });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      stream.destroy(new Error('text message on a session WebSocket'));
      return;
    }
    if (!stream.push(data)) ws.pause();
  });
  ws.once('close', () => stream.push(null));
  ws.once('error', (error) => stream.destroy(error));
  return stream;
}
