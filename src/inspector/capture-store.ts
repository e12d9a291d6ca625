import type {
  ExchangeKind,
  ExchangeRecord,
  ObservedExchange,
  TrafficObserver,
} from '../agent/traffic-observer.js';
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

export const DEFAULT_CAPTURE_LIMITS: CaptureLimits = {
  entries: 500,
  bodyBytes: 1 << 20,
  messages: 1_000,
  messageBytes: 64 << 10,
  totalBytes: 64 << 20,
};

/** A body as far as it was kept. */
export class CapturedBody {
  size = 0;
  kept = 0;
  parts: Buffer[] = [];

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
}

/** One exchange the agent forwarded: an HTTP request, a WebSocket connection or a TCP connection. */
export interface Capture {
  id: string;
  kind: ExchangeKind;
  service: string;
  visitor: string | undefined;
  replayOf: string | undefined;
  startedAt: number;
  /** Set when it ended. */
  durationMs: number | undefined;
  state: 'open' | 'done' | 'failed';
  error: string | undefined;
  method: string;
  path: string;
  requestHeaders: [string, string][];
  status: number | undefined;
  responseHeaders: [string, string][];
  /** HTTP bodies; for WebSocket and TCP only the byte counts (size) are used. */
  request: CapturedBody;
  response: CapturedBody;
  messages: CapturedMessage[];
  messageCount: number;
  /** Why the WebSocket frames could no longer be read, if they could not. */
  framingNote: string | undefined;
}

/**
 * Keeps the last exchanges the agent forwarded, within CaptureLimits, and says when one changes.
 * It is the agent's TrafficObserver: a record writes into its capture until the capture is evicted,
 * after which it writes nowhere.
 */
export class CaptureStore implements TrafficObserver {
  readonly limits: CaptureLimits;
  readonly #entries = new Map<string, Capture>();
  readonly #listeners = new Set<(capture: Capture) => void>();
  #sequence = 0;
  #bytes = 0;

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
    const capture: Capture = {
      id: String(++this.#sequence),
      kind: exchange.kind,
      service: exchange.service,
      visitor: exchange.visitor,
      replayOf: exchange.replayOf,
      startedAt: Date.now(),
      durationMs: undefined,
      state: 'open',
      error: undefined,
      method: exchange.method,
      path: exchange.path,
      requestHeaders: exchange.headers,
      status: undefined,
      responseHeaders: [],
      request: new CapturedBody(),
      response: new CapturedBody(),
      messages: [],
      messageCount: 0,
      framingNote: undefined,
    };
    this.#entries.set(capture.id, capture);
    this.#account(capture, headerBytes(exchange.headers));
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
      body.parts.push(part);
      body.kept += part.length;
      this.#account(capture, part.length);
    };
    const frames =
      capture.kind === 'websocket'
        ? (['in', 'out'] as const).map(
            (direction) =>
              new WebSocketFrameReader(this.limits.messageBytes, (message) =>
                this.#message(capture, { ...message, direction, at: performance.now() - started }),
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
        capture.responseHeaders = headers;
        upgraded = status === 101;
        this.#account(capture, headerBytes(headers));
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

  #message(capture: Capture, message: CapturedMessage): void {
    if (!this.#entries.has(capture.id)) return;
    capture.messageCount++;
    capture.messages.push(message);
    this.#account(capture, message.data.length);
    while (capture.messages.length > this.limits.messages) {
      const dropped = capture.messages.shift() as CapturedMessage;
      this.#account(capture, -dropped.data.length);
    }
    this.#changed(capture);
  }

  #account(capture: Capture, bytes: number): void {
    if (!this.#entries.has(capture.id)) return;
    this.#bytes += bytes;
    // Over budget: the oldest exchanges go, never the one being written to.
    while (this.#bytes > this.limits.totalBytes && this.#entries.size > 1) {
      if (this.#entries.keys().next().value === capture.id) break;
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
    if (this.#bytes + wanted > this.limits.totalBytes) {
      for (const capture of this.#entries.values()) {
        if (this.#bytes + wanted <= this.limits.totalBytes) break;
        if (capture.state === 'open' || capture.id === writer) continue;
        this.#entries.delete(capture.id);
        this.#bytes -= captureBytes(capture);
      }
    }
    return Math.max(0, Math.min(wanted, this.limits.totalBytes - this.#bytes));
  }

  #evictOldest(): void {
    const oldest = this.#entries.values().next().value;
    if (oldest === undefined) return;
    this.#entries.delete(oldest.id);
    this.#bytes -= captureBytes(oldest);
  }

  #changed(capture: Capture): void {
    for (const listener of this.#listeners) listener(capture);
  }
}

function headerBytes(headers: [string, string][]): number {
  let bytes = 0;
  for (const [name, value] of headers) bytes += name.length + value.length;
  return bytes;
}

function captureBytes(capture: Capture): number {
  let bytes = headerBytes(capture.requestHeaders) + headerBytes(capture.responseHeaders);
  bytes += capture.request.kept + capture.response.kept;
  for (const message of capture.messages) bytes += message.data.length;
  return bytes;
}
