import type { Duplex } from 'node:stream';

/**
 * Reads exactly `size` bytes from the start of `stream` and leaves whatever follows them in the
 * stream's buffer for the next reader. Rejects when the stream ends or fails first, or after
 * `timeoutMs`; the stream is left paused, with no listener of this function's.
 */
export function readExactly(stream: Duplex, size: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const finish = (error: Error | undefined, bytes?: Buffer): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      stream.pause();
      if (error !== undefined) reject(error);
      else resolve(bytes as Buffer);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      have += chunk.length;
      if (have < size) return;
      const all = Buffer.concat(chunks, have);
      // Paused before the rest goes back, so nothing flows until the next reader is attached.
      stream.pause();
      if (have > size) stream.unshift(all.subarray(size));
      finish(undefined, all.subarray(0, size));
    };
    const onEnd = (): void => finish(new Error(`connection closed after ${have} of ${size} bytes`));
    const onError = (error: Error): void => finish(error);
    const timer = setTimeout(
      () => finish(new Error(`${have} of ${size} bytes arrived within ${timeoutMs} ms`)),
      timeoutMs,
    );
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', onError);
    stream.resume();
  });
}
