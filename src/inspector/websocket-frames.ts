import { frameLength } from '../http/websocket-frame-head.js';

/** One WebSocket message as the inspector keeps it. */
export interface ObservedMessage {
  /** 'text', 'binary', 'close', 'ping' or 'pong'. */
  type: string;
  /** Whole payload size, bytes. */
  size: number;
  /** Up to `keepBytes` of the payload, unmasked. */
  data: Buffer;
  truncated: boolean;
  /** Sent with RSV1 under permessage-deflate: `data` is the compressed payload. */
  compressed: boolean;
}

const TYPES: Record<number, string> = { 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' };

/**
 * Reads RFC 6455 frames from one direction of a WebSocket byte stream, without taking part in it:
 * fragments are joined into messages, masked payloads unmasked, control frames reported between
 * fragments. Memory is bounded by `keepBytes` per message plus a 14-byte header. Bytes that are not
 * valid framing stop the reader for good (`broken` says why); the stream itself is not touched.
 */
export class WebSocketFrameReader {
  broken: string | undefined;
  readonly #keepBytes: number;
  readonly #onMessage: (message: ObservedMessage) => void;
  #header = Buffer.alloc(0);
  /** Payload bytes of the current frame still to come; -1 while reading a header. */
  #remaining = -1;
  #mask: Buffer | undefined;
  #maskOffset = 0;
  #frameIsControl = false;
  #control: { type: string; size: number; parts: Buffer[]; kept: number } | undefined;
  #message: { type: string; size: number; parts: Buffer[]; kept: number; compressed: boolean } | undefined;
  #fin = false;

  constructor(keepBytes: number, onMessage: (message: ObservedMessage) => void) {
    this.#keepBytes = keepBytes;
    this.#onMessage = onMessage;
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && this.broken === undefined) {
      if (this.#remaining < 0) {
        const needed = Math.min(14 - this.#header.length, chunk.length - offset);
        const header = Buffer.concat([this.#header, chunk.subarray(offset, offset + needed)]);
        const used = this.#readHeader(header);
        if (used === 0) {
          this.#header = header;
          offset += needed;
          continue;
        }
        offset += used - this.#header.length;
        this.#header = Buffer.alloc(0);
        if (this.#remaining === 0) this.#frameDone();
        continue;
      }
      const take = Math.min(this.#remaining, chunk.length - offset);
      this.#payload(chunk.subarray(offset, offset + take));
      offset += take;
      this.#remaining -= take;
      if (this.#remaining === 0) this.#frameDone();
    }
  }

  /** Parses a frame header from `header`; returns the bytes it took, or 0 when more are needed. */
  #readHeader(header: Buffer): number {
    if (header.length < 2) return 0;
    const first = header[0] as number;
    const second = header[1] as number;
    const opcode = first & 0x0f;
    const masked = (second & 0x80) !== 0;
    const size = frameLength(header);
    if (size === undefined) return 0;
    if (typeof size === 'string') return this.#break(size);
    const { length } = size;
    let { at } = size;
    if (masked) {
      if (header.length < at + 4) return 0;
      this.#mask = Buffer.from(header.subarray(at, at + 4));
      at += 4;
    } else this.#mask = undefined;
    this.#maskOffset = 0;
    this.#fin = (first & 0x80) !== 0;
    const type = TYPES[opcode];
    if (opcode >= 8) {
      if (type === undefined) return this.#break(`reserved control opcode ${opcode}`);
      if (!this.#fin || length > 125) return this.#break('a fragmented or oversize control frame');
      this.#frameIsControl = true;
      this.#control = { type, size: length, parts: [], kept: 0 };
    } else {
      this.#frameIsControl = false;
      if (opcode === 0) {
        if (this.#message === undefined)
          return this.#break('a continuation frame with no message to continue');
        this.#message.size += length;
      } else {
        if (type === undefined) return this.#break(`reserved data opcode ${opcode}`);
        if (this.#message !== undefined) return this.#break('a new message before the last one ended');
        this.#message = { type, size: length, parts: [], kept: 0, compressed: (first & 0x40) !== 0 };
      }
    }
    this.#remaining = length;
    return at;
  }

  #break(reason: string): number {
    this.broken = reason;
    return 1;
  }

  #payload(bytes: Buffer): void {
    const target = this.#frameIsControl ? this.#control : this.#message;
    if (target === undefined || target.kept >= this.#keepBytes) {
      this.#maskOffset += bytes.length;
      return;
    }
    const kept = Buffer.from(bytes.subarray(0, this.#keepBytes - target.kept));
    if (this.#mask !== undefined) {
      for (let i = 0; i < kept.length; i++)
        kept[i] = (kept[i] as number) ^ (this.#mask[(this.#maskOffset + i) & 3] as number);
    }
    this.#maskOffset += bytes.length;
    target.parts.push(kept);
    target.kept += kept.length;
  }

  #frameDone(): void {
    this.#remaining = -1;
    if (this.#frameIsControl) {
      const control = this.#control;
      this.#control = undefined;
      if (control !== undefined) this.#emit(control, false);
      return;
    }
    if (!this.#fin || this.#message === undefined) return;
    const message = this.#message;
    this.#message = undefined;
    this.#emit(message, message.compressed);
  }

  #emit(message: { type: string; size: number; parts: Buffer[]; kept: number }, compressed: boolean): void {
    this.#onMessage({
      type: message.type,
      size: message.size,
      data: Buffer.concat(message.parts),
      truncated: message.kept < message.size,
      compressed,
    });
  }
}
