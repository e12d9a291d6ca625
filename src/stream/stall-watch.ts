import type { Writable } from 'node:stream';
import { RenewingSet } from '../renewing-collections.js';

/** Reader went quiet for too long: the error a stalled destination is destroyed with. */
export class StallError extends Error {
  override name = 'StallError';
}

interface Watched {
  stream: Writable;
  /** When the stream was first seen full and not drained since; undefined while it takes bytes. */
  fullSince: number | undefined;
  what: string;
}

/**
 * Cuts destinations whose reader stopped taking bytes: a stream that has had writes waiting
 * (`writableNeedDrain`) with no 'drain' for `timeoutMs` is destroyed with a StallError, which the
 * body and byte-stream joins pass on as a cut. Idle streams (nothing to write: an idle WebSocket,
 * an SSE stream between events) are never cut, only stuck ones — nginx's `send_timeout`.
 *
 * One sweep timer for all watched streams, not a timer per write: checking every timeoutMs/4
 * bounds the cut to between timeoutMs and 1.25 × timeoutMs after the last byte was taken.
 */
export class StallWatch {
  readonly #timeoutMs: number;
  readonly #watched = new RenewingSet<Watched>();
  #timer: NodeJS.Timeout | undefined;

  /** `timeoutMs` 0 turns the watch off. */
  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** Watches `stream` until it closes; `what` names its reader in the error ("the visitor"). */
  watch(stream: Writable, what: string): void {
    if (this.#timeoutMs <= 0 || stream.destroyed) return;
    const entry: Watched = { stream, fullSince: undefined, what };
    this.#watched.add(entry);
    stream.on('drain', () => {
      entry.fullSince = undefined;
    });
    stream.once('close', () => {
      this.#watched.delete(entry);
      if (this.#watched.size === 0) this.#stopTimer();
    });
    this.#timer ??= setInterval(() => this.#sweep(), Math.max(1, Math.floor(this.#timeoutMs / 4))).unref();
  }

  /** Streams being watched (for tests and stats). */
  get size(): number {
    return this.#watched.size;
  }

  close(): void {
    this.#stopTimer();
    this.#watched.clear();
  }

  #sweep(): void {
    const now = Date.now();
    for (const entry of this.#watched) {
      if (!entry.stream.writableNeedDrain) {
        entry.fullSince = undefined;
        continue;
      }
      entry.fullSince ??= now;
      if (now - entry.fullSince >= this.#timeoutMs) {
        this.#watched.delete(entry);
        entry.stream.destroy(
          new StallError(`${entry.what} took no bytes for ${this.#timeoutMs} ms (stall timeout)`),
        );
      }
    }
    if (this.#watched.size === 0) this.#stopTimer();
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
