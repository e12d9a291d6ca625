import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import { frameLength } from '../http/websocket-frame-head.js';

/**
 * A WebSocket that visitors open to a TCP service is ended at the relay (clients that can only
 * speak WebSocket, `connect('ws://…')`): its data frames carry the service's bytes. The payload of
 * each frame is passed on as it arrives — a message is never held whole, so a visitor's memory at
 * the relay is this parser's few bytes of state whatever the message size (the ws library holds
 * each message until its last frame: 64 MiB a connection, never timed out). Bytes from the service
 * go out as one binary message per chunk.
 *
 * RFC 6455 as a server: client frames must be masked; no extension is negotiated, so RSV bits must
 * be clear; control frames (≤ 125 bytes, never fragmented) are answered between fragments.
 */

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Pongs and the close answer are dropped rather than queued past this (a peer that pings but never reads). */
const MAX_QUEUED_CONTROL_BYTES = 64 << 10;

const Opcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

export interface WebSocketHandshake {
  /** The 101 to write, or why the handshake is refused (400). */
  response: string;
  ok: boolean;
}

/** Checks a visitor's WebSocket handshake and builds the 101 (the first offered subprotocol is taken). */
export function webSocketHandshake(req: IncomingMessage): WebSocketHandshake {
  const key = req.headers['sec-websocket-key'];
  if (req.headers['sec-websocket-version'] !== '13')
    return { ok: false, response: 'Sec-WebSocket-Version must be 13' };
  if (typeof key !== 'string' || !/^[A-Za-z0-9+/]{22}==$/.test(key.trim()))
    return { ok: false, response: 'Sec-WebSocket-Key must be 16 bytes in base64' };
  const accept = createHash('sha1').update(`${key.trim()}${GUID}`).digest('base64');
  const offered = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim())
    .find((p) => /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(p));
  const lines = [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${accept}`,
    ...(offered === undefined ? [] : [`Sec-WebSocket-Protocol: ${offered}`]),
  ];
  return { ok: true, response: `${lines.join('\r\n')}\r\n\r\n` };
}

/**
 * The byte stream inside a WebSocket whose handshake is done: reads give the data frames' payloads
 * in order, writes go out as binary messages; end sends a close frame. A message left unfinished
 * (a frame begun, or a fragment without its last) for `stallTimeoutMs` is cut with close 1008.
 */
export function webSocketBytes(socket: Duplex, head: Buffer, stallTimeoutMs: number): Duplex {
  let header = Buffer.alloc(0);
  /** Payload bytes of the current frame still to come; -1 while reading a header. */
  let remaining = -1;
  let opcode = 0;
  let fin = false;
  let mask = Buffer.alloc(4);
  let maskOffset = 0;
  let inMessage = false;
  let control: Buffer[] = [];
  let closing = false;
  let stall: NodeJS.Timeout | undefined;
  let readEnded = false;
  const endRead = (): void => {
    if (readEnded) return;
    readEnded = true;
    stream.push(null);
  };

  const stream = new Duplex({
    allowHalfOpen: true,
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      socket.cork();
      socket.write(frameHeader(Opcode.binary, chunk.length));
      socket.write(chunk, callback);
      socket.uncork();
    },
    final(callback) {
      sendControl(Opcode.close, closePayload(1000));
      closing = true;
      socket.end();
      callback();
    },
    destroy(error, callback) {
      clearTimeout(stall);
      socket.destroy();
      callback(error);
    },
  });

  const sendControl = (code: number, payload: Buffer): void => {
    if (closing || socket.destroyed || socket.writableLength > MAX_QUEUED_CONTROL_BYTES) return;
    socket.write(Buffer.concat([frameHeader(code, payload.length), payload]));
  };
  const fail = (code: number, reason: string): void => {
    sendControl(Opcode.close, closePayload(code));
    closing = true;
    socket.end();
    stream.destroy(new Error(`WebSocket: ${reason}`));
  };
  // One timer, restarted on each read while a message is under way (not a new one per chunk).
  const armStall = (): void => {
    if (!(inMessage || remaining >= 0) || stallTimeoutMs <= 0) {
      clearTimeout(stall);
      stall = undefined;
    } else if (stall === undefined)
      stall = setTimeout(
        () => fail(1008, `a message left unfinished for ${stallTimeoutMs} ms`),
        stallTimeoutMs,
      );
    else stall.refresh();
  };

  /** Parses a frame header from the front of `bytes`; returns its length, 0 when more bytes are needed. */
  const readHeader = (bytes: Buffer): number => {
    if (bytes.length < 2) return 0;
    const first = bytes[0] as number;
    const second = bytes[1] as number;
    const size = frameLength(bytes);
    if (size === undefined) return 0;
    if (typeof size === 'string') {
      fail(1009, size);
      return -1;
    }
    const { length, at: offset } = size;
    if (bytes.length < offset + 4) return 0;
    if ((second & 0x80) === 0) {
      fail(1002, 'a client frame must be masked');
      return -1;
    }
    if ((first & 0x70) !== 0) {
      fail(1002, 'reserved bits set (no extension was negotiated)');
      return -1;
    }
    fin = (first & 0x80) !== 0;
    opcode = first & 0x0f;
    const isControl = opcode >= 8;
    if (isControl && (!fin || length > 125)) {
      fail(1002, 'a control frame must be whole and at most 125 bytes');
      return -1;
    }
    if (!isControl) {
      if (opcode === Opcode.continuation ? !inMessage : inMessage) {
        fail(1002, 'fragments out of order');
        return -1;
      }
      if (opcode !== Opcode.continuation && opcode !== Opcode.text && opcode !== Opcode.binary) {
        fail(1002, `unknown opcode ${opcode}`);
        return -1;
      }
      inMessage = !fin;
    } else if (opcode !== Opcode.close && opcode !== Opcode.ping && opcode !== Opcode.pong) {
      fail(1002, `unknown opcode ${opcode}`);
      return -1;
    }
    mask = Buffer.from(bytes.subarray(offset, offset + 4));
    maskOffset = 0;
    remaining = length;
    control = [];
    return offset + 4;
  };

  const frameDone = (): void => {
    remaining = -1;
    if (opcode === Opcode.ping) sendControl(Opcode.pong, Buffer.concat(control));
    else if (opcode === Opcode.close) {
      sendControl(Opcode.close, Buffer.concat(control).subarray(0, 2));
      closing = true;
      endRead();
    }
  };

  const onData = (chunk: Buffer): void => {
    let offset = 0;
    let pushed = true;
    while (offset < chunk.length && !stream.destroyed && !closing) {
      if (remaining < 0) {
        const bytes =
          header.length === 0 ? chunk.subarray(offset) : Buffer.concat([header, chunk.subarray(offset)]);
        const used = readHeader(bytes);
        if (used < 0) return;
        if (used === 0) {
          // At most 14 bytes of a header wait here.
          header = Buffer.from(bytes.subarray(0, 14));
          offset = chunk.length;
          break;
        }
        offset += used - header.length;
        header = Buffer.alloc(0);
        if (remaining === 0) frameDone();
        continue;
      }
      const take = Math.min(remaining, chunk.length - offset);
      const payload = Buffer.from(chunk.subarray(offset, offset + take));
      for (let i = 0; i < payload.length; i++)
        payload[i] = (payload[i] as number) ^ (mask[(maskOffset + i) & 3] as number);
      maskOffset = (maskOffset + take) & 3;
      offset += take;
      remaining -= take;
      if (opcode >= 8) control.push(payload);
      else if (payload.length > 0) pushed = stream.push(payload) && pushed;
      if (remaining === 0) frameDone();
    }
    if (!pushed) socket.pause();
    armStall();
  };

  socket.on('data', onData);
  socket.once('end', () => {
    clearTimeout(stall);
    endRead();
  });
  socket.once('error', (error: Error) => stream.destroy(error));
  // Nothing more can be written once the socket is gone; what was read is still delivered first.
  socket.once('close', () => {
    clearTimeout(stall);
    if (stream.destroyed) return;
    if (stream.readableEnded) stream.destroy();
    else {
      stream.once('end', () => stream.destroy());
      endRead();
    }
  });
  if (head.length > 0) onData(head);
  return stream;
}

function frameHeader(opcode: number, length: number): Buffer {
  if (length < 126) return Buffer.from([0x80 | opcode, length]);
  if (length < 65_536) {
    const header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(length, 2);
    return header;
  }
  const header = Buffer.alloc(10);
  header[0] = 0x80 | opcode;
  header[1] = 127;
  header.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
  header.writeUInt32BE(length >>> 0, 6);
  return header;
}

function closePayload(code: number): Buffer {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  return payload;
}
