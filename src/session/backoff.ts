export interface BackoffOptions {
  /** First delay cap, in ms. */
  initialMs: number;
  /** The cap never grows past this, in ms. */
  maxMs: number;
}

/**
 * Exponential backoff with full jitter: a uniform delay in [0, min(max, initial·2^attempt)], so a
 * relay restart does not bring every agent back at the same instant.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const cap = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}
