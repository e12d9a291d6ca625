/** What keepalive needs of a session (a MuxSession). */
export interface PingableSession {
  readonly destroyed: boolean;
  /** Bytes read from the connection so far. */
  readonly bytesRead: number;
  /** False when too many PINGs are unanswered; the callback runs on the answer. */
  ping(callback: (error: Error | null) => void): boolean;
  once(event: 'close', listener: () => void): unknown;
}

export interface KeepaliveOptions {
  /** Send a PING this often. */
  intervalMs: number;
  /** Close the session when nothing at all was heard from the peer for this long. */
  timeoutMs: number;
  /** Close it when a PING stays unanswered this long, bytes or not. Default: 30 s or 3 × timeoutMs. */
  unansweredPingMs?: number;
}

/** A PING unanswered this long kills the session even while bytes arrive (at least). */
const UNANSWERED_PING_MS = 30_000;

/**
 * Pings the peer every `intervalMs`, whether or not earlier PINGs were answered yet, and runs
 * `onDead` (the caller destroys the session) once nothing at all — no PING answer, no PING, no byte —
 * has come from the peer for `timeoutMs`: a half-open TCP connection never says so by itself. Any
 * byte counts, because on a slow, busy link a PING answer queues behind megabytes of data while
 * the peer's own PINGs and WINDOW_UPDATEs still arrive. Found dead within timeoutMs plus a quarter
 * of it. Bytes alone do not keep a session alive for ever, though: a peer that keeps sending
 * frames but never answers a PING for UNANSWERED_PING_MS (or three timeouts, if longer) is dead
 * too. Returns a function that stops the timers.
 */
export function startKeepalive(
  session: PingableSession,
  options: KeepaliveOptions,
  onDead: (reason: string) => void,
): () => void {
  let lastHeardAt = Date.now();
  let lastBytesRead = session.bytesRead;
  let lastPingAt = Date.now();
  /** When the oldest PING still unanswered was sent; undefined when all were answered. */
  let unansweredSince: number | undefined;
  const unansweredLimitMs = options.unansweredPingMs ?? Math.max(UNANSWERED_PING_MS, 3 * options.timeoutMs);
  const tickMs = Math.max(1, Math.min(options.intervalMs, Math.floor(options.timeoutMs / 4)));
  const timer = setInterval(() => {
    // A draining session is checked too: its peer may die while the last streams finish.
    if (session.destroyed) return;
    const now = Date.now();
    const read = session.bytesRead;
    if (read !== lastBytesRead) {
      lastBytesRead = read;
      lastHeardAt = now;
    }
    if (now - lastHeardAt >= options.timeoutMs) {
      stop();
      onDead(`nothing heard from the peer for ${options.timeoutMs} ms`);
      return;
    }
    if (unansweredSince !== undefined && now - unansweredSince >= unansweredLimitMs) {
      stop();
      onDead(`no PING answered for ${unansweredLimitMs} ms while bytes still arrive`);
      return;
    }
    if (now - lastPingAt >= options.intervalMs) {
      lastPingAt = now;
      const sentAt = now;
      const sent = session.ping((error) => {
        if (error) return;
        lastHeardAt = Date.now();
        // An answer to this PING answers every older one too (the peer answers in order).
        if (unansweredSince !== undefined && unansweredSince <= sentAt) unansweredSince = undefined;
      });
      if (sent) unansweredSince ??= sentAt;
    }
  }, tickMs);
  timer.unref();
  const stop = (): void => clearInterval(timer);
  session.once('close', stop);
  return stop;
}
