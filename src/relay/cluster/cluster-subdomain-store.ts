import type { ClaimOutcome, ClaimRequest, SubdomainStore } from '../subdomain-store.js';
import { createRedisClient, type RedisClient } from './redis-client.js';

/** Both keys in one hash slot (the `{…}` tag), so the script runs on Redis Cluster too. */
const CLAIMS = '{postern:subdomains}:claims';
const COUNTS = '{postern:subdomains}:per-key';

/** The claim decided whole in Redis: the same rules as FileSubdomainStore.claim(). */
const CLAIM = `
local current = redis.call('hget', KEYS[1], ARGV[1])
if current then
  local claim = cjson.decode(current)
  if claim.key ~= ARGV[2] then
    if ARGV[5] == '1' or claim.lastSeen >= tonumber(ARGV[4]) then return 'held:' .. claim.lastSeen end
    if tonumber(redis.call('hget', KEYS[2], ARGV[2]) or '0') >= tonumber(ARGV[6]) then return 'full:key' end
    redis.call('hincrby', KEYS[2], claim.key, -1)
    redis.call('hincrby', KEYS[2], ARGV[2], 1)
  end
else
  if redis.call('hlen', KEYS[1]) >= tonumber(ARGV[7]) then return 'full:relay' end
  if tonumber(redis.call('hget', KEYS[2], ARGV[2]) or '0') >= tonumber(ARGV[6]) then return 'full:key' end
  redis.call('hincrby', KEYS[2], ARGV[2], 1)
end
redis.call('hset', KEYS[1], ARGV[1], cjson.encode({key = ARGV[2], lastSeen = tonumber(ARGV[3])}))
return 'ok'
`;

/** Forgets one claim if it is still the one the sweep read (another node may have renewed it). */
const FORGET = `
local current = redis.call('hget', KEYS[1], ARGV[1])
if current ~= ARGV[2] then return 0 end
redis.call('hdel', KEYS[1], ARGV[1])
redis.call('hincrby', KEYS[2], cjson.decode(current).key, -1)
return 1
`;

/** Subdomain claims of a cluster in its Redis: every node sees one owner per name. */
export class ClusterSubdomainStore implements SubdomainStore {
  readonly #redis: RedisClient;

  constructor(url: string) {
    this.#redis = createRedisClient(url, { queueWhileOffline: false });
    this.#redis.on('error', () => {});
  }

  async connect(): Promise<void> {
    await this.#redis.connect().catch(() => {});
  }

  async claim(request: ClaimRequest): Promise<ClaimOutcome> {
    const answer = String(
      await this.#redis.eval(
        CLAIM,
        2,
        CLAIMS,
        COUNTS,
        request.subdomain,
        request.key,
        request.now,
        request.releasableBefore,
        request.live ? '1' : '0',
        request.maxPerKey,
        request.maxTotal,
      ),
    );
    if (answer === 'ok') return { ok: true };
    if (answer === 'full:key') return { ok: false, full: 'key' };
    if (answer === 'full:relay') return { ok: false, full: 'relay' };
    return { ok: false, heldSince: Number(answer.slice('held:'.length)) };
  }

  async touch(subdomains: readonly string[], now: number): Promise<void> {
    for (const subdomain of subdomains) {
      const current = await this.#redis.hget(CLAIMS, subdomain);
      if (current === null) continue;
      const claim = JSON.parse(current) as { key: string };
      await this.#redis.hset(CLAIMS, subdomain, JSON.stringify({ key: claim.key, lastSeen: now }));
    }
  }

  async sweep(releasableBefore: number, isLive: (subdomain: string) => boolean): Promise<void> {
    let cursor = '0';
    do {
      const [next, entries] = await this.#redis.hscan(CLAIMS, cursor, 'COUNT', 500);
      cursor = next;
      for (let i = 0; i < entries.length; i += 2) {
        const subdomain = entries[i] as string;
        const text = entries[i + 1] as string;
        const claim = JSON.parse(text) as { lastSeen: number };
        if (claim.lastSeen >= releasableBefore || isLive(subdomain)) continue;
        await this.#redis.eval(FORGET, 2, CLAIMS, COUNTS, subdomain, text);
      }
    } while (cursor !== '0');
  }

  close(): void {
    this.#redis.disconnect();
  }
}
