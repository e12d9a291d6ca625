import { OptionError } from '../errors.js';

/** The stream receive window a user may choose, bytes: at least one 64 KiB read, at most 1 GiB. */
export const MIN_STREAM_WINDOW = 64 * 1024;
export const MAX_STREAM_WINDOW = 1 << 30;

/** The largest a stream's receive window grows to by itself (doubling from the chosen window). */
export const GROWN_WINDOW_MAX = 8 << 20;
/** What all grown windows of one process may add together to what their streams can buffer. */
export const WINDOW_GROWTH_BUDGET = 64 << 20;

/**
 * Checks a chosen stream window and gives the session window to go with it. A stream's window is
 * what one transfer may have in flight: on a path with round-trip time R a stream moves at most
 * window / R (1 MiB over 50 ms: 20 MB/s). The session window is credited as soon as frames are
 * parsed, so it only has to cover what is in transit and costs no memory of its own: four stream
 * windows, and at least four windows grown to the most (32 MiB): at 16 MiB a third stream that grew
 * would have gained nothing.
 */
export function sessionWindows(streamWindowBytes: number): { stream: number; session: number } {
  if (
    !Number.isInteger(streamWindowBytes) ||
    streamWindowBytes < MIN_STREAM_WINDOW ||
    streamWindowBytes > MAX_STREAM_WINDOW
  ) {
    throw new OptionError(
      `stream window must be a whole number of bytes from ${MIN_STREAM_WINDOW} to ${MAX_STREAM_WINDOW} (got ${streamWindowBytes})`,
    );
  }
  return { stream: streamWindowBytes, session: Math.max(4 * GROWN_WINDOW_MAX, 4 * streamWindowBytes) };
}

/**
 * The bytes a process lets its streams' receive windows grow by, shared by all its sessions. A
 * window that grew is kept until its stream closes (credit given cannot be taken back), so the
 * budget is what bounds the memory that growth can cost: once it is spent, new streams keep the
 * window they started with.
 */
export class WindowGrowth {
  readonly maxWindow: number;
  #available: number;

  constructor(maxWindow = GROWN_WINDOW_MAX, budget = WINDOW_GROWTH_BUDGET) {
    this.maxWindow = maxWindow;
    this.#available = budget;
  }

  get available(): number {
    return this.#available;
  }

  /** Takes up to `bytes` from the budget; returns how many it got. */
  take(bytes: number): number {
    const granted = Math.max(0, Math.min(bytes, this.#available));
    this.#available -= granted;
    return granted;
  }

  give(bytes: number): void {
    this.#available += bytes;
  }
}

/** The budget every session of this process shares unless it is given its own. */
export const processWindowGrowth = new WindowGrowth();
