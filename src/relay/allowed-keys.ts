import { readFileSync } from 'node:fs';
import { OptionError } from '../errors.js';
import { watchFilesFor } from '../file-watch.js';
import { isCanonicalKeyX, isSubdomain, keyLabelFromX, LABEL_LENGTH, SERVICE_NAME } from '../keys/label.js';
import type { VerifiedRegistration } from '../session/registration.js';

/** One line of an allowed-keys file. */
export interface AllowedKey {
  /** The service names this key may publish; undefined: any. */
  names: ReadonlySet<string> | undefined;
  /** Sessions this key may hold at once; undefined: the relay's default. */
  maxSessions: number | undefined;
  /** Subdomains kept for this key (`subdomains=a,b`): no other key may claim them. */
  subdomains?: ReadonlySet<string> | undefined;
}

/** Key label → what it may do. */
export type AllowedKeys = ReadonlyMap<string, AllowedKey>;

const LABEL = new RegExp(`^[a-z2-7]{${LABEL_LENGTH}}$`);

/**
 * Parses an allowed-keys file: one key a line — its label (what `postern id` prints) or its raw
 * public key (base64url) — then optional `names=web,api`, `max-sessions=N` and `subdomains=a,b`; `#` starts a
 * comment. Every mistake names the file and line.
 */
export function parseAllowedKeys(text: string, path: string): AllowedKeys {
  const keys = new Map<string, AllowedKey>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const where = `${path}:${index + 1}`;
    const [key = '', ...fields] = line.split(/\s+/);
    let label: string;
    if (LABEL.test(key)) label = key;
    else if (isCanonicalKeyX(key)) label = keyLabelFromX(key);
    else
      throw new OptionError(
        `${where}: "${key}" is neither a key label (52 of a-z, 2-7) nor a base64url public key (canonical: 43 characters)`,
      );
    const allowed: {
      names: Set<string> | undefined;
      maxSessions: number | undefined;
      subdomains?: Set<string>;
    } = {
      names: undefined,
      maxSessions: undefined,
    };
    for (const field of fields) {
      const [name, value = ''] = field.split('=', 2);
      if (name === 'names') {
        const names = value.split(',').filter(Boolean);
        const bad = names.find((n) => !SERVICE_NAME.test(n));
        if (names.length === 0 || bad !== undefined)
          throw new OptionError(`${where}: names= takes service names (1-32 of a-z, 0-9, -), got "${value}"`);
        allowed.names = new Set(names);
      } else if (name === 'max-sessions') {
        if (!/^[1-9]\d*$/.test(value))
          throw new OptionError(`${where}: max-sessions= takes a whole number ≥ 1, got "${value}"`);
        allowed.maxSessions = Number(value);
      } else if (name === 'subdomains') {
        const subdomains = value.split(',').filter(Boolean);
        const bad = subdomains.find((n) => !isSubdomain(n));
        if (subdomains.length === 0 || bad !== undefined)
          throw new OptionError(
            `${where}: subdomains= takes DNS labels (1-63 of a-z, 0-9, -), got "${value}"`,
          );
        for (const subdomain of subdomains)
          for (const [other, entry] of keys)
            if (entry.subdomains?.has(subdomain))
              throw new OptionError(`${where}: subdomain "${subdomain}" is listed for key ${other} already`);
        allowed.subdomains = new Set(subdomains);
      } else {
        throw new OptionError(`${where}: unknown field "${field}" (names=…, max-sessions=…, subdomains=…)`);
      }
    }
    if (keys.has(label)) throw new OptionError(`${where}: key ${label} is listed twice`);
    keys.set(label, allowed);
  });
  return keys;
}

export function loadAllowedKeys(path: string): AllowedKeys {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new OptionError(`cannot read allowed-keys file ${path}: ${(error as NodeJS.ErrnoException).code}`);
  }
  return parseAllowedKeys(text, path);
}

/** Why a key is refused: not admitted (403, final) or over its session limit (429, retried). */
export type KeyRefusal = {
  error:
    | 'registration_not_admitted'
    | 'registration_too_many_sessions'
    | 'relay_busy'
    | 'registration_conflict'
    | 'service_unsupported'
    | 'subdomain_taken';
  reason: string;
};

/**
 * Whether `registration` may register, given the allowed keys (undefined: any key) and how many
 * sessions its key holds now: true, or the refusal.
 */
export function checkAllowedKey(
  allowed: AllowedKeys | undefined,
  registration: VerifiedRegistration,
  openSessions: number,
  defaultMaxSessions: number,
): true | KeyRefusal {
  const label = keyLabelFromX(registration.key);
  const entry = allowed?.get(label);
  if (allowed !== undefined && entry === undefined)
    return { error: 'registration_not_admitted', reason: `key ${label} is not in this relay's allowed keys` };
  const names = entry?.names;
  const refused = names === undefined ? undefined : registration.services.find((s) => !names.has(s.name));
  if (refused !== undefined && names !== undefined) {
    return {
      error: 'registration_not_admitted',
      reason: `key ${label} may publish only ${[...names].join(', ')}, not "${refused.name}"`,
    };
  }
  const max = entry?.maxSessions ?? defaultMaxSessions;
  if (max > 0 && openSessions >= max)
    return {
      error: 'registration_too_many_sessions',
      reason: `key ${label} already has ${openSessions} sessions (limit ${max})`,
    };
  return true;
}

/** Calls `onChange` with the file's new contents when it changes (polled); `onError` when they do not parse. */
export function watchAllowedKeys(
  path: string,
  intervalMs: number,
  onChange: (keys: AllowedKeys) => void,
  onError: (error: Error) => void,
): () => void {
  return watchFilesFor([path], intervalMs, () => loadAllowedKeys(path), onChange, onError);
}
