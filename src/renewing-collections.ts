/**
 * Map and Set for long-lived owners whose entries come and go with the traffic (a session's streams,
 * watched writes, the inspector's captures). Each rebuilds its table after max(64, size)
 * insertions: at most one entry copied per insertion.
 *
 * Why: V8 allocates a Map's or Set's next hash table in the old generation once the current one is
 * there (it got there by outliving two young-generation collections, or by any full collection), and
 * a table it replaces keeps its entries until the next full collection. Young-generation collections
 * treat those dead tables as live, so every stream that passed through them (with all it reaches:
 * request, response, closures) is moved to the old generation. Measured under a small-GET load: 2 MB
 * moved per young collection instead of 0.05 MB, a full collection every second, and relay and
 * agent spending 40–60 % more CPU per request (docs/benchmarks.md, "Long-lived tables and the
 * garbage collector"). A fresh table is young; rebuilt well within one young collection's worth of
 * traffic (about 300 small requests), it never gets old while traffic flows.
 */
const MIN_RENEW_INSERTIONS = 64;

export class RenewingMap<K, V> implements Iterable<[K, V]> {
  #map = new Map<K, V>();
  #insertions = 0;

  get size(): number {
    return this.#map.size;
  }

  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  set(key: K, value: V): this {
    if (++this.#insertions >= MIN_RENEW_INSERTIONS && this.#insertions >= this.#map.size) {
      this.#insertions = 0;
      this.#map = new Map(this.#map);
    }
    this.#map.set(key, value);
    return this;
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map = new Map();
    this.#insertions = 0;
  }

  keys(): MapIterator<K> {
    return this.#map.keys();
  }

  values(): MapIterator<V> {
    return this.#map.values();
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.#map.entries();
  }
}

export class RenewingSet<T> implements Iterable<T> {
  #set = new Set<T>();
  #insertions = 0;

  get size(): number {
    return this.#set.size;
  }

  has(value: T): boolean {
    return this.#set.has(value);
  }

  add(value: T): this {
    if (++this.#insertions >= MIN_RENEW_INSERTIONS && this.#insertions >= this.#set.size) {
      this.#insertions = 0;
      this.#set = new Set(this.#set);
    }
    this.#set.add(value);
    return this;
  }

  delete(value: T): boolean {
    return this.#set.delete(value);
  }

  clear(): void {
    this.#set = new Set();
    this.#insertions = 0;
  }

  values(): SetIterator<T> {
    return this.#set.values();
  }

  [Symbol.iterator](): SetIterator<T> {
    return this.#set.values();
  }
}
