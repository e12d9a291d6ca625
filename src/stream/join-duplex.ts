import type { Duplex } from 'node:stream';
import { resetBehindEnd } from './reset-end.js';

/**
 * Joins two full-duplex streams (a visitor's socket and an h2 stream, an h2 stream and a target's
 * socket): bytes flow both ways with backpressure, an end on one side becomes an end (half-close)
 * on the other, and a failure or abort on either side destroys both — with the error, so an h2
 * stream is reset with a non-zero code and its peer sees an abort, not a clean end. `onClose` runs
 * once, when both sides are gone.
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
  // An HTTP/2 stream whose session died ends "cleanly"; pass that on as an abort, not a half-close.
  const checkEnd = (side: Duplex) => (): void => {
    const rstCode = resetBehindEnd(side);
    if (rstCode !== undefined) fail(new Error(`the stream was reset (code ${rstCode})`));
  };
  a.once('end', checkEnd(a));
  b.once('end', checkEnd(b));
  a.on('error', fail);
  b.on('error', fail);
  a.once('close', closed(a));
  b.once('close', closed(b));
  a.pipe(b);
  b.pipe(a);
}
