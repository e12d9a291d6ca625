import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * How one cluster node proves to another that it holds the cluster secret (docs/cluster.md):
 *
 * 1. The dialing node's upgrade request names itself (`Postern-Node`) and carries
 *    `<unix seconds>.<nonce>.<HMAC>` over its id, **the receiving node's id**, the time and the
 *    nonce (`Postern-Node-Auth`): a stranger is refused before anything else, and a head recorded
 *    on one link is worthless on every other node.
 * 2. The receiving node answers 101 followed by 32 random bytes, a challenge; the dialing node
 *    sends back the HMAC of sender, receiver and challenge (32 bytes); the receiver answers `PSOK`.
 *    A recorded link can therefore never be replayed, not even to the same node after a restart,
 *    and no state (nonce cache, Redis) is needed for it.
 */

/** The path other nodes upgrade on, on the public listener (inside the base path). */
export const NODE_PATH = '/_postern/node';
export const NODE_UPGRADE_TOKEN = 'postern-node/2';
/** The header naming the dialing node, and the one carrying its proof. */
export const NODE_ID_HEADER = 'postern-node';
export const NODE_AUTH_HEADER = 'postern-node-auth';
/** Clocks of two nodes may differ by this much. */
export const NODE_AUTH_WINDOW_S = 60;
/** A cluster secret is at least this long. */
export const MIN_CLUSTER_SECRET_LENGTH = 16;
/** The receiver's challenge and the dialer's answer, bytes. */
export const LINK_CHALLENGE_BYTES = 32;
/** Flow-control windows of a node link: it carries many tunnels' streams at once. */
export const NODE_LINK_WINDOWS = { streamWindowBytes: 1 << 20, connectionWindowBytes: 16 << 20 };

function mac(secret: string, text: string, extra?: Buffer): Buffer {
  const hmac = createHmac('sha256', secret).update(text);
  if (extra !== undefined) hmac.update(extra);
  return hmac.digest();
}

/** `<unix seconds>.<nonce>.<HMAC-SHA256 of sender, receiver, time and nonce>`, base64url. */
export function nodeAuthValue(secret: string, id: string, receiver: string, now = Date.now()): string {
  const time = String(Math.floor(now / 1000));
  const nonce = randomBytes(16).toString('base64url');
  const proof = mac(secret, `postern-node-v2\n${id}\n${receiver}\n${time}\n${nonce}`);
  return `${time}.${nonce}.${proof.toString('base64url')}`;
}

/** Checks a dialing node's proof for this receiving node: the right secret, a time within the window. */
export function verifyNodeAuth(
  secret: string,
  id: string,
  receiver: string,
  value: string,
  now = Date.now(),
): { ok: true } | { ok: false; reason: string } {
  const parts = value.split('.');
  if (parts.length !== 3 || !/^\d{1,12}$/.test(parts[0] as string))
    return { ok: false, reason: 'malformed node proof' };
  const [time, nonce, given] = parts as [string, string, string];
  if (Math.abs(Number(time) - now / 1000) > NODE_AUTH_WINDOW_S)
    return { ok: false, reason: `node proof time is more than ${NODE_AUTH_WINDOW_S} s off` };
  return equal(
    Buffer.from(given, 'base64url'),
    mac(secret, `postern-node-v2\n${id}\n${receiver}\n${time}\n${nonce}`),
  )
    ? { ok: true }
    : { ok: false, reason: 'wrong cluster secret (or a proof made for another node)' };
}

export function newLinkChallenge(): Buffer {
  return randomBytes(LINK_CHALLENGE_BYTES);
}

/** The dialing node's answer to the receiving node's challenge on this link. */
export function linkAnswer(secret: string, sender: string, receiver: string, challenge: Buffer): Buffer {
  return mac(secret, `postern-node-link-v2\n${sender}\n${receiver}\n`, challenge);
}

export function linkAnswerMatches(
  secret: string,
  sender: string,
  receiver: string,
  challenge: Buffer,
  answer: Buffer,
): boolean {
  return equal(answer, linkAnswer(secret, sender, receiver, challenge));
}

function equal(given: Buffer, wanted: Buffer): boolean {
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}
