/**
 * Remembers registration nonces for as long as their timestamp could still be accepted, so a
 * captured registration cannot be replayed. Bounded: when full of unexpired nonces it refuses new
 * ones (the caller answers 503) rather than forgetting one that could then be replayed.
 */
export class NonceCache {
  readonly #expiries = new Map<string, number>();
  readonly #maxEntries: number;
  readonly #ttlMs: number;

  constructor(options: { maxEntries: number; ttlMs: number }) {
    this.#maxEntries = options.maxEntries;
    this.#ttlMs = options.ttlMs;
  }

  /** 'added' the first time, 'seen' for a replay, 'full' when the cache cannot take more. */
  add(nonce: string, now: number): 'added' | 'seen' | 'full' {
    this.#sweep(now);
    if (this.#expiries.has(nonce)) return 'seen';
    if (this.#expiries.size >= this.#maxEntries) return 'full';
    this.#expiries.set(nonce, now + this.#ttlMs);
    return 'added';
  }

  get size(): number {
    return this.#expiries.size;
  }

  // Entries are inserted with a constant TTL, so Map order is expiry order: stop at the first live one.
  #sweep(now: number): void {
    for (const [nonce, expiry] of this.#expiries) {
      if (expiry > now) return;
      this.#expiries.delete(nonce);
    }
  }
}
