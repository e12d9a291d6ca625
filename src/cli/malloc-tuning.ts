/**
 * glibc's malloc hands memory back to the kernel whenever more than M_TRIM_THRESHOLD (128 KiB by
 * default) is free at the top of its heap. Moving bytes, a Postern process reads into a fresh
 * 64 KiB buffer per socket read and frees a scavenge's worth of them (~32 MiB) at once, so the
 * heap shrank and grew again all the time: the relay took ~260 000 page faults per GiB of an HTTP
 * download (each a zeroed page) where a `pipe()` hop takes ~40 000.
 *
 * glibc raises both thresholds by itself when a block it had mapped with mmap is freed: the mmap
 * threshold to that block's size, the trim threshold to twice it (mallopt(3), "dynamic mmap
 * threshold"; blocks up to 32 MiB). So one 24 MiB buffer, allocated and never touched (it costs no
 * resident memory), does it when the garbage collector frees it: the process then keeps up to
 * 48 MiB of freed heap for reuse. (16 MiB, a 32 MiB trim threshold, still let one agent run in
 * three trim on every scavenge.) Measured (docs/benchmarks.md): the relay's page faults per GiB
 * of HTTP download 260 000 → ~200, single-stream download 650–720 → 930–1 000 MB/s, and up to
 * ~48 MiB more resident memory after a transfer. An operator who prefers the memory back sets
 * MALLOC_TRIM_THRESHOLD_ (e.g. to 131072): glibc then keeps that fixed and this has no effect.
 * Other C libraries (musl, macOS) ignore it.
 */
export function raiseMallocTrimThreshold(): void {
  Buffer.allocUnsafeSlow(24 * 1024 * 1024);
}
