import {
  type ExchangeKind,
  type ExchangeRecord,
  type ObservedExchange,
  type PackedHeaders,
  type TrafficObserver,
  unpackHeaders,
} from '../agent/traffic-observer.js';
import { RenewingMap } from '../renewing-collections.js';
import { agreedDeflate, InflateBudget, MessageInflater } from './permessage-deflate.js';
import { type ObservedMessage, WebSocketFrameReader } from './websocket-frames.js';

/** How much the inspector keeps. Every figure is a hard limit. */
export interface CaptureLimits {
  /** Exchanges kept; the oldest goes first. */
  entries: number;
  /** Bytes kept of each request and each response body (the rest is counted, not kept). */
  bodyBytes: number;
  /** Messages kept per WebSocket connection (the newest). */
  messages: number;
  /** Bytes kept of one WebSocket message. */
  messageBytes: number;
  /**
   * Bytes kept over all exchanges; past it the oldest finished exchanges go, and bodies of exchanges
   * still open are kept only as far as it allows.
   */
  totalBytes: number;
}

/** The most a WebSocket message or a body is inflated to for display and search. */
export const DECODED_LIMIT = 1 << 20;
/** Compressed WebSocket messages waiting to be inflated, over all connections. */
const INFLATE_BACKLOG = 64;

export const DEFAULT_CAPTURE_LIMITS: CaptureLimits = {
  entries: 500,
  bodyBytes: 1 << 20,
  messages: 1_000,
  messageBytes: 64 << 10,
  totalBytes: 64 << 20,
};

/**
 * The list a capture's body parts and messages start with: one for all, replaced by the capture's
 * own list when the first item comes. Frozen, so an item pushed to it by mistake throws.
 */
const NONE = Object.freeze([]) as never[];

/** A body as far as it was kept. */
export class CapturedBody {
  size = 0;
  kept = 0;
  parts: Buffer[] = NONE;
  /**
   * The body decoded (gzip, deflate, br), once: the promise is kept so nothing decodes it twice;
   * it resolves with undefined when the body is not encoded, not whole, or does not decode within
   * the limit (capture-view.ts decodedBody()).
   */
  decoding: Promise<Buffer | undefined> | undefined;

  get truncated(): boolean {
    return this.kept < this.size;
  }

  bytes(): Buffer {
    if (this.parts.length > 1) this.parts = [Buffer.concat(this.parts)];
    return this.parts[0] ?? Buffer.alloc(0);
  }
}

export interface CapturedMessage extends ObservedMessage {
  /** 'in': from the visitor; 'out': to the visitor. */
  direction: 'in' | 'out';
  /** Milliseconds since the connection opened. */
  at: number;
  /**
   * A compressed message once inflated: `data` is then its decoded start and `size` its wire size.
   * Neither this nor `inflateNote` while it inflates or when permessage-deflate was not agreed.
   */
  inflatedSize?: number;
  /** Why a compressed message is shown as sent. */
  inflateNote?: string;
}

/**
 * One exchange the agent forwarded: an HTTP request, a WebSocket connection or a TCP connection.
 *
 * A capture lives for hundreds of requests, long enough for V8's young-generation collector to move
 * it to the old generation, so it is made of as few objects as it can be: each header list is one
 * packed string (traffic-observer.ts), and the lists an exchange may never fill (body parts,
 * WebSocket messages) are a shared empty one until it does.
 */
export class Capture {
  readonly id: string;
  readonly kind: ExchangeKind;
  readonly service: string;
  readonly visitor: string | undefined;
  readonly replayOf: string | undefined;
  readonly startedAt: number;
  readonly method: string;
  readonly path: string;
  /** Set when it ended. */
  durationMs: number | undefined = undefined;
  state: 'open' | 'done' | 'failed' = 'open';
  error: string | undefined = undefined;
  status: number | undefined = undefined;
  /** HTTP bodies; for WebSocket and TCP only the byte counts (size) are used. */
  readonly request = new CapturedBody();
  readonly response = new CapturedBody();
  messages: CapturedMessage[] = NONE;
  messageCount = 0;
  /** Why the WebSocket frames could no longer be read, if they could not. */
  framingNote: string | undefined = undefined;
  /** Bytes of decoded bodies kept beside the encoded ones (counted in the store's budget). */
  decodedBytes = 0;
  #requestHead: PackedHeaders;
  #responseHead: PackedHeaders = '';

  constructor(id: string, exchange: ObservedExchange, startedAt: number) {
    this.id = id;
    this.kind = exchange.kind;
    this.service = exchange.service;
    this.visitor = exchange.visitor;
    this.replayOf = exchange.replayOf;
    this.startedAt = startedAt;
    this.method = exchange.method;
    this.path = exchange.path;
    this.#requestHead = exchange.headers;
  }

  /** The request as the agent sent it to the target (Host included). */
  get requestHeaders(): [string, string][] {
    return unpackHeaders(this.#requestHead);
  }

  get responseHeaders(): [string, string][] {
    return unpackHeaders(this.#responseHead);
  }

  setResponseHead(headers: PackedHeaders): void {
    this.#responseHead = headers;
  }

  /** What the header lists weigh against CaptureLimits.totalBytes. */
  get headerBytes(): number {
    return this.#requestHead.length + this.#responseHead.length;
  }
}

/**
 * Keeps the last exchanges the agent forwarded, within CaptureLimits, and says when one changes.
 * It is the agent's TrafficObserver: a record writes into its capture until the capture is evicted,
 * after which it writes nowhere.
 */
export class CaptureStore implements TrafficObserver {
  readonly limits: CaptureLimits;
  readonly #entries = new RenewingMap<string, Capture>();
  /**
   * The kept captures oldest first, from #head on, with holes (undefined) where one was dropped.
   * The Map's own first entry is not used for this: V8 leaves a deleted entry's slot in place until
   * the table is rebuilt, and finding the first live one stepped over every capture evicted since
   * (up to `entries` of them, ~2 % of the agent's time under a small-GET load). Every removal
   * clears its slot, so the list never holds a dropped capture (nor its bodies); #compact bounds
   * the holes.
   */
  #order: (Capture | undefined)[] = [];
  #head = 0;
  readonly #listeners = new Set<(capture: Capture) => void>();
  #sequence = 0;
  #bytes = 0;
  readonly #inflateBudget = new InflateBudget(INFLATE_BACKLOG);

  constructor(limits: Partial<CaptureLimits> = {}) {
    this.limits = { ...DEFAULT_CAPTURE_LIMITS, ...limits };
  }

  /** Newest first. */
  list(): Capture[] {
    return [...this.#entries.values()].reverse();
  }

  get(id: string): Capture | undefined {
    return this.#entries.get(id);
  }

  clear(): void {
    this.#entries.clear();
    this.#order = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  /** Bytes kept now, over all captures. */
  get keptBytes(): number {
    return this.#bytes;
  }

  onChange(listener: (capture: Capture) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  open(exchange: ObservedExchange): ExchangeRecord {
    const capture = new Capture(String(++this.#sequence), exchange, Date.now());
    this.#entries.set(capture.id, capture);
    this.#compact();
    this.#order.push(capture);
    this.#account(capture, capture.headerBytes);
    while (this.#entries.size > this.limits.entries) this.#evictOldest();
    this.#changed(capture);
    return this.#record(capture, performance.now());
  }

  #record(capture: Capture, started: number): ExchangeRecord {
    const keep = (body: CapturedBody, chunk: Buffer): void => {
      body.size += chunk.length;
      if (capture.kind !== 'http' || body.kept >= this.limits.bodyBytes || !this.#entries.has(capture.id))
        return;
      const room = this.#makeRoom(Math.min(chunk.length, this.limits.bodyBytes - body.kept), capture.id);
      if (room === 0) return;
      // A copy: a small slice would otherwise pin the whole pooled buffer it came from.
      const part = Buffer.from(chunk.subarray(0, room));
      if (body.parts === NONE) body.parts = [part];
      else body.parts.push(part);
      body.kept += part.length;
      this.#account(capture, part.length);
    };
    let inflaters: (MessageInflater | undefined)[] = [];
    const frames =
      capture.kind === 'websocket'
        ? ([0, 1] as const).map(
            (index) =>
              new WebSocketFrameReader(this.limits.messageBytes, (message) =>
                this.#message(
                  capture,
                  { ...message, direction: index === 0 ? 'in' : 'out', at: performance.now() - started },
                  inflaters[index],
                ),
              ),
          )
        : undefined;
    let upgraded = false;
    let ended = false;
    const frame = (index: 0 | 1, chunk: Buffer): void => {
      const reader = frames?.[index];
      if (reader === undefined || !upgraded || reader.broken !== undefined) return;
      reader.push(chunk);
      if (reader.broken !== undefined) capture.framingNote = `stopped reading frames: ${reader.broken}`;
    };
    return {
      id: capture.id,
      fromVisitor: (chunk) => {
        keep(capture.request, chunk);
        frame(0, chunk);
      },
      response: (status, headers) => {
        capture.status = status;
        const before = capture.headerBytes;
        capture.setResponseHead(headers);
        upgraded = status === 101;
        const deflate = upgraded && frames !== undefined ? agreedDeflate(unpackHeaders(headers)) : undefined;
        if (deflate !== undefined)
          inflaters = [deflate.clientResets, deflate.serverResets].map(
            (resets) =>
              new MessageInflater({
                resets,
                budget: this.#inflateBudget,
                keepBytes: this.limits.messageBytes,
                maxDecodedBytes: DECODED_LIMIT,
              }),
          );
        this.#account(capture, capture.headerBytes - before);
        this.#changed(capture);
      },
      toVisitor: (chunk) => {
        if (frames !== undefined && upgraded) capture.response.size += chunk.length;
        else keep(capture.response, chunk);
        frame(1, chunk);
      },
      end: (error) => {
        if (ended) return;
        ended = true;
        capture.durationMs = performance.now() - started;
        capture.state = error === undefined ? 'done' : 'failed';
        capture.error = error;
        this.#changed(capture);
      },
    };
  }

  #message(capture: Capture, message: CapturedMessage, inflater: MessageInflater | undefined): void {
    if (inflater !== undefined && message.compressed)
      // Inflated even when the capture is gone: the next message may need this one's window.
      inflater.inflate(message.data, !message.truncated, (result) => {
        const kept = capture.messages.includes(message) && this.#entries.has(capture.id);
        if ('note' in result) message.inflateNote = result.note;
        else {
          if (kept) this.#account(capture, result.data.length - message.data.length);
          message.data = result.data;
          message.inflatedSize = result.size;
          message.truncated = result.size > result.data.length;
        }
        if (kept) this.#changed(capture);
      });
    if (!this.#entries.has(capture.id)) return;
    capture.messageCount++;
    if (capture.messages === NONE) capture.messages = [message];
    else capture.messages.push(message);
    this.#account(capture, message.data.length);
    while (capture.messages.length > this.limits.messages) {
      const dropped = capture.messages.shift() as CapturedMessage;
      this.#account(capture, -dropped.data.length);
    }
    this.#changed(capture);
  }

  /**
   * Counts a decoded body against the store's budget, dropping older finished exchanges to make
   * room; false (keep it not) when there is no room or the capture is gone.
   */
  noteDecoded(capture: Capture, bytes: number): boolean {
    if (!this.#entries.has(capture.id) || this.#makeRoom(bytes, capture.id) < bytes) return false;
    capture.decodedBytes += bytes;
    this.#bytes += bytes;
    return true;
  }

  #account(capture: Capture, bytes: number): void {
    if (!this.#entries.has(capture.id)) return;
    this.#bytes += bytes;
    // Over budget: the oldest exchanges go, never the one being written to.
    while (this.#bytes > this.limits.totalBytes && this.#entries.size > 1) {
      if (this.#oldest() === capture) break;
      this.#evictOldest();
    }
  }

  /**
   * Room for `wanted` more body bytes, made by dropping the oldest *finished* exchanges: exchanges
   * still open do not evict each other. Many large bodies at once would otherwise copy each chunk
   * only to drop it with its exchange a moment later — garbage by the hundred megabytes (found by
   * the chaos test with 200 stalled downloads). Returns how many bytes may be kept (maybe 0).
   */
  #makeRoom(wanted: number, writer: string): number {
    const order = this.#order;
    for (let i = this.#head; i < order.length && this.#bytes + wanted > this.limits.totalBytes; i++) {
      const capture = order[i];
      if (capture === undefined || capture.state === 'open' || capture.id === writer) continue;
      this.#remove(capture, i);
    }
    return Math.max(0, Math.min(wanted, this.limits.totalBytes - this.#bytes));
  }

  #evictOldest(): void {
    const oldest = this.#oldest();
    if (oldest !== undefined) this.#remove(oldest, this.#head);
  }

  #remove(capture: Capture, index: number): void {
    this.#order[index] = undefined;
    this.#entries.delete(capture.id);
    this.#bytes -= captureBytes(capture);
  }

  /** The oldest capture kept, at #head. */
  #oldest(): Capture | undefined {
    const order = this.#order;
    while (this.#head < order.length && order[this.#head] === undefined) this.#head++;
    return order[this.#head];
  }

  /**
   * Drops the list's holes once they outnumber its captures (and a thousand): an old exchange kept
   * open (a WebSocket) while #makeRoom drops newer ones behind it would otherwise grow the list
   * for ever. A new array, and the old one emptied: a dead array that outlived a young collection
   * must not point at young captures.
   */
  #compact(): void {
    const order = this.#order;
    if (order.length - this.#head <= 2 * this.#entries.size + 1024) return;
    this.#order = order.slice(this.#head).filter((capture) => capture !== undefined);
    order.length = 0;
    this.#head = 0;
  }

  #changed(capture: Capture): void {
    for (const listener of this.#listeners) listener(capture);
  }
}

function captureBytes(capture: Capture): number {
  let bytes = capture.headerBytes + capture.decodedBytes;
  bytes += capture.request.kept + capture.response.kept;
  for (const message of capture.messages) bytes += message.data.length;
  return bytes;
}
