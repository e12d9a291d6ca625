import { createHash, createHmac, type KeyObject, randomBytes, sign, verify } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { WireErrorCode } from '../errors.js';
import {
  isCanonicalKeyX,
  isSubdomain,
  keyLabelFromX,
  publicKeyFromX,
  publicKeyX,
  SERVICE_NAME,
  serviceLabel,
} from '../keys/label.js';
import { type AccessDeclaration, parseAccess } from './access.js';
import {
  Header,
  PROTOCOL_VERSION,
  type RequestedService,
  SERVICE_KINDS,
  type ServiceKind,
  signedString,
} from './protocol.js';

/** At most this many services in one registration; keeps the header and the relay's work bounded. */
export const MAX_SERVICES = 32;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export function formatServices(services: readonly RequestedService[]): string {
  return services.map((s) => `${s.name}=${s.kind}`).join(',');
}

/** Builds the registration headers for an upgrade request to `host` + `path`. */
export function signRegistration(options: {
  privateKey: KeyObject;
  publicKey: KeyObject;
  services: readonly RequestedService[];
  method: string;
  path: string;
  host: string;
  /** Visitor access rules as formatAccess() wrote them; absent when every service is open. */
  access?: string | undefined;
  /** formatSetups() of the services' fingerprints; absent: the relay compares access rules only. */
  setups?: string | undefined;
  /** Take the services over from live sessions of the same key that differ. */
  replace?: boolean | undefined;
  /** formatSubdomains() of the services that ask for a name of their own. */
  subdomains?: string | undefined;
  now?: number;
}): Record<string, string> {
  const replace = options.replace === true ? '1' : undefined;
  const key = publicKeyX(options.publicKey);
  const timestamp = String(Math.floor((options.now ?? Date.now()) / 1000));
  const nonce = randomBytes(18).toString('base64url');
  const services = formatServices(options.services);
  const text = signedString({
    method: options.method,
    path: options.path,
    host: options.host,
    key,
    timestamp,
    nonce,
    services,
    access: options.access,
    setups: options.setups,
    replace,
    subdomains: options.subdomains,
  });
  const signature = sign(null, Buffer.from(text, 'utf8'), options.privateKey).toString('base64url');
  const headers: Record<string, string> = {
    [Header.version]: PROTOCOL_VERSION,
    [Header.key]: key,
    [Header.timestamp]: timestamp,
    [Header.nonce]: nonce,
    [Header.services]: services,
    [Header.signature]: signature,
  };
  if (options.access !== undefined) headers[Header.access] = options.access;
  if (options.setups !== undefined) headers[Header.setups] = options.setups;
  if (replace !== undefined) headers[Header.replace] = replace;
  if (options.subdomains !== undefined) headers[Header.subdomains] = options.subdomains;
  return headers;
}

/** `name=<subdomain>` of each service that asks for one (the Postern-Subdomains header); undefined when none does. */
export function formatSubdomains(
  services: readonly { name: string; subdomain?: string | undefined }[],
): string | undefined {
  const asked = services.filter((s) => s.subdomain !== undefined).map((s) => `${s.name}=${s.subdomain}`);
  return asked.length === 0 ? undefined : asked.join(',');
}

/** The label a registered service is published under: the subdomain it asked for, else its key-derived one. */
export function registeredLabel(registration: VerifiedRegistration, name: string): string {
  return registration.subdomains[name] ?? serviceLabel(keyLabelFromX(registration.key), name);
}

/**
 * A service's setup (kind, target, access options as given) as the relay may compare it: 16 bytes
 * of an HMAC under a key derived from the agent's private key. Equal setups of one key give equal
 * fingerprints; nobody without the key can test a guessed password or target against one.
 */
export function serviceFingerprint(privateKey: KeyObject, setup: unknown): string {
  const key = createHash('sha256')
    .update('POSTERN-SERVICE-SETUP-V1\n')
    .update(privateKey.export({ format: 'der', type: 'pkcs8' }))
    .digest();
  return createHmac('sha256', key)
    .update(JSON.stringify(setup))
    .digest()
    .subarray(0, 16)
    .toString('base64url');
}

/** `name=<fingerprint>` of each service, joined by commas (the Postern-Setups header). */
export function formatSetups(services: readonly { name: string; fingerprint: string }[]): string {
  return services.map((s) => `${s.name}=${s.fingerprint}`).join(',');
}

/**
 * What must match for a second session to join a live service: the fingerprint of its setup, or
 * (from an agent that sends none) its visitor access rules as registered.
 */
export function serviceSetup(registration: VerifiedRegistration, name: string): string {
  const fingerprint = registration.setups[name];
  return fingerprint !== undefined
    ? `setup:${fingerprint}`
    : `access:${JSON.stringify(registration.access[name] ?? null)}`;
}

export interface VerifiedRegistration {
  /** base64url raw public key. */
  key: string;
  nonce: string;
  /** The registration's signature as sent; the proof of possession is bound to it. */
  signature: string;
  timestampSeconds: number;
  services: RequestedService[];
  /** Visitor access rules by service name ({} when none were sent). */
  access: AccessDeclaration;
  /** Setup fingerprints by service name ({} when none were sent). */
  setups: Record<string, string>;
  /** The agent asked to take its services over from live sessions that differ. */
  replace: boolean;
  /** Subdomains asked for, by service name ({} when none were sent). */
  subdomains: Record<string, string>;
}

export type VerifyResult =
  | { ok: true; registration: VerifiedRegistration }
  | { ok: false; error: WireErrorCode; reason: string };

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * Checks the shape, the signature and the time window of a registration. The replay check (nonce
 * unseen) and admission are the caller's, because they need state.
 */
export function verifyRegistration(request: {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  now: number;
  windowSeconds: number;
}): VerifyResult {
  const malformed = (reason: string): VerifyResult => ({
    ok: false,
    error: 'registration_malformed',
    reason,
  });
  const h = request.headers;
  const version = single(h, Header.version);
  if (version !== PROTOCOL_VERSION) {
    return malformed(
      `${Header.version} must be "${PROTOCOL_VERSION}" (got ${JSON.stringify(version ?? null)})`,
    );
  }
  const host = single(h, 'host');
  if (host === undefined || host === '') return malformed('missing Host header');
  const key = single(h, Header.key);
  if (key === undefined || !isCanonicalKeyX(key)) {
    return malformed(`${Header.key} must be a 32-byte ed25519 public key in canonical base64url`);
  }
  const timestamp = single(h, Header.timestamp);
  if (timestamp === undefined || !/^\d{1,12}$/.test(timestamp)) {
    return malformed(`${Header.timestamp} must be Unix time in seconds`);
  }
  const nonce = single(h, Header.nonce);
  if (nonce === undefined || nonce.length < 22 || nonce.length > 64 || !BASE64URL.test(nonce)) {
    return malformed(`${Header.nonce} must be 16 to 48 random bytes in base64url`);
  }
  const servicesText = single(h, Header.services);
  if (servicesText === undefined) return malformed(`missing ${Header.services}`);
  const services = parseServices(servicesText);
  if (typeof services === 'string') return malformed(services);
  const accessText = h[Header.access] === undefined ? undefined : single(h, Header.access);
  if (h[Header.access] !== undefined && accessText === undefined)
    return malformed(`${Header.access} must be sent once`);
  const access =
    accessText === undefined ? {} : parseAccess(accessText, new Set(services.map((s) => s.name)));
  if (typeof access === 'string') return malformed(access);
  const setupsText = h[Header.setups] === undefined ? undefined : single(h, Header.setups);
  if (h[Header.setups] !== undefined && setupsText === undefined)
    return malformed(`${Header.setups} must be sent once`);
  const setups = setupsText === undefined ? {} : parseSetups(setupsText, services);
  if (typeof setups === 'string') return malformed(setups);
  const replaceText = h[Header.replace] === undefined ? undefined : single(h, Header.replace);
  if (h[Header.replace] !== undefined && replaceText !== '1') return malformed(`${Header.replace} must be 1`);
  const subdomainsText = h[Header.subdomains] === undefined ? undefined : single(h, Header.subdomains);
  if (h[Header.subdomains] !== undefined && subdomainsText === undefined)
    return malformed(`${Header.subdomains} must be sent once`);
  const subdomains = subdomainsText === undefined ? {} : parseSubdomains(subdomainsText, services);
  if (typeof subdomains === 'string') return malformed(subdomains);
  const signature = single(h, Header.signature);
  if (signature === undefined || signature.length !== 86 || !BASE64URL.test(signature)) {
    return malformed(`${Header.signature} must be a 64-byte ed25519 signature in base64url`);
  }

  let publicKey: KeyObject;
  try {
    publicKey = publicKeyFromX(key);
  } catch {
    return malformed(`${Header.key} is not a valid ed25519 public key`);
  }
  const text = signedString({
    method: request.method,
    path: request.path,
    host,
    key,
    timestamp,
    nonce,
    services: servicesText,
    access: accessText,
    setups: setupsText,
    replace: replaceText,
    subdomains: subdomainsText,
  });
  if (!verify(null, Buffer.from(text, 'utf8'), publicKey, Buffer.from(signature, 'base64url'))) {
    return {
      ok: false,
      error: 'registration_bad_signature',
      reason: 'signature does not match the registration',
    };
  }
  const timestampSeconds = Number(timestamp);
  const skew = Math.abs(request.now / 1000 - timestampSeconds);
  if (skew > request.windowSeconds) {
    return {
      ok: false,
      error: 'registration_stale',
      reason: `timestamp is ${Math.round(skew)} s away from the relay's clock (allowed: ${request.windowSeconds} s); check the agent's clock`,
    };
  }
  return {
    ok: true,
    registration: {
      key,
      nonce,
      signature,
      timestampSeconds,
      services,
      access,
      setups,
      replace: replaceText === '1',
      subdomains,
    },
  };
}

/** Parses `name=<fingerprint>,…` for the registered services; the reason as a string when malformed. */
function parseSetups(text: string, services: readonly RequestedService[]): Record<string, string> | string {
  const setups: Record<string, string> = {};
  for (const part of text.split(',')) {
    const [name = '', fingerprint = '', extra] = part.split('=');
    if (extra !== undefined || !/^[A-Za-z0-9_-]{22}$/.test(fingerprint))
      return `${Header.setups} entry "${part}" is not name=<22 base64url characters>`;
    if (!services.some((s) => s.name === name))
      return `${Header.setups} names service "${name}", not registered`;
    if (Object.hasOwn(setups, name)) return `${Header.setups} lists "${name}" twice`;
    setups[name] = fingerprint;
  }
  return setups;
}

/** Parses `name=<subdomain>,…` for the registered services; the reason as a string when malformed. */
function parseSubdomains(
  text: string,
  services: readonly RequestedService[],
): Record<string, string> | string {
  const subdomains: Record<string, string> = {};
  const taken = new Set<string>();
  for (const part of text.split(',')) {
    const [name = '', subdomain = '', extra] = part.split('=');
    if (extra !== undefined || !isSubdomain(subdomain))
      return `${Header.subdomains} entry "${part}" is not name=<subdomain> (one DNS label, 1-63 of a-z, 0-9, -)`;
    if (!services.some((s) => s.name === name))
      return `${Header.subdomains} names service "${name}", not registered`;
    if (Object.hasOwn(subdomains, name) || taken.has(subdomain))
      return `${Header.subdomains} lists "${name}" or "${subdomain}" twice`;
    subdomains[name] = subdomain;
    taken.add(subdomain);
  }
  return subdomains;
}

/** Parses `name=kind,…`; returns the reason as a string when malformed. */
export function parseServices(text: string): RequestedService[] | string {
  const parts = text.split(',');
  if (text === '' || parts.length > MAX_SERVICES)
    return `${Header.services} must list 1 to ${MAX_SERVICES} services`;
  const seen = new Set<string>();
  const services: RequestedService[] = [];
  for (const part of parts) {
    const [name, kind, extra] = part.split('=');
    if (name === undefined || kind === undefined || extra !== undefined)
      return `service "${part}" is not name=kind`;
    if (!SERVICE_NAME.test(name)) return `service name "${name}" must be 1-32 of a-z, 0-9 and "-"`;
    if (!(SERVICE_KINDS as readonly string[]).includes(kind))
      return `service kind "${kind}" must be http, tcp or tls`;
    if (seen.has(name)) return `service "${name}" listed twice`;
    seen.add(name);
    services.push({ name, kind: kind as ServiceKind });
  }
  return services;
}
