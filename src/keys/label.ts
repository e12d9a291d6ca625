import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { OptionError } from '../errors.js';
import { base32LowerNoPad } from './base32.js';

/** Length of every label: base32 of a SHA-256 digest, 256 bits / 5 rounded up. */
export const LABEL_LENGTH = 52;
/** Service names an agent may publish under one key: DNS-label friendly, short. */
export const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
/**
 * A name a service may ask for instead of its key-derived label (`--subdomain`): one DNS label
 * (1-63 of a-z, 0-9, `-`, not starting or ending with `-`) that is not shaped like a key label,
 * so the two kinds of name never meet.
 */
export function isSubdomain(text: string): boolean {
  return /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(text) && !KEY_SHAPED.test(text);
}
const KEY_SHAPED = /^[a-z2-7]{52}$/;

/** The service published when the agent names none; it takes the key's own label. */
export const DEFAULT_SERVICE = 'default';

/** The raw 32-byte ed25519 public key, base64url (the JWK `x` member). */
export function publicKeyX(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
    throw new OptionError('expected an ed25519 public key');
  }
  return jwk.x;
}

/**
 * Whether `x` is the one base64url spelling of a 32-byte key: 43 characters whose last one carries
 * two unused bits that must be zero. Decoders ignore those bits, so without this check one key
 * would have four spellings, and the label (computed from the text) four labels.
 */
export function isCanonicalKeyX(x: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(x) && Buffer.from(x, 'base64url').toString('base64url') === x;
}

/** Rebuilds a public key object from its base64url raw form (as sent in registration headers). */
export function publicKeyFromX(x: string): KeyObject {
  if (!isCanonicalKeyX(x)) throw new OptionError('an ed25519 public key is 32 bytes in canonical base64url');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
}

/**
 * The key's label: lowercase base32 (no padding) of the RFC 7638 JWK SHA-256 thumbprint. For
 * ed25519 (RFC 8037 §2) the thumbprint input is exactly {"crv":"Ed25519","kty":"OKP","x":"…"}.
 */
export function keyLabel(publicKey: KeyObject): string {
  return keyLabelFromX(publicKeyX(publicKey));
}

export function keyLabelFromX(x: string): string {
  const thumbprintInput = `{"crv":"Ed25519","kty":"OKP","x":"${x}"}`;
  return base32LowerNoPad(createHash('sha256').update(thumbprintInput, 'utf8').digest());
}

/**
 * The label of a named service of a key (docs/protocol.md §2): base32(SHA-256(keyLabel ‖ name)). The default
 * service uses the key label itself, so a one-service agent's hostname is its key's label.
 */
export function serviceLabel(keyLabelText: string, serviceName: string): string {
  if (serviceName === DEFAULT_SERVICE) return keyLabelText;
  return base32LowerNoPad(
    createHash('sha256')
      .update(keyLabelText + serviceName, 'utf8')
      .digest(),
  );
}
