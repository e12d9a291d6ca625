/** A token bucket: `ratePerSecond` tokens refill continuously up to `burst`. */
export class TokenBucket {
  readonly ratePerSecond: number;
  readonly burst: number;
  #tokens: number;
  #updatedAt: number;

  constructor(ratePerSecond: number, burst: number, now: number) {
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
    this.#tokens = burst;
    this.#updatedAt = now;
  }

  /** Takes one token; returns 0 when allowed, or the milliseconds until a token is available. */
  take(now: number): number {
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#updatedAt) / 1000) * this.ratePerSecond);
    this.#updatedAt = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.#tokens) / this.ratePerSecond) * 1000);
  }

  /** True when the bucket has refilled completely, so forgetting it changes nothing. */
  isFull(now: number): boolean {
    return this.#tokens + ((now - this.#updatedAt) / 1000) * this.ratePerSecond >= this.burst;
  }
}

/**
 * One bucket per key (an address prefix, a tunnel), at most `maxKeys` of them: full buckets are
 * forgotten first; when every bucket is in use the one used longest ago goes. Refusing new keys
 * instead would let one party with many addresses lock everybody else out.
 */
export class KeyedTokenBuckets {
  readonly #buckets = new Map<string, TokenBucket>();
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly maxKeys: number;

  constructor(ratePerSecond: number, burst: number, maxKeys: number) {
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
    this.maxKeys = maxKeys;
  }

  take(key: string, now: number): number {
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.maxKeys) this.#forgetFull(now);
      if (this.#buckets.size >= this.maxKeys)
        this.#buckets.delete(this.#buckets.keys().next().value as string);
      bucket = new TokenBucket(this.ratePerSecond, this.burst, now);
    } else {
      this.#buckets.delete(key);
    }
    // Re-inserted on every use, so the Map's order is the order of last use.
    this.#buckets.set(key, bucket);
    return bucket.take(now);
  }

  #forgetFull(now: number): void {
    for (const [key, bucket] of this.#buckets) if (bucket.isFull(now)) this.#buckets.delete(key);
  }
}

/** A per-address limiter remembers this many visitor or agent addresses at most. */
const MAX_TRACKED_ADDRESSES = 100_000;

/** `perMinute` attempts per minute per address, as a burst of as many. */
export function perAddressPerMinute(perMinute: number): KeyedTokenBuckets {
  return new KeyedTokenBuckets(perMinute / 60, perMinute, MAX_TRACKED_ADDRESSES);
}
