import type { Readable, Writable } from 'node:stream';
import { countRead } from '../read-buffer-collector.js';

/**
 * Moves `from`'s bytes to `to`, pausing `from` while `to` is full — the data path of `pipe()`
 * with one 'data' and one 'drain' listener instead of pipe's eight and their closures. Ends,
 * errors and closes are the caller's to handle. `onFirstFull` runs the first time `to` is full.
 */
export function forwardBytes(from: Readable, to: Writable, onFirstFull?: () => void): void {
  let waiting = false;
  let wasFull = false;
  const resume = (): void => {
    waiting = false;
    from.resume();
    // resume() lets data flow only on the next tick; move what is buffered now, as pipe() does.
    while (from.readableFlowing && !waiting && from.read() !== null);
  };
  const wait = (): void => {
    from.pause();
    if (waiting) return;
    waiting = true;
    to.once('drain', resume);
    if (!wasFull) {
      wasFull = true;
      onFirstFull?.();
    }
  };
  from.on('data', (chunk: Buffer) => {
    countRead(chunk.length);
    if (!to.write(chunk)) wait();
  });
  // Flow, unless the other side is already full (a stream paused before is resumed, as pipe does).
  if (to.writableNeedDrain) wait();
  else from.resume();
}
