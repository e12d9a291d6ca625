import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** The path other nodes upgrade on, on the public listener (inside the base path). */
export const NODE_PATH = '/_postern/node';
export const NODE_UPGRADE_TOKEN = 'postern-node/1';
/** The header naming the dialing node, and the one carrying its proof. */
export const NODE_ID_HEADER = 'postern-node';
export const NODE_AUTH_HEADER = 'postern-node-auth';
/** Clocks of two nodes may differ by this much. */
export const NODE_AUTH_WINDOW_S = 60;
/** A cluster secret is at least this long. */
export const MIN_CLUSTER_SECRET_LENGTH = 16;

function proof(secret: string, id: string, time: string, nonce: string): Buffer {
  return createHmac('sha256', secret).update(`postern-node-v1\n${id}\n${time}\n${nonce}`).digest();
}

/** `<unix seconds>.<nonce>.<HMAC-SHA256 of id, time and nonce under the cluster secret>`, base64url. */
export function nodeAuthValue(secret: string, id: string, now = Date.now()): string {
  const time = String(Math.floor(now / 1000));
  const nonce = randomBytes(16).toString('base64url');
  return `${time}.${nonce}.${proof(secret, id, time, nonce).toString('base64url')}`;
}

/**
 * Checks a dialing node's proof: the right secret, a time within the window. Returns the nonce (to
 * be refused if seen again) or why it fails.
 */
export function verifyNodeAuth(
  secret: string,
  id: string,
  value: string,
  now = Date.now(),
): { ok: true; nonce: string } | { ok: false; reason: string } {
  const parts = value.split('.');
  if (parts.length !== 3 || !/^\d{1,12}$/.test(parts[0] as string))
    return { ok: false, reason: 'malformed node proof' };
  const [time, nonce, mac] = parts as [string, string, string];
  if (Math.abs(Number(time) - now / 1000) > NODE_AUTH_WINDOW_S)
    return { ok: false, reason: `node proof time is more than ${NODE_AUTH_WINDOW_S} s off` };
  const given = Buffer.from(mac, 'base64url');
  const wanted = proof(secret, id, time, nonce);
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted))
    return { ok: false, reason: 'wrong cluster secret' };
  return { ok: true, nonce: `${id}:${nonce}` };
}
