import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { BlockList, isIPv4 } from 'node:net';
import type { WireErrorCode } from '../errors.js';
import { type AccessRules, parseCidr, parseScryptHash, type ScryptHash } from '../session/access.js';
import { addressKey } from './address-key.js';
import type { PasswordCheck } from './password-check.js';
import type { KeyedTokenBuckets } from './token-bucket.js';

/** What every tunnel's checks share: the bounded password checker and the per-address limiter. */
export interface AccessContext {
  passwords: PasswordCheck;
  /** Password checks (those not answered from the cache) per visitor address; undefined = unlimited. */
  passwordAttempts: KeyedTokenBuckets | undefined;
  /** IPv6 visitors are counted per prefix of this many bits (address-key.ts). */
  ipv6PrefixBits: number;
}

export type AccessVerdict =
  | { ok: true; consumed: readonly string[] }
  | { ok: false; error: WireErrorCode; message: string; headers?: Record<string, string> };

/** Credentials that passed, remembered so a browser's every request does not cost a scrypt. */
const MAX_CACHED_PASSES = 256;

/** RFC 4648 base64 with its padding, nothing else (RFC 7617 §2). */
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

interface BasicUser {
  nameHash: Buffer;
  hash: ScryptHash;
}

/**
 * One tunnel's visitor access rules, compiled from what its agent declared (session/access.ts):
 * addresses first, then required headers, then credentials. Secrets are compared as hashes in
 * constant time; a name that matches no user still costs one scrypt, so timing tells nothing.
 */
export class VisitorAccess {
  /** Which mechanisms are on, for status pages: 'basic', 'bearer', 'header', 'ip'. */
  readonly kinds: readonly string[];
  readonly #allow: BlockList | undefined;
  readonly #deny: BlockList | undefined;
  readonly #headers = new Map<string, Buffer[]>();
  readonly #bearer: Buffer[];
  readonly #users: BasicUser[];
  /** For names that match no user: same cost as a real check. */
  readonly #decoy: ScryptHash | undefined;
  readonly #passed = new Map<string, true>();
  readonly #challenge: string;
  /** 'Basic', 'Bearer' or 'Basic or Bearer', for messages. */
  readonly #schemes: string;
  readonly #consumed: string[];

  constructor(rules: AccessRules) {
    this.#allow = blockList(rules.allow);
    this.#deny = blockList(rules.deny);
    for (const entry of rules.headers ?? []) {
      const colon = entry.indexOf(':');
      const name = entry.slice(0, colon);
      const hashes = this.#headers.get(name) ?? [];
      hashes.push(Buffer.from(entry.slice(colon + 1), 'base64url'));
      this.#headers.set(name, hashes);
    }
    this.#bearer = (rules.bearer ?? []).map((h) => Buffer.from(h, 'base64url'));
    this.#users = (rules.basic ?? []).map((entry) => {
      const colon = entry.indexOf(':');
      return {
        nameHash: sha256(entry.slice(0, colon)),
        hash: parseScryptHash(entry.slice(colon + 1)) as ScryptHash,
      };
    });
    const first = this.#users[0]?.hash;
    this.#decoy = first && {
      ...first,
      salt: randomBytes(first.salt.length),
      hash: randomBytes(first.hash.length),
    };
    const challenges = [];
    if (this.#users.length > 0) challenges.push('Basic realm="postern", charset="UTF-8"');
    if (this.#bearer.length > 0) challenges.push('Bearer realm="postern"');
    this.#challenge = challenges.join(', ');
    this.#schemes = challenges.map((c) => c.split(' ')[0]).join(' or ');
    this.#consumed = [...this.#headers.keys()];
    if (challenges.length > 0) this.#consumed.push('authorization');
    const kinds = [];
    if (this.#users.length > 0) kinds.push('basic');
    if (this.#bearer.length > 0) kinds.push('bearer');
    if (this.#headers.size > 0) kinds.push('header');
    if (this.#allow !== undefined || this.#deny !== undefined) kinds.push('ip');
    this.kinds = kinds;
  }

  async check(
    headers: IncomingHttpHeaders,
    visitorAddress: string,
    ctx: AccessContext,
  ): Promise<AccessVerdict> {
    const addressProblem = this.#checkAddress(visitorAddress);
    if (addressProblem !== undefined) return { ok: false, error: 'access_denied', message: addressProblem };
    for (const [name, hashes] of this.#headers) {
      const value = headers[name];
      if (typeof value !== 'string' || !matchesAny(sha256(value.trim()), hashes)) {
        return { ok: false, error: 'access_denied', message: `this tunnel requires a valid ${name} header` };
      }
    }
    if (this.#challenge === '') return { ok: true, consumed: this.#consumed };
    const verdict = await this.#checkCredentials(String(headers.authorization ?? ''), visitorAddress, ctx);
    return verdict === true ? { ok: true, consumed: this.#consumed } : verdict;
  }

  #checkAddress(address: string): string | undefined {
    if (this.#allow === undefined && this.#deny === undefined) return undefined;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    const ip = mapped ?? address;
    const family = isIPv4(ip) ? 'ipv4' : 'ipv6';
    let denied: boolean;
    try {
      denied =
        (this.#deny?.check(ip, family) ?? false) ||
        (this.#allow !== undefined && !this.#allow.check(ip, family));
    } catch {
      return `visitor address ${JSON.stringify(address)} cannot be checked against this tunnel's address rules`;
    }
    return denied ? `visitor address ${ip} may not use this tunnel` : undefined;
  }

  async #checkCredentials(
    authorization: string,
    visitorAddress: string,
    ctx: AccessContext,
  ): Promise<true | Extract<AccessVerdict, { ok: false }>> {
    const refused = (message: string): Extract<AccessVerdict, { ok: false }> => ({
      ok: false,
      error: 'access_unauthorized',
      message,
      headers: { 'www-authenticate': this.#challenge },
    });
    const space = authorization.indexOf(' ');
    const scheme = authorization.slice(0, space).toLowerCase();
    const credentials = authorization.slice(space + 1).trim();
    if (space < 0 || credentials === '') return refused('this tunnel requires credentials (Authorization)');
    if (scheme === 'bearer' && this.#bearer.length > 0) {
      return matchesAny(sha256(credentials), this.#bearer)
        ? true
        : refused('the bearer token is not valid here');
    }
    if (scheme !== 'basic' || this.#users.length === 0)
      return refused(`this tunnel takes ${this.#schemes} credentials`);
    const cacheKey = sha256(authorization).toString('base64');
    if (this.#passed.has(cacheKey)) {
      this.#passed.delete(cacheKey);
      this.#passed.set(cacheKey, true);
      return true;
    }
    // Strict: Node's decoder skips characters outside the alphabet, so "Ym9i:OnB3" and other
    // spellings would decode to the same user:password and each count as new credentials.
    const decoded = STRICT_BASE64.test(credentials)
      ? Buffer.from(credentials, 'base64').toString('utf8')
      : '';
    const colon = decoded.indexOf(':');
    if (colon < 0) return refused('Basic credentials must be base64 of user:password');
    const wait = ctx.passwordAttempts?.take(addressKey(visitorAddress, ctx.ipv6PrefixBits), Date.now()) ?? 0;
    if (wait > 0) {
      return {
        ok: false,
        error: 'access_rate_limited',
        message: `too many password attempts from ${visitorAddress}`,
        headers: { 'retry-after': String(Math.ceil(wait / 1000)) },
      };
    }
    const nameHash = sha256(decoded.slice(0, colon));
    let user: BasicUser | undefined;
    for (const candidate of this.#users) if (timingSafeEqual(candidate.nameHash, nameHash)) user = candidate;
    const expected = user?.hash ?? (this.#decoy as ScryptHash);
    const matched = await ctx.passwords.verify(decoded.slice(colon + 1), expected);
    if (matched === 'busy')
      return {
        ok: false,
        error: 'relay_busy',
        message: 'too many password checks at once; try again shortly',
        headers: { 'retry-after': '1' },
      };
    if (!matched || user === undefined) return refused('wrong user name or password');
    if (this.#passed.size >= MAX_CACHED_PASSES)
      this.#passed.delete(this.#passed.keys().next().value as string);
    this.#passed.set(cacheKey, true);
    return true;
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Compares against every candidate (no early exit), each in constant time. */
function matchesAny(actual: Buffer, candidates: readonly Buffer[]): boolean {
  let found = false;
  for (const candidate of candidates) if (timingSafeEqual(actual, candidate)) found = true;
  return found;
}

function blockList(entries: readonly string[] | undefined): BlockList | undefined {
  if (entries === undefined || entries.length === 0) return undefined;
  const list = new BlockList();
  for (const entry of entries) {
    const cidr = parseCidr(entry);
    if (typeof cidr !== 'string') list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return list;
}
