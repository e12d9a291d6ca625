import type { WireErrorCode } from '../errors.js';
import { keyLabelFromX } from '../keys/label.js';
import type { VerifiedRegistration } from '../session/registration.js';
import type { AllowedKeys } from './allowed-keys.js';
import type { SubdomainStore } from './subdomain-store.js';

/** Who may ask for a subdomain: any key, only keys the allowed-keys file lists it for, nobody. */
export const SUBDOMAIN_POLICIES = ['open', 'reserved', 'off'] as const;
export type SubdomainPolicy = (typeof SUBDOMAIN_POLICIES)[number];

/**
 * Names no key may claim: they look like the relay's own or a provider's (a visitor trusts
 * `admin.<domain>` more than a random label), and `_acme-challenge` is where DNS-01 records live.
 */
export const RESERVED_SUBDOMAINS: ReadonlySet<string> = new Set([
  'www',
  'api',
  'admin',
  'administrator',
  'root',
  'relay',
  'postern',
  'status',
  'dashboard',
  'metrics',
  'health',
  'login',
  'auth',
  'account',
  'mail',
  'smtp',
  'imap',
  'pop',
  'ftp',
  'ns',
  'ns1',
  'ns2',
  'dns',
  'autoconfig',
  'autodiscover',
  'localhost',
]);

/** Subdomains one key may hold at once (released ones do not count). */
export const MAX_SUBDOMAINS_PER_KEY = 16;
/** Subdomains the relay (or cluster) holds at most; a claim beyond gets relay_busy. */
export const MAX_SUBDOMAINS = 100_000;

export interface SubdomainRules {
  policy: SubdomainPolicy;
  /** A name unused this long goes back to whoever asks first, ms. */
  keepMs: number;
  /** Further names to refuse: the relay's own (its cluster node ids, say). */
  reserved: ReadonlySet<string>;
  allowedKeys: () => AllowedKeys | undefined;
  isLive: (label: string) => boolean | Promise<boolean>;
  now: () => number;
  store: SubdomainStore;
}

export type ClaimRefusal = { error: WireErrorCode; reason: string };

/**
 * Decides a registration's subdomains (docs/security.md#subdomains): the policy, the reserved
 * words, the names the allowed-keys file lists for other keys, then the claim itself: a name
 * belongs to the first key that claimed it until it has gone `keepMs` without a live tunnel.
 */
export async function claimSubdomains(
  rules: SubdomainRules,
  registration: VerifiedRegistration,
): Promise<true | ClaimRefusal> {
  const key = keyLabelFromX(registration.key);
  const listed = rules.allowedKeys();
  for (const subdomain of Object.values(registration.subdomains)) {
    if (rules.policy === 'off')
      return {
        error: 'registration_not_admitted',
        reason: 'this relay gives out no subdomains (--subdomains off)',
      };
    if (RESERVED_SUBDOMAINS.has(subdomain) || rules.reserved.has(subdomain))
      return { error: 'subdomain_taken', reason: `"${subdomain}" is reserved by the relay` };
    for (const [other, entry] of listed ?? [])
      if (other !== key && entry.subdomains?.has(subdomain) === true)
        return { error: 'subdomain_taken', reason: `"${subdomain}" is reserved for another key` };
    if (rules.policy === 'reserved' && listed?.get(key)?.subdomains?.has(subdomain) !== true)
      return {
        error: 'registration_not_admitted',
        reason: `key ${key} may claim only the subdomains the relay's allowed keys list for it (subdomains=…), not "${subdomain}"`,
      };
    const now = rules.now();
    const outcome = await rules.store.claim({
      subdomain,
      key,
      now,
      releasableBefore: now - rules.keepMs,
      live: await rules.isLive(subdomain),
      maxPerKey: MAX_SUBDOMAINS_PER_KEY,
      maxTotal: MAX_SUBDOMAINS,
    });
    if (outcome.ok) continue;
    if ('full' in outcome)
      return outcome.full === 'key'
        ? {
            error: 'registration_not_admitted',
            reason: `key ${key} holds ${MAX_SUBDOMAINS_PER_KEY} subdomains already; unused ones are released after ${days(rules.keepMs)}`,
          }
        : { error: 'relay_busy', reason: `this relay holds its limit of ${MAX_SUBDOMAINS} subdomains` };
    return {
      error: 'subdomain_taken',
      reason: `"${subdomain}" belongs to another key; it is released after ${days(rules.keepMs)} without a live tunnel (last live ${new Date(outcome.heldSince).toISOString()})`,
    };
  }
  return true;
}

function days(ms: number): string {
  const count = Math.round(ms / 86_400_000);
  return count >= 1 ? `${count} day${count === 1 ? '' : 's'}` : `${Math.round(ms / 1000)} s`;
}
