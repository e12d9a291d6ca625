import { scrypt, timingSafeEqual } from 'node:crypto';
import type { ScryptHash } from '../session/access.js';

/** Password checks that may run at once; the rest of libuv's pool stays free for DNS and files. */
const CONCURRENT_CHECKS = 2;

/**
 * Checks passwords against scrypt hashes with bounded work: at most two hashes run at once (each
 * ≈ 50 ms and up to 32 MiB at the costs agents use) and at most `maxQueued` wait; past that the
 * caller is told the relay is busy rather than queueing without end.
 */
export class PasswordCheck {
  readonly #maxQueued: number;
  readonly #queue: (() => void)[] = [];
  #running = 0;

  constructor(maxQueued: number) {
    this.#maxQueued = maxQueued;
  }

  /** True when `password` matches; 'busy' when too many checks already wait. */
  async verify(password: string, expected: ScryptHash): Promise<boolean | 'busy'> {
    if (this.#running < CONCURRENT_CHECKS) {
      this.#running++;
    } else {
      if (this.#queue.length >= this.#maxQueued) return 'busy';
      // A finishing check hands its slot straight to the next waiter.
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    }
    try {
      const actual = await new Promise<Buffer>((resolve, reject) =>
        scrypt(
          password.normalize('NFC'),
          expected.salt,
          expected.hash.length,
          { N: 2 ** expected.logN, r: expected.r, p: expected.p, maxmem: 64 << 20 },
          (error, key) => (error ? reject(error) : resolve(key)),
        ),
      );
      return timingSafeEqual(actual, expected.hash);
    } finally {
      const next = this.#queue.shift();
      if (next !== undefined) next();
      else this.#running--;
    }
  }
}
