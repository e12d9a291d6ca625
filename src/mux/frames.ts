/**
 * The frames of Postern's session multiplexer (docs/protocol.md, "Session framing"). The layout
 * is HTTP/2's — a 9-byte header: 24-bit payload length, type, flags, 32-bit stream id — and so
 * are the type and error numbers, but there is no HPACK, no priority and no SETTINGS handshake to
 * wait for: header blocks are JSON, and the frames are only what a tunnel needs.
 */
export const FrameType = {
  data: 0x0,
  headers: 0x1,
  reset: 0x3,
  settings: 0x4,
  ping: 0x6,
  goaway: 0x7,
  windowUpdate: 0x8,
} as const;

/** END_STREAM on DATA and HEADERS; ACK on PING. */
export const END_STREAM = 0x1;
export const ACK = 0x1;

/** Reset and GOAWAY codes, numbered as in HTTP/2 (RFC 9113 §7). */
export const MuxError = {
  noError: 0x0,
  protocol: 0x1,
  internal: 0x2,
  flowControl: 0x3,
  frameSize: 0x6,
  refusedStream: 0x7,
  cancel: 0x8,
  enhanceYourCalm: 0xb,
} as const;

export const FRAME_HEADER_BYTES = 9;
/** The 24-bit length field's limit; a DATA frame is also bounded by the flow-control window. */
export const MAX_DATA_PAYLOAD = 2 ** 24 - 1;
/** Every other frame is read whole before it is acted on, so it is bounded much lower. */
export const MAX_CONTROL_PAYLOAD = 1 << 20;
/** Both windows before SETTINGS and WINDOW_UPDATE raise them, as in HTTP/2. */
export const INITIAL_WINDOW = 65_535;
export const MAX_WINDOW = 2 ** 31 - 1;

export function frameHeader(type: number, flags: number, streamId: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  writeFrameHeader(header, type, flags, streamId, length);
  return header;
}

export function writeFrameHeader(
  target: Buffer,
  type: number,
  flags: number,
  streamId: number,
  length: number,
): void {
  target.writeUIntBE(length, 0, 3);
  target[3] = type;
  target[4] = flags;
  target.writeUInt32BE(streamId, 5);
}

export interface FrameHandler {
  /** Part of a DATA frame's payload, as it arrives (never copied); `last` on its final part. */
  onData(streamId: number, flags: number, chunk: Buffer, last: boolean): void;
  /** Any other frame, whole. */
  onFrame(type: number, flags: number, streamId: number, payload: Buffer): void;
  onFrameError(code: number, message: string): void;
}

/**
 * Cuts a byte stream into frames. DATA payloads are handed on in the pieces they arrive in, so a
 * 16 MiB frame costs no buffering and no copy; other frames are gathered (at most
 * MAX_CONTROL_PAYLOAD). After an error it ignores everything.
 */
export class FrameReader {
  readonly #handler: FrameHandler;
  readonly #header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  #headerFill = 0;
  #type = 0;
  #flags = 0;
  #streamId = 0;
  /** Payload bytes still to come for the current frame; -1 while reading a header. */
  #remaining = -1;
  #control: Buffer | undefined;
  #controlFill = 0;
  #failed = false;

  constructor(handler: FrameHandler) {
    this.#handler = handler;
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.#failed) {
      if (this.#remaining < 0) {
        let source: Buffer;
        let at: number;
        if (this.#headerFill === 0 && chunk.length - offset >= FRAME_HEADER_BYTES) {
          source = chunk;
          at = offset;
          offset += FRAME_HEADER_BYTES;
        } else {
          const take = Math.min(FRAME_HEADER_BYTES - this.#headerFill, chunk.length - offset);
          chunk.copy(this.#header, this.#headerFill, offset, offset + take);
          this.#headerFill += take;
          offset += take;
          if (this.#headerFill < FRAME_HEADER_BYTES) return;
          this.#headerFill = 0;
          source = this.#header;
          at = 0;
        }
        if (!this.#startFrame(source, at)) return;
        if (this.#remaining === 0) this.#finishEmpty();
        else if (this.#type !== FrameType.data && chunk.length - offset >= this.#remaining) {
          const end = offset + this.#remaining;
          this.#remaining = -1;
          this.#handler.onFrame(this.#type, this.#flags, this.#streamId, chunk.subarray(offset, end));
          offset = end;
        } else if (this.#type !== FrameType.data) {
          this.#control = Buffer.allocUnsafe(this.#remaining);
          this.#controlFill = 0;
        }
        continue;
      }
      const take = Math.min(this.#remaining, chunk.length - offset);
      const part = chunk.subarray(offset, offset + take);
      offset += take;
      this.#remaining -= take;
      const last = this.#remaining === 0;
      if (last) this.#remaining = -1;
      if (this.#type === FrameType.data) {
        this.#handler.onData(this.#streamId, this.#flags, part, last);
      } else {
        const control = this.#control as Buffer;
        part.copy(control, this.#controlFill);
        this.#controlFill += take;
        if (last) {
          this.#control = undefined;
          this.#handler.onFrame(this.#type, this.#flags, this.#streamId, control);
        }
      }
    }
  }

  #startFrame(source: Buffer, at: number): boolean {
    const length = source.readUIntBE(at, 3);
    this.#type = source[at + 3] as number;
    this.#flags = source[at + 4] as number;
    this.#streamId = source.readUInt32BE(at + 5) & 0x7fff_ffff;
    if (this.#type !== FrameType.data && length > MAX_CONTROL_PAYLOAD) {
      this.#failed = true;
      this.#handler.onFrameError(
        MuxError.frameSize,
        `frame of type ${this.#type} is ${length} bytes (limit ${MAX_CONTROL_PAYLOAD})`,
      );
      return false;
    }
    this.#remaining = length;
    return true;
  }

  #finishEmpty(): void {
    this.#remaining = -1;
    if (this.#type === FrameType.data) this.#handler.onData(this.#streamId, this.#flags, EMPTY, true);
    else this.#handler.onFrame(this.#type, this.#flags, this.#streamId, EMPTY);
  }

  /** Stops reading: nothing more is handed on. */
  stop(): void {
    this.#failed = true;
  }
}

const EMPTY = Buffer.alloc(0);
