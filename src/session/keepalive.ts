import type { Http2Session } from 'node:http2';

export interface KeepaliveOptions {
  /** Send a PING this often. */
  intervalMs: number;
  /** Close the session when nothing at all was heard from the peer for this long. */
  timeoutMs: number;
}

/**
 * Pings the peer every `intervalMs`, whether or not earlier PINGs were answered yet, and runs
 * `onDead` (the caller destroys the session) once nothing at all — no PING answer, no PING, no byte —
 * has come from the peer for `timeoutMs`: a half-open TCP connection never says so by itself. Any
 * byte counts, because on a slow, busy link a PING answer queues behind megabytes of data while
 * the peer's own PINGs and WINDOW_UPDATEs still arrive. Found dead within timeoutMs plus a quarter
 * of it. Returns a function that stops the timers.
 */
export function startKeepalive(
  session: Http2Session,
  options: KeepaliveOptions,
  onDead: (reason: string) => void,
): () => void {
  const bytesRead = (): number => (session.destroyed ? 0 : (session.socket?.bytesRead ?? 0));
  let lastHeardAt = Date.now();
  let lastBytesRead = bytesRead();
  let lastPingAt = Date.now();
  const tickMs = Math.max(1, Math.min(options.intervalMs, Math.floor(options.timeoutMs / 4)));
  const timer = setInterval(() => {
    if (session.destroyed || session.closed) return;
    const now = Date.now();
    const read = bytesRead();
    if (read !== lastBytesRead) {
      lastBytesRead = read;
      lastHeardAt = now;
    }
    if (now - lastHeardAt >= options.timeoutMs) {
      stop();
      onDead(`nothing heard from the peer for ${options.timeoutMs} ms`);
      return;
    }
    if (now - lastPingAt >= options.intervalMs) {
      lastPingAt = now;
      // false when too many PINGs are unanswered (maxOutstandingPings): the next tick tries again.
      session.ping((error) => {
        if (!error) lastHeardAt = Date.now();
      });
    }
  }, tickMs);
  timer.unref();
  const stop = (): void => clearInterval(timer);
  session.once('close', stop);
  return stop;
}
