import type { Http2Stream } from 'node:http2';

/**
 * Resets an h2 stream so the peer sees it as failed, never as finished. Two traps decide the form:
 * - `stream.close(code)` on a stream that still has piped writes queued sent Node 20's nghttp2
 *   binding into an endless SendPendingData loop (a std::bad_alloc crash) when a visitor's upload
 *   was cut at the body limit; `destroy(error)` takes a path without it.
 * - A reset with code NO_ERROR makes Node's receiving side end the stream cleanly (`push(null)`),
 *   which would pass a cut transfer off as whole; `destroy(error)` always resets with INTERNAL_ERROR.
 */
export function resetStream(stream: Http2Stream, reason: string): void {
  if (stream.destroyed) return;
  stream.destroy(new Error(reason));
}
