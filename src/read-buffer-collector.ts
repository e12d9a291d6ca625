import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Every socket read hands JavaScript a fresh buffer allocated outside V8's heap; once forwarded it
 * is garbage, but its memory comes back only when the young generation is collected. A byte
 * stream allocates almost nothing else on V8's heap, so young collections come rarely, and V8
 * instead starts a full collection each time external memory has grown by its soft limit. On
 * V8 13 (Node 24) that was 30–38 full collections per GiB moved and about half the throughput of
 * Node 20 (docs/benchmarks.md). A young collection every 4 MiB of dead read buffers frees them
 * for a fraction of the cost.
 *
 * The byte paths call countRead() with what they read; it does nothing until a process opts in
 * with collectReadBuffers() (the CLI does; a library user's process is left alone).
 */

let unchecked = 0;
let checkEvery = Number.POSITIVE_INFINITY;
let check: (() => void) | undefined;

/** `bytes` were read from a socket into a buffer of their own. */
export function countRead(bytes: number): void {
  unchecked += bytes;
  if (unchecked < checkEvery) return;
  unchecked = 0;
  check?.();
}

/**
 * The default step. V8 13 started a full collection after ~16 MiB of external growth; at 8 MiB
 * some still came (8–42 per 2 GiB), at 4 MiB 3 in 2 GiB. A young collection of a heap this small
 * takes well under a millisecond.
 */
const COLLECT_AFTER_BYTES = 4 << 20;
/** Reading the heap's statistics costs a few microseconds: not on every read. */
const CHECK_EVERY_BYTES = 1 << 20;

/**
 * From now on, runs a young collection whenever external memory has grown by `stepBytes` since
 * the last one, checked every 1 MiB read. Memory that stays alive (buffered streams, captures)
 * does not trigger it twice: the mark moves to what the collection left.
 */
export function collectReadBuffers(stepBytes = COLLECT_AFTER_BYTES): void {
  if (check !== undefined) return;
  // A flag set now exposes gc() to contexts created from now on, not to this one's globals.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (options: { type: 'minor' }) => void;
  let mark = getHeapStatistics().external_memory;
  let pending = false;
  const collect = (): void => {
    pending = false;
    gc({ type: 'minor' });
    mark = getHeapStatistics().external_memory;
  };
  check = () => {
    const external = getHeapStatistics().external_memory;
    if (external < mark) mark = external;
    else if (external - mark >= stepBytes && !pending) {
      // Not here, inside a read's callback: the buffers in hand would survive and be promoted,
      // and only a full collection frees promoted ones. After this turn's I/O they are dead.
      pending = true;
      setImmediate(collect);
    }
  };
  checkEvery = CHECK_EVERY_BYTES;
}
