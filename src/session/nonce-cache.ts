/**
 * Remembers registration nonces for as long as their timestamp could still be accepted: a second
 * use of a registration is refused at once. Defence in depth only — what stops a recorded
 * registration is the proof of possession (possession-proof.ts) — so when full the oldest nonce
 * is forgotten, rather than refusing every registration (which would let anyone lock keys out).
 */
export class NonceCache {
  readonly #expiries = new Map<string, number>();
  readonly #maxEntries: number;
  readonly #ttlMs: number;

  constructor(options: { maxEntries: number; ttlMs: number }) {
    this.#maxEntries = options.maxEntries;
    this.#ttlMs = options.ttlMs;
  }

  /** 'added' the first time, 'seen' for a replay. */
  add(nonce: string, now: number): 'added' | 'seen' {
    this.#sweep(now);
    if (this.#expiries.has(nonce)) return 'seen';
    if (this.#expiries.size >= this.#maxEntries)
      this.#expiries.delete(this.#expiries.keys().next().value as string);
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
