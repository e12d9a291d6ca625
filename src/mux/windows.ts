import { OptionError } from '../errors.js';

/** The stream receive window a user may choose, bytes: at least one 64 KiB read, at most 1 GiB. */
export const MIN_STREAM_WINDOW = 64 * 1024;
export const MAX_STREAM_WINDOW = 1 << 30;

/**
 * Checks a chosen stream window and gives the session window to go with it. A stream's window is
 * what one transfer may have in flight: on a path with round-trip time R a stream moves at most
 * window / R (1 MiB over 50 ms: 20 MB/s). The session window is credited as soon as frames are
 * parsed, so it only has to cover what is in transit; four stream windows and at least 16 MiB.
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
  return { stream: streamWindowBytes, session: Math.max(16 << 20, 4 * streamWindowBytes) };
}
