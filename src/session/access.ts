import { isIP } from 'node:net';

/**
 * Visitor access rules, as an agent declares them for each of its services in the signed
 * registration (`Postern-Access`, docs/protocol.md) and the relay enforces before it opens any
 * stream. Only hashes travel: the relay never learns a password, token or header value.
 */
export interface AccessRules {
  /** HTTP Basic users: `user:$scrypt$ln=…,r=…,p=…$<salt>$<hash>` (PHC string, standard base64). */
  basic?: string[];
  /** Bearer tokens: SHA-256 of each token, base64url. */
  bearer?: string[];
  /** Required headers: `name:<SHA-256 of the value, base64url>`; every name listed must match. */
  headers?: string[];
  /** Visitor addresses let in (CIDR or address, IPv4 or IPv6); none listed = every address. */
  allow?: string[];
  /** Visitor addresses kept out; checked before `allow`. */
  deny?: string[];
}

/** Rules by service name; services not listed are open. */
export type AccessDeclaration = Record<string, AccessRules>;

/** Bounds on a declaration, so it fits in a registration and costs the relay bounded work. */
export const ACCESS_LIMITS = {
  /** The whole `Postern-Access` header value. */
  maxBytes: 8_192,
  users: 16,
  bearer: 16,
  headers: 8,
  /** Each of allow and deny. */
  addresses: 64,
  /** scrypt memory (128 · r · 2^ln bytes) a relay spends on one password check at most. */
  maxScryptBytes: 32 << 20,
} as const;

const SHA256 = /^[A-Za-z0-9_-]{43}$/;
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]{1,64}$/;
/** Headers a rule may not require: the relay routes or rewrites them, or they are hop-by-hop. */
const RESERVED_HEADERS = new Set([
  'host',
  'authorization',
  'connection',
  'upgrade',
  'content-length',
  'transfer-encoding',
  'te',
  'keep-alive',
  'proxy-authorization',
  'x-forwarded-for',
  'forwarded',
]);
const PHC_SCRYPT = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d)\$([A-Za-z0-9+/]{16,64})\$([A-Za-z0-9+/]{43})$/;

export interface ScryptHash {
  logN: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** Parses a PHC scrypt string; returns the reason as a string when it is not one we accept. */
export function parseScryptHash(text: string): ScryptHash | string {
  const match = PHC_SCRYPT.exec(text);
  if (match === null) return 'password hash must be $scrypt$ln=<n>,r=<n>,p=<n>$<salt>$<hash>';
  const [, ln, r, p, salt, hash] = match as unknown as [string, string, string, string, string, string];
  const logN = Number(ln);
  const blocks = Number(r);
  const parallel = Number(p);
  if (logN < 10 || logN > 20 || blocks < 1 || parallel < 1 || parallel > 4)
    return 'scrypt parameters must be ln 10-20, r ≥ 1, p 1-4';
  if (128 * blocks * 2 ** logN > ACCESS_LIMITS.maxScryptBytes)
    return `scrypt parameters need more than ${ACCESS_LIMITS.maxScryptBytes >> 20} MiB (128·r·2^ln)`;
  return {
    logN,
    r: blocks,
    p: parallel,
    salt: Buffer.from(salt, 'base64'),
    hash: Buffer.from(hash, 'base64'),
  };
}

/** Formats a PHC scrypt string (standard base64 without padding, as PHC strings use). */
export function formatScryptHash(h: ScryptHash): string {
  const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '');
  return `$scrypt$ln=${h.logN},r=${h.r},p=${h.p}$${b64(h.salt)}$${b64(h.hash)}`;
}

/** Parses `a.b.c.d[/n]` or `v6[/n]`; returns the reason as a string when malformed. */
export function parseCidr(
  text: string,
): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | string {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return `"${text}" is not an IP address or CIDR block`;
  const max = version === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max)
    return `"${text}": the prefix length must be 0-${max}`;
  return { address, prefix: Number(prefixText), family: version === 4 ? 'ipv4' : 'ipv6' };
}

export function formatAccess(declaration: AccessDeclaration): string {
  return JSON.stringify(declaration);
}

/**
 * Parses and checks a `Postern-Access` value against the registration's service names; returns
 * the reason as a string when anything is off (the relay then refuses the registration: 400).
 */
export function parseAccess(text: string, serviceNames: ReadonlySet<string>): AccessDeclaration | string {
  if (Buffer.byteLength(text) > ACCESS_LIMITS.maxBytes)
    return `access rules take more than ${ACCESS_LIMITS.maxBytes} bytes`;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'access rules are not JSON';
  }
  if (!isPlainObject(value)) return 'access rules must be a JSON object keyed by service name';
  const declaration: AccessDeclaration = {};
  for (const [name, rules] of Object.entries(value)) {
    if (!serviceNames.has(name)) return `access rules name service "${name}", which is not registered`;
    const checked = checkRules(rules);
    if (typeof checked === 'string') return `access rules of "${name}": ${checked}`;
    declaration[name] = checked;
  }
  return declaration;
}

const RULE_CHECKS: Record<keyof AccessRules, { max: number; check: (entry: string) => string | undefined }> =
  {
    basic: {
      max: ACCESS_LIMITS.users,
      check: (entry) => {
        const colon = entry.indexOf(':');
        if (colon < 1 || colon > 64) return 'a Basic user must be "user:<hash>" with a 1-64 character user';
        if (/[\s\0-\x1f\x7f]/.test(entry.slice(0, colon))) return 'a Basic user name has a control character';
        const hash = parseScryptHash(entry.slice(colon + 1));
        return typeof hash === 'string' ? hash : undefined;
      },
    },
    bearer: {
      max: ACCESS_LIMITS.bearer,
      check: (entry) => (SHA256.test(entry) ? undefined : 'a bearer entry must be a SHA-256 in base64url'),
    },
    headers: {
      max: ACCESS_LIMITS.headers,
      check: (entry) => {
        const colon = entry.indexOf(':');
        const name = entry.slice(0, colon);
        if (colon < 0 || !HEADER_NAME.test(name) || !SHA256.test(entry.slice(colon + 1)))
          return 'a required header must be "<lowercase name>:<SHA-256 of the value, base64url>"';
        if (RESERVED_HEADERS.has(name) || name.startsWith('postern-'))
          return `header "${name}" cannot be required (the relay uses it)`;
        return undefined;
      },
    },
    allow: { max: ACCESS_LIMITS.addresses, check: checkAddress },
    deny: { max: ACCESS_LIMITS.addresses, check: checkAddress },
  };

function checkAddress(entry: string): string | undefined {
  const cidr = parseCidr(entry);
  return typeof cidr === 'string' ? cidr : undefined;
}

function checkRules(rules: unknown): AccessRules | string {
  if (!isPlainObject(rules)) return 'must be an object';
  const checked: AccessRules = {};
  for (const [field, entries] of Object.entries(rules)) {
    const spec = Object.hasOwn(RULE_CHECKS, field) ? RULE_CHECKS[field as keyof AccessRules] : undefined;
    if (spec === undefined) return `unknown field "${field}" (known: ${Object.keys(RULE_CHECKS).join(', ')})`;
    if (!Array.isArray(entries) || entries.some((e) => typeof e !== 'string'))
      return `"${field}" must be a list of strings`;
    if (entries.length > spec.max) return `"${field}" lists more than ${spec.max} entries`;
    for (const entry of entries as string[]) {
      const problem = spec.check(entry);
      if (problem !== undefined) return `${field}: ${problem}`;
    }
    if (entries.length > 0) checked[field as keyof AccessRules] = entries as string[];
  }
  return checked;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
