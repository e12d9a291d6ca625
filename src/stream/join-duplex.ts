import type { Duplex } from 'node:stream';
import { forwardBytes } from './forward-bytes.js';
import { resetBehindEnd } from './reset-end.js';

/**
 * Joins two full-duplex streams (a visitor's socket and a session stream, a session stream and a
 * target's socket): bytes flow both ways with backpressure, an end on one side becomes an end (half-close)
 * on the other, and a failure or abort on either side destroys both — with the error, so a session
 * stream is reset with a non-zero code and its peer sees an abort, not a clean end. `onClose` runs
 * once, when both sides are gone.
 *
 * Each direction is a 'data' listener and a 'drain' listener rather than `pipe()`: pipe keeps ten
 * closures and their context per direction for as long as the join lives, which for idle
 * long-lived streams (WebSocket, TCP) was a good part of the relay's memory per stream.
 */
export function joinDuplex(a: Duplex, b: Duplex, onClose?: (error?: Error) => void): void {
  let failure: Error | undefined;
  let open = 2;
  const fail = (error: Error): void => {
    failure ??= error;
    a.destroy(failure);
    b.destroy(failure);
  };
  const closed = (side: Duplex) => (): void => {
    // A side that closes without having ended both ways was cut short: take the other one down too.
    if (!side.readableEnded || !side.writableFinished) fail(failure ?? new Error('the other side went away'));
    if (--open === 0) onClose?.(failure);
  };
  // A stream reset after its peer's end ended "cleanly"; pass that on as an abort, not a half-close.
  const ended = (from: Duplex, to: Duplex) => (): void => {
    const rstCode = resetBehindEnd(from);
    if (rstCode !== undefined) fail(new Error(`the stream was reset (code ${rstCode})`));
    else to.end();
  };
  a.once('end', ended(a, b));
  b.once('end', ended(b, a));
  a.on('error', fail);
  b.on('error', fail);
  a.once('close', closed(a));
  b.once('close', closed(b));
  forwardBytes(a, b);
  forwardBytes(b, a);
}
