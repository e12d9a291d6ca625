import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** A batch is cut into messages of at most this size (well under the 1 MiB limit a peer enforces). */
const MESSAGE_BYTES = 256 << 10;

/**
 * An open WebSocket as a byte stream for a session: every batch of writes goes out as few
 * binary messages as possible (a session writes a frame's 9-byte header and its payload as separate
 * buffers in one corked batch; ws's own createWebSocketStream would send each as a message of its
 * own), each at most 256 KiB: after backpressure a session may hand over megabytes at once. Received
 * messages are pushed in order, pausing the socket while the reader is behind, so a slow reader
 * slows the peer instead of growing memory.
 */
export function webSocketStream(ws: WebSocket): Duplex {
  const sendAll = (buffers: Buffer[], callback: (error?: Error | null) => void): void => {
    const messages = intoMessages(buffers);
    if (messages.length === 0) {
      process.nextTick(callback);
      return;
    }
    messages.forEach((message, index) => {
      ws.send(message, { binary: true }, index === messages.length - 1 ? callback : undefined);
    });
  };
  const stream = new Duplex({
    allowHalfOpen: false,
    read() {
      ws.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      sendAll([chunk], callback);
    },
    writev(chunks, callback) {
      sendAll(
        chunks.map((c) => c.chunk as Buffer),
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

/** Packs buffers into messages of at most MESSAGE_BYTES, in order, splitting any larger buffer. */
export function intoMessages(buffers: Buffer[]): Buffer[] {
  const messages: Buffer[] = [];
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = (): void => {
    if (pendingBytes === 0) return;
    messages.push(pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes));
    pending = [];
    pendingBytes = 0;
  };
  for (const buffer of buffers) {
    for (let offset = 0; offset < buffer.length; ) {
      const take = Math.min(buffer.length - offset, MESSAGE_BYTES - pendingBytes);
      pending.push(offset === 0 && take === buffer.length ? buffer : buffer.subarray(offset, offset + take));
      pendingBytes += take;
      offset += take;
      if (pendingBytes === MESSAGE_BYTES) flush();
    }
  }
  flush();
  return messages;
}
