import { randomBytes } from 'node:crypto';
import { type CertificateStore, directoryFolder, type StoredCertificate } from '../acme/certificate-store.js';
import { createRedisClient, type RedisClient } from './redis-client.js';

/** Deletes the lock only while it is still ours: a lease that ran out may be another node's now. */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`;

/**
 * The ACME state of a cluster in its Redis (docs/acme.md#cluster-mode): every node reads the
 * account and the certificates there, and one node at a time orders a name, under a lock with a
 * lease (SET NX PX), so a name is ordered once however many nodes see its first visitors.
 */
export class ClusterCertificateStore implements CertificateStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;

  constructor(url: string, directoryUrl: string) {
    this.#redis = createRedisClient(url, { queueWhileOffline: false });
    this.#redis.on('error', () => {});
    this.#prefix = `postern:acme:${directoryFolder(directoryUrl)}`;
  }

  async loadAccountKey(): Promise<string | undefined> {
    return (await this.#redis.get(`${this.#prefix}:account`)) ?? undefined;
  }

  /** The first node's key wins: a second node that made one at the same time takes the stored one. */
  async saveAccountKey(pem: string): Promise<void> {
    await this.#redis.set(`${this.#prefix}:account`, pem, 'NX');
  }

  async load(id: string): Promise<StoredCertificate | undefined> {
    const text = await this.#redis.get(`${this.#prefix}:certificate:${id}`);
    if (text === null) return undefined;
    return JSON.parse(text) as StoredCertificate;
  }

  async save(id: string, certificate: StoredCertificate): Promise<void> {
    await this.#redis.set(`${this.#prefix}:certificate:${id}`, JSON.stringify(certificate));
  }

  async lock(id: string, leaseMs: number): Promise<(() => Promise<void>) | undefined> {
    const key = `${this.#prefix}:lock:${id}`;
    const token = randomBytes(12).toString('hex');
    if ((await this.#redis.set(key, token, 'PX', leaseMs, 'NX')) !== 'OK') return undefined;
    return async () => {
      await this.#redis.eval(RELEASE, 1, key, token);
    };
  }

  async putChallenge(key: string, value: string, ttlMs: number): Promise<void> {
    await this.#redis.set(`${this.#prefix}:challenge:${key}`, value, 'PX', ttlMs);
  }

  async getChallenge(key: string): Promise<string | undefined> {
    return (await this.#redis.get(`${this.#prefix}:challenge:${key}`)) ?? undefined;
  }

  async deleteChallenge(key: string): Promise<void> {
    await this.#redis.del(`${this.#prefix}:challenge:${key}`);
  }

  async connect(): Promise<void> {
    await this.#redis.connect().catch(() => {});
  }

  close(): void {
    this.#redis.disconnect();
  }
}
