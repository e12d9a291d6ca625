import type { Http2Session } from 'node:http2';

export interface KeepaliveOptions {
  /** Send a PING this often. */
  intervalMs: number;
  /** Close the session when a PING is not answered within this time. */
  timeoutMs: number;
}

/**
 * Pings the peer every `intervalMs`; a PING unanswered after `timeoutMs` means the path is dead
 * (a half-open TCP connection never says so by itself), so `onDead` runs and the caller destroys
 * the session. Returns a function that stops the timers.
 */
export function startKeepalive(
  session: Http2Session,
  options: KeepaliveOptions,
  onDead: (reason: string) => void,
): () => void {
  let deadline: NodeJS.Timeout | undefined;
  const interval = setInterval(() => {
    if (deadline !== undefined || session.destroyed || session.closed) return;
    deadline = setTimeout(() => onDead(`no PING answer within ${options.timeoutMs} ms`), options.timeoutMs);
    deadline.unref();
    const sent = session.ping((error) => {
      clearTimeout(deadline);
      deadline = undefined;
      if (error && !session.destroyed) onDead(`PING failed: ${error.message}`);
    });
    if (!sent) {
      clearTimeout(deadline);
      deadline = undefined;
    }
  }, options.intervalMs);
  interval.unref();
  const stop = (): void => {
    clearInterval(interval);
    clearTimeout(deadline);
    deadline = undefined;
  };
  session.once('close', stop);
  return stop;
}
