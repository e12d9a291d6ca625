import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OptionError } from '../errors.js';

/** Who holds a subdomain, and when its tunnel was last seen live (ms since the epoch). */
export interface SubdomainClaim {
  key: string;
  lastSeen: number;
}

/** What a claim attempt found: granted, held by another key (since when), or a limit reached. */
export type ClaimOutcome =
  | { ok: true }
  | { ok: false; heldSince: number }
  | { ok: false; full: 'relay' | 'key' };

export interface ClaimRequest {
  subdomain: string;
  key: string;
  now: number;
  /** A claim of another key last seen before this may be taken over (unless `live`). */
  releasableBefore: number;
  /** The subdomain's tunnel is live now (anywhere in the cluster): never taken over. */
  live: boolean;
  maxPerKey: number;
  maxTotal: number;
}

/**
 * Where subdomain claims live: a file under --state-dir here, Redis in cluster mode
 * (cluster/cluster-subdomain-store.ts). Each claim is decided whole, so two keys asking for one
 * name at once cannot both get it.
 */
export interface SubdomainStore {
  claim(request: ClaimRequest): Promise<ClaimOutcome>;
  /** Marks these subdomains' tunnels as seen live now (they keep their names). */
  touch(subdomains: readonly string[], now: number): Promise<void>;
  /** Forgets claims last seen before `releasableBefore` whose tunnels are not live. */
  sweep(releasableBefore: number, isLive: (subdomain: string) => boolean): Promise<void>;
  close(): void;
}

/**
 * Claims in memory, written whole to `<stateDir>/subdomains.json` (0600) after every change when
 * a state folder is given; without one they last as long as the process (an embedded relay).
 */
export class FileSubdomainStore implements SubdomainStore {
  readonly #claims = new Map<string, SubdomainClaim>();
  readonly #counts = new Map<string, number>();
  readonly #file: string | undefined;

  constructor(stateDir: string | undefined) {
    this.#file = stateDir === undefined ? undefined : join(stateDir, 'subdomains.json');
    if (this.#file !== undefined) this.#read(this.#file);
  }

  async claim(request: ClaimRequest): Promise<ClaimOutcome> {
    const { subdomain, key, now } = request;
    const current = this.#claims.get(subdomain);
    if (current !== undefined && current.key !== key) {
      if (request.live || current.lastSeen >= request.releasableBefore)
        return { ok: false, heldSince: current.lastSeen };
    }
    if (current?.key !== key) {
      if (current === undefined && this.#claims.size >= request.maxTotal) return { ok: false, full: 'relay' };
      if ((this.#counts.get(key) ?? 0) >= request.maxPerKey) return { ok: false, full: 'key' };
      if (current !== undefined) this.#count(current.key, -1);
      this.#count(key, 1);
    }
    this.#claims.set(subdomain, { key, lastSeen: now });
    this.#write();
    return { ok: true };
  }

  async touch(subdomains: readonly string[], now: number): Promise<void> {
    let changed = false;
    for (const subdomain of subdomains) {
      const claim = this.#claims.get(subdomain);
      if (claim !== undefined) {
        claim.lastSeen = now;
        changed = true;
      }
    }
    if (changed) this.#write();
  }

  async sweep(releasableBefore: number, isLive: (subdomain: string) => boolean): Promise<void> {
    let changed = false;
    for (const [subdomain, claim] of this.#claims) {
      if (claim.lastSeen >= releasableBefore || isLive(subdomain)) continue;
      this.#claims.delete(subdomain);
      this.#count(claim.key, -1);
      changed = true;
    }
    if (changed) this.#write();
  }

  close(): void {}

  #count(key: string, by: number): void {
    const next = (this.#counts.get(key) ?? 0) + by;
    if (next > 0) this.#counts.set(key, next);
    else this.#counts.delete(key);
  }

  #read(file: string): void {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new OptionError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new OptionError(`${file} is not JSON; move it away to start with no subdomain claims`);
    }
    for (const [subdomain, claim] of Object.entries(parsed as Record<string, Partial<SubdomainClaim>>)) {
      if (typeof claim?.key !== 'string' || typeof claim.lastSeen !== 'number') continue;
      this.#claims.set(subdomain, { key: claim.key, lastSeen: claim.lastSeen });
      this.#count(claim.key, 1);
    }
  }

  #write(): void {
    const file = this.#file;
    if (file === undefined) return;
    const folder = join(file, '..');
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    const temporary = join(folder, `.subdomains.${randomBytes(6).toString('hex')}`);
    writeFileSync(temporary, JSON.stringify(Object.fromEntries(this.#claims)), { mode: 0o600 });
    renameSync(temporary, file);
  }
}
