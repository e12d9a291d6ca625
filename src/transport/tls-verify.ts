import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { ConnectionString } from '../connection-string/index.js';
import { OptionError, PosternError } from '../errors.js';

export interface TlsVerifyOptions {
  servername?: string;
  ca?: Buffer;
  checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
}

/**
 * The TLS client options a connection string asks for: the name to send and verify (`sni=`, else
 * the host unless it is an IP address), the CAs to trust (`ca=`, else the system's), and the
 * public-key pins (`pin=`), checked after the usual name and chain checks pass.
 */
export function tlsVerifyOptions(cs: ConnectionString): TlsVerifyOptions {
  const out: TlsVerifyOptions = {};
  const servername = cs.sni ?? (isIP(cs.host) === 0 ? cs.host : undefined);
  if (servername !== undefined) out.servername = servername;
  if (cs.ca !== undefined) out.ca = readCa(cs.ca);
  const pins = cs.pin;
  if (pins !== undefined) {
    out.checkServerIdentity = (host, cert) => {
      const usual = checkServerIdentity(host, cert);
      if (usual !== undefined) return usual;
      const actual = publicKeyPin(cert);
      if (pins.includes(actual)) return undefined;
      return new PosternError(
        'POSTERN_PIN_MISMATCH',
        `the server's public key ${actual} is not one of the pinned keys (pin=${pins.join(',')})`,
      );
    };
  }
  return out;
}

/** `sha256/<base64>` of a certificate's DER SubjectPublicKeyInfo: what `pin=` compares against. */
export function publicKeyPin(cert: PeerCertificate): string {
  // Not cert.pubkey: for EC keys that is the bare point, not the SubjectPublicKeyInfo pins hash.
  const spki = new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256/${createHash('sha256').update(spki).digest('base64')}`;
}

function readCa(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new OptionError(`cannot read CA file ${path} (from ca=): ${(error as NodeJS.ErrnoException).code}`);
  }
}
