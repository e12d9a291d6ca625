import type { Readable, Writable } from 'node:stream';
import { forwardBytes } from './forward-bytes.js';
import { resetBehindEnd } from './reset-end.js';

/**
 * Sends a body from `source` to `destination` with backpressure (a full destination pauses the
 * source until it drains). If the source stops before its end, or either side fails, both are
 * destroyed — a cut body is never passed on as a whole one. `onDone` runs once: with no argument
 * when the destination finished, with the error otherwise. `onFirstFull` runs the first time the
 * destination is full (for a stall watch that only full destinations need).
 *
 * stream.pipeline does the same but allocates an AbortController and a dozen listeners per call;
 * this runs for every request and response body, so it stays small. Its listeners are on(), not
 * once(), here and on the other per-request paths: 'end', 'finish' and 'close' come once per
 * stream anyway, and once() wraps each listener in two more objects and unlinks it again.
 */
export function forwardBody(
  source: Readable,
  destination: Writable,
  onDone?: (error?: Error) => void,
  onFirstFull?: () => void,
): void {
  let settled = false;
  let ended = false;
  const settle = (error?: Error): void => {
    if (settled) return;
    settled = true;
    onDone?.(error);
  };
  // Destroyed *with* the error, so a session stream is reset with INTERNAL_ERROR and the error
  // names the cause wherever it is logged.
  const fail = (error: Error): void => {
    source.destroy(error);
    destination.destroy(error);
    settle(error);
  };
  source.on('end', () => {
    const rstCode = resetBehindEnd(source);
    if (rstCode !== undefined) {
      fail(new Error(`the body was cut: its stream was reset (code ${rstCode})`));
      return;
    }
    ended = true;
    destination.end();
  });
  source.on('error', fail);
  source.on('close', () => {
    if (!ended) fail(new Error('the body stopped before its end'));
  });
  destination.on('error', fail);
  destination.on('finish', () => settle());
  destination.on('close', () => {
    if (!destination.writableFinished) fail(new Error('the receiver went away'));
  });
  // Not pipe(): its eight listeners per body were a visible share of a small request's cost.
  forwardBytes(source, destination, onFirstFull);
}
