import type { Duplex } from 'node:stream';

/**
 * Resets a session stream so the peer sees it as failed, never as finished: destroying it with an
 * error sends RST_STREAM with INTERNAL_ERROR (src/mux/mux-stream.ts).
 */
export function resetStream(stream: Duplex, reason: string): void {
  if (stream.destroyed) return;
  stream.destroy(new Error(reason));
}
