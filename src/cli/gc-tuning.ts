import { setFlagsFromString } from 'node:v8';

/**
 * Moving bytes, a Postern process allocates one 64 KiB buffer per socket read. A few are always in
 * flight when the young generation is collected, so they move to the old generation with their
 * 64 KiB, and V8's "soft limit" then schedules incremental marking of the whole heap again and again
 * (about one full collection per 15–30 MiB moved, each slowing every scavenge while it runs).
 * Without that task, marking starts once the old generation really reaches its limit — still
 * incremental, never a stop-the-world pause. Measured (docs/benchmarks.md): preflight TCP
 * 390 → 650–730 MB/s with half the CPU in relay, agent and client; small requests unchanged.
 * The CLI sets it for its own process; the library leaves the embedding process's V8 alone.
 */
export function tuneGarbageCollector(): void {
  setFlagsFromString('--no-incremental-marking-task');
}
