import { PosternError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { SERVICE_KINDS, type ServiceKind } from '../../session/protocol.js';
import { createRedisClient, type RedisClient } from './redis-client.js';

/** Lease figures (docs/cluster.md): renewed every 10 s, gone 30 s after the last renewal. */
export const LEASE_RENEW_MS = 10_000;
export const LEASE_TTL_MS = 30_000;
/** A located tunnel is trusted this long unless pub/sub says it changed. */
const LOCATION_CACHE_MS = 5_000;
/** "Held by no other node" is trusted this long (a flood of unknown labels asks Redis once a second each). */
const ABSENCE_CACHE_MS = 1_000;
/**
 * After Redis comes back (perhaps empty), nodes write their leases again within moments; until
 * this long has passed, a label with no lease is "not known yet" (503, retry) rather than absent (404).
 */
const SETTLE_MS = 3_000;
/** Located tunnels cached at most (the cache is dropped whole past it). */
const LOCATION_CACHE_ENTRIES = 10_000;

const CHANNEL = 'postern:tunnel-changes';
/** Announces `{label, setup}`: a registration with --replace took the service over. */
const REPLACE_CHANNEL = 'postern:tunnel-replaced';
/** The set of node ids (each also has a record with a TTL, which says whether it is alive). */
const NODES_KEY = 'postern:nodes';

/**
 * A token bucket kept in Redis, with Redis's clock (nodes' clocks may differ): the same rule as
 * the relay's own TokenBucket, shared by every node. Returns 0 when a token was taken, else the
 * milliseconds until one will be there.
 */
const TAKE_TOKEN = `
local rate = tonumber(ARGV[1]) / 1000
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return wait
`;

export interface NodeRecord {
  id: string;
  /** Where other nodes dial this one: tcp://host:port. */
  advertise: string;
}

/** Where a tunnel is held: its kind and name, and the nodes holding it now. */
export interface TunnelLocation {
  label: string;
  kind: ServiceKind;
  name: string;
  nodes: NodeRecord[];
  /** The service setups (registration.ts serviceSetup()) those nodes serve it with. */
  setups?: string[];
}

/**
 * The cluster's shared state in Redis (docs/cluster.md): node records, tunnel leases, registration
 * nonces. Every call fails fast while Redis is unreachable (no queue of commands waiting for it),
 * so a visitor gets a 503 at once rather than a hang; leases are asserted again when it returns.
 */
export class ClusterDirectory {
  readonly node: NodeRecord;
  readonly #redis: RedisClient;
  readonly #subscriber: RedisClient;
  readonly #log: Logger;
  readonly #cache = new Map<string, { location: TunnelLocation | undefined; at: number }>();
  /** The leases this node holds: label → kind, name and setup. */
  readonly #held = new Map<string, { kind: ServiceKind; name: string; setup: string }>();
  /** Told when a registration on another node took a service over (`--replace`). */
  onReplaced: (label: string, setup: string) => void = () => {};
  #timer: NodeJS.Timeout | undefined;
  #reachable = false;
  #closed = false;
  #settlingUntil = 0;
  #knownNodes: NodeRecord[] = [];
  #nodesReadAt = 0;

  constructor(url: string, node: NodeRecord, log: Logger) {
    this.node = node;
    this.#log = log;
    this.#redis = createRedisClient(url, { queueWhileOffline: false });
    // The subscription is set up once and renewed by the client after each reconnect.
    this.#subscriber = createRedisClient(url, { queueWhileOffline: true });
    // One line when Redis goes away and one when it is back, not one per failed command.
    this.#redis.on('error', () => {});
    this.#subscriber.on('error', () => {});
    this.#redis.on('ready', () => {
      if (!this.#reachable) this.#log.info({ node: node.id }, 'cluster: Redis reachable');
      this.#reachable = true;
      this.#settlingUntil = Date.now() + SETTLE_MS;
      // Announced: other nodes drop what they cached while this node's leases were missing.
      void this.#renew(true);
    });
    this.#redis.on('close', () => {
      if (this.#reachable && !this.#closed)
        this.#log.warn({ node: node.id }, 'cluster: Redis unreachable; serving local tunnels only');
      this.#reachable = false;
      this.#cache.clear();
    });
    this.#subscriber.on('message', (channel: string, message: string) => {
      if (channel !== REPLACE_CHANNEL) {
        this.#cache.delete(message);
        return;
      }
      const replaced = parseReplaced(message);
      if (replaced !== undefined) this.onReplaced(replaced.label, replaced.setup);
    });
    this.#subscriber.on('ready', () => this.#cache.clear());
  }

  get reachable(): boolean {
    return this.#reachable;
  }

  /** Connects and starts renewing; rejects when Redis cannot be reached now. */
  async start(): Promise<void> {
    await this.#redis.connect();
    await this.#subscriber.connect();
    await this.#subscriber.subscribe(CHANNEL, REPLACE_CHANNEL);
    await this.#renew();
    this.#timer = setInterval(() => void this.#renew(), LEASE_RENEW_MS);
    this.#timer.unref();
  }

  /** This node serves `label` now (a session of its agent is here), with `setup`. */
  hold(label: string, kind: ServiceKind, name: string, setup: string): void {
    const before = this.#held.get(label);
    this.#held.set(label, { kind, name, setup });
    if (before === undefined || before.setup !== setup) void this.#assert([label], true);
  }

  /** Tells the other nodes that `label` is now served with `setup` only (a --replace registration). */
  announceReplaced(label: string, setup: string): void {
    void this.#run(async () => {
      await this.#redis.publish(REPLACE_CHANNEL, JSON.stringify({ label, setup }));
    });
  }

  /** This node no longer serves `label`. */
  release(label: string): void {
    if (!this.#held.delete(label)) return;
    void this.#run(async () => {
      await this.#redis.hdel(leaseKey(label), this.node.id);
      await this.#redis.publish(CHANNEL, label);
    });
  }

  /**
   * The nodes other than this one that hold `label`, with its kind and name; undefined when none
   * does. Throws when Redis cannot be asked.
   */
  async locate(label: string): Promise<TunnelLocation | undefined> {
    const now = Date.now();
    const cached = this.#cache.get(label);
    const ttl = cached?.location === undefined ? ABSENCE_CACHE_MS : LOCATION_CACHE_MS;
    if (cached !== undefined && now - cached.at < ttl) return cached.location;
    const leases = await this.#redis.hgetall(leaseKey(label));
    let kind: ServiceKind = 'http';
    let name = '';
    const ids: string[] = [];
    const setups = new Set<string>();
    for (const [id, value] of Object.entries(leases)) {
      const lease = parseLease(value);
      if (lease === undefined || lease.until < now || id === this.node.id) continue;
      ids.push(id);
      kind = lease.kind;
      name = lease.name;
      setups.add(lease.setup);
    }
    let location: TunnelLocation | undefined;
    if (ids.length > 0) {
      // One GET each, not MGET: in Redis Cluster the node keys live in different slots.
      const records = await Promise.all(ids.map((id) => this.#redis.get(nodeKey(id))));
      const nodes = records
        .map((advertise, i) => (advertise === null ? undefined : { id: ids[i] as string, advertise }))
        .filter((node): node is NodeRecord => node !== undefined);
      if (nodes.length > 0) location = { label, kind, name, nodes, setups: [...setups] };
    }
    if (location === undefined && now < this.#settlingUntil)
      throw new PosternError(
        'cluster_unavailable',
        'Redis came back moments ago; leases are still being written again',
      );
    if (this.#cache.size >= LOCATION_CACHE_ENTRIES) this.#cache.clear();
    this.#cache.set(label, { location, at: now });
    return location;
  }

  /**
   * The nodes of the cluster whose records are live (the dashboard's list); ids whose record
   * expired are taken out of the set as they are found. Throws when Redis cannot be asked.
   */
  async nodes(): Promise<NodeRecord[]> {
    const ids = await this.#redis.smembers(NODES_KEY);
    const records = await Promise.all(ids.map((id) => this.#redis.get(nodeKey(id))));
    const gone = ids.filter((_, i) => records[i] === null);
    if (gone.length > 0) await this.#redis.srem(NODES_KEY, ...gone);
    return ids
      .map((id, i) => ({ id, advertise: records[i] as string | null }))
      .filter((node): node is NodeRecord => node.advertise !== null)
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * The cluster's live nodes for status pages: what was last read, re-read in the background when
   * older than 2 s (so a page polling every 2 s sees a node within moments of its start).
   */
  get knownNodes(): NodeRecord[] {
    if (Date.now() - this.#nodesReadAt > 2_000 && this.#reachable) {
      this.#nodesReadAt = Date.now();
      void this.#run(async () => {
        this.#knownNodes = await this.nodes();
      });
    }
    return this.#knownNodes;
  }

  /** Forgets what is known of `label` (a node that held it could not be reached). */
  forget(label: string): void {
    this.#cache.delete(label);
  }

  /**
   * Claims a registration nonce cluster-wide: false when another node (or this one) saw it.
   * Undefined when Redis cannot be asked (the caller's own cache then decides).
   */
  async claimNonce(nonce: string, ttlMs: number): Promise<boolean | undefined> {
    try {
      return (await this.#redis.set(`postern:nonce:${nonce}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
    } catch {
      return undefined;
    }
  }

  /**
   * Takes a token of the tunnel's cluster-wide request bucket: 0 when allowed, else ms to wait.
   * Throws when Redis cannot be asked (the caller falls back to its own bucket).
   */
  async takeToken(label: string, ratePerSecond: number, burst: number): Promise<number> {
    const wait = await this.#redis.eval(TAKE_TOKEN, 1, `postern:rate:${label}`, ratePerSecond, burst);
    return Number(wait);
  }

  /** Writes this node's record and every lease it holds again (also after Redis came back). */
  async #renew(announce = false): Promise<void> {
    await this.#run(async () => {
      await this.#redis.set(nodeKey(this.node.id), this.node.advertise, 'PX', LEASE_TTL_MS);
      await this.#redis.sadd(NODES_KEY, this.node.id);
      this.#knownNodes = await this.nodes();
      this.#nodesReadAt = Date.now();
      await this.#assert([...this.#held.keys()], announce);
    });
  }

  async #assert(labels: string[], announce: boolean): Promise<void> {
    if (labels.length === 0) return;
    await this.#run(async () => {
      const until = Date.now() + LEASE_TTL_MS;
      // Separate commands (the client pipelines them), not MULTI: in Redis Cluster the leases of
      // different labels live in different slots.
      const writes: Promise<unknown>[] = [];
      for (const label of labels) {
        const held = this.#held.get(label);
        if (held === undefined) continue;
        writes.push(this.#redis.hset(leaseKey(label), this.node.id, JSON.stringify({ until, ...held })));
        writes.push(this.#redis.pexpire(leaseKey(label), LEASE_TTL_MS));
        if (announce) writes.push(this.#redis.publish(CHANNEL, label));
      }
      await Promise.all(writes);
    });
  }

  /** Runs Redis work; a failure while Redis is away is expected and already logged once. */
  async #run(work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      if (this.#reachable)
        this.#log.debug({ error: (error as Error).message }, 'cluster: Redis command failed');
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const labels = [...this.#held.keys()];
    this.#held.clear();
    await this.#run(async () => {
      const writes: Promise<unknown>[] = [
        this.#redis.del(nodeKey(this.node.id)),
        this.#redis.srem(NODES_KEY, this.node.id),
      ];
      for (const label of labels) {
        writes.push(this.#redis.hdel(leaseKey(label), this.node.id));
        writes.push(this.#redis.publish(CHANNEL, label));
      }
      await Promise.all(writes);
    });
    this.#redis.disconnect();
    this.#subscriber.disconnect();
  }
}

function leaseKey(label: string): string {
  return `postern:tunnel:${label}`;
}

function nodeKey(id: string): string {
  return `postern:node:${id}`;
}

function parseLease(
  value: string,
): { until: number; kind: ServiceKind; name: string; setup: string } | undefined {
  try {
    const lease = JSON.parse(value) as { until?: unknown; kind?: unknown; name?: unknown; setup?: unknown };
    const kind = SERVICE_KINDS.find((k) => k === lease.kind);
    if (typeof lease.until !== 'number' || kind === undefined) return undefined;
    return {
      until: lease.until,
      kind,
      name: String(lease.name ?? ''),
      setup: String(lease.setup ?? ''),
    };
  } catch {
    return undefined;
  }
}

function parseReplaced(message: string): { label: string; setup: string } | undefined {
  try {
    const value = JSON.parse(message) as { label?: unknown; setup?: unknown };
    if (typeof value.label === 'string' && typeof value.setup === 'string')
      return { label: value.label, setup: value.setup };
  } catch {
    // Not ours: ignored.
  }
  return undefined;
}
