import { setFlagsFromString } from 'node:v8';
import { collectReadBuffers } from '../read-buffer-collector.js';

/**
 * Moving bytes, a Postern process allocates one 64 KiB buffer per socket read. A few are always in
 * flight when the young generation is collected, so they move to the old generation with their
 * 64 KiB, and V8's "soft limit" then schedules incremental marking of the whole heap again and again
 * (about one full collection per 15–30 MiB moved, each slowing every scavenge while it runs).
 * Without that task, marking starts once the old generation really reaches its limit — still
 * incremental, never a stop-the-world pause. Measured (docs/benchmarks.md): preflight TCP
 * 390 → 650–730 MB/s with half the CPU in relay, agent and client; small requests unchanged.
 *
 * V8 (11.x, Node 20) also counts external memory allocated since the last full collection
 * against the old generation's limit, and forces a scavenge only once 32 MiB of young array
 * buffers have piled up. Freed read buffers are subtracted when their sweep finishes; swept
 * concurrently, that is after the next limit check, so 32 MiB of dead buffers overran a small
 * heap's ~15 MiB of headroom and started a full marking at nearly every scavenge (30 per GiB
 * moved, 0.4 s of helper-thread CPU per GiB in the relay). Sweeping them in the scavenge itself
 * keeps the count true: preflight TCP 1–7 full collections per GiB, relay CPU ~1.3 → ~0.85 s/GiB.
 *
 * V8 13 (Node 24) pretenures objects whose allocation site saw many survivors: once a request's
 * objects have outlived a few young collections (a busy moment, a full collection), it allocates
 * them in the old generation from then on, where only a full collection frees them. Small
 * requests then cost relay and agent 30–40 % more CPU (relay 34–38 → 26–28 µs, agent 27–29 →
 * 19–22 µs a small GET); on Node 20 the flag changes nothing measurable.
 *
 * V8 13 (Node 24) also starts full collections as dead read buffers pile up between rare young
 * collections (the incremental-marking-task flag is read only at start-up there):
 * collectReadBuffers() runs young collections as the bytes go by instead. Preflight TCP went
 * from 550–800 to 1 000–1 120 MB/s and downloads from 560–745 to 1 000–1 200 MB/s.
 *
 * On V8 11 (Node 20) the flags above keep full collections rare, but without young collections of
 * its own a process first collects its read buffers after 32 MiB of them: its first large
 * transfer grows the C heap by that much, page by zeroed page (~9 000 page faults, about 0.15 s of
 * system time in each of relay, agent and client), and ran at 150–200 MB/s where later ones run
 * at 400–500 (TCP through `postern connect --listen`). A young collection every 8 MiB cuts that
 * first transfer's faults to ~2 600 (250–270 MB/s) and changed later ones by less than the noise; at
 * 4 MiB steps a faster single-process path lost 5–10 %, so V8 11 and 12 step by 8 MiB.
 *
 * The CLI sets these for its own process; the library leaves the embedding process's V8 alone.
 */
export function tuneGarbageCollector(): void {
  setFlagsFromString('--no-incremental-marking-task');
  setFlagsFromString('--no-concurrent-array-buffer-sweeping');
  setFlagsFromString('--no-allocation-site-pretenuring');
  collectReadBuffers(Number(process.versions.v8.split('.')[0]) >= 13 ? 4 << 20 : 8 << 20);
}
