import { createHash, randomBytes, scryptSync } from 'node:crypto';
import { OptionError } from '../errors.js';
import {
  ACCESS_LIMITS,
  type AccessDeclaration,
  type AccessRules,
  formatAccess,
  formatScryptHash,
  parseCidr,
  parseScryptHash,
} from '../session/access.js';

/** Who may visit a service; the relay enforces it before any stream reaches the agent (docs/security.md). */
export interface VisitorAccessOptions {
  /** HTTP Basic users, `user:password`, or `user:$scrypt$…` as `postern hash-password` prints it. */
  basicAuth?: readonly string[] | undefined;
  /** Bearer tokens (`Authorization: Bearer <token>`), at least 16 characters each. */
  bearerTokens?: readonly string[] | undefined;
  /** Headers every visitor must send, `Name: value` (e.g. a token an upstream proxy adds). */
  requireHeaders?: readonly string[] | undefined;
  /** Visitor addresses let in, CIDR or address, IPv4 or IPv6; none = all. */
  allowIps?: readonly string[] | undefined;
  /** Visitor addresses kept out, checked first. */
  denyIps?: readonly string[] | undefined;
}

/** scrypt cost for passwords the agent hashes itself: 2^14, Node's default (≈ 50 ms, 16 MiB). */
export const PASSWORD_LOG_N = 14;
const MIN_BEARER_LENGTH = 16;

/** A PHC scrypt string for `password` with a fresh random salt. */
export function hashPassword(password: string, logN = PASSWORD_LOG_N): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password.normalize('NFC'), salt, 32, {
    N: 2 ** logN,
    r: 8,
    p: 1,
    maxmem: 64 << 20,
  });
  return formatScryptHash({ logN, r: 8, p: 1, salt, hash });
}

export function sha256Base64url(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('base64url');
}

/**
 * Turns a service's access options into the rules the registration carries: passwords hashed
 * (salted scrypt), tokens and header values reduced to SHA-256, addresses checked. Throws an
 * OptionError naming the offending entry — but never echoing a secret.
 */
export function accessRulesFor(service: string, options: VisitorAccessOptions): AccessRules | undefined {
  const where = `access of service "${service}"`;
  const rules: AccessRules = {};
  const add = (field: 'basic' | 'bearer' | 'headers' | 'allow' | 'deny', entry: string): void => {
    const list = rules[field] ?? [];
    list.push(entry);
    rules[field] = list;
  };
  const users = new Set<string>();
  for (const entry of options.basicAuth ?? []) {
    const colon = entry.indexOf(':');
    const user = entry.slice(0, colon);
    if (colon < 1 || colon > 64 || /[\s\0-\x1f\x7f]/.test(user))
      throw new OptionError(
        `${where}: --basic-auth must be user:password (a 1-64 character user, no spaces)`,
      );
    if (users.has(user)) throw new OptionError(`${where}: Basic user "${user}" is given twice`);
    users.add(user);
    const secret = entry.slice(colon + 1);
    if (secret === '') throw new OptionError(`${where}: Basic user "${user}" has an empty password`);
    let hash: string;
    if (secret.startsWith('$scrypt$')) {
      const parsed = parseScryptHash(secret);
      if (typeof parsed === 'string') throw new OptionError(`${where}: Basic user "${user}": ${parsed}`);
      hash = secret;
    } else {
      hash = hashPassword(secret);
    }
    add('basic', `${user}:${hash}`);
  }
  for (const token of options.bearerTokens ?? []) {
    if (token.length < MIN_BEARER_LENGTH || !/^[\x21-\x7e]+$/.test(token))
      throw new OptionError(
        `${where}: a bearer token must be at least ${MIN_BEARER_LENGTH} visible ASCII characters (e.g. openssl rand -hex 16)`,
      );
    add('bearer', sha256Base64url(token));
  }
  for (const line of options.requireHeaders ?? []) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (colon < 1 || !/^[a-z0-9!#$%&'*+.^_`|~-]{1,64}$/.test(name) || value === '')
      throw new OptionError(`${where}: --require-header must be "Name: value"`);
    add('headers', `${name}:${sha256Base64url(value)}`);
  }
  for (const [field, list] of [
    ['allow', options.allowIps],
    ['deny', options.denyIps],
  ] as const) {
    for (const entry of list ?? []) {
      const cidr = parseCidr(entry);
      if (typeof cidr === 'string') throw new OptionError(`${where}: --${field}-ip ${cidr}`);
      add(field, entry);
    }
  }
  const limits: [keyof AccessRules, number, string][] = [
    ['basic', ACCESS_LIMITS.users, 'Basic users'],
    ['bearer', ACCESS_LIMITS.bearer, 'bearer tokens'],
    ['headers', ACCESS_LIMITS.headers, 'required headers'],
    ['allow', ACCESS_LIMITS.addresses, 'allowed addresses'],
    ['deny', ACCESS_LIMITS.addresses, 'denied addresses'],
  ];
  for (const [field, max, what] of limits)
    if ((rules[field]?.length ?? 0) > max) throw new OptionError(`${where}: at most ${max} ${what}`);
  return Object.keys(rules).length === 0 ? undefined : rules;
}

/** The `Postern-Access` value for all services, or undefined when every service is open. */
export function accessHeaderFor(
  services: readonly { name: string; access: AccessRules | undefined }[],
): string | undefined {
  const declaration: AccessDeclaration = {};
  for (const service of services)
    if (service.access !== undefined) declaration[service.name] = service.access;
  if (Object.keys(declaration).length === 0) return undefined;
  const text = formatAccess(declaration);
  if (Buffer.byteLength(text) > ACCESS_LIMITS.maxBytes)
    throw new OptionError(
      `the access rules take ${Buffer.byteLength(text)} bytes in the registration; at most ${ACCESS_LIMITS.maxBytes} (fewer users, tokens or addresses)`,
    );
  return text;
}
