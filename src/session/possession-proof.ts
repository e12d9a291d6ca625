import { type KeyObject, randomBytes, sign, verify } from 'node:crypto';
import { publicKeyFromX } from '../keys/label.js';

/**
 * Proof that the agent holds its key on *this* connection (docs/protocol.md §1, "Proof of
 * possession"). A registration head is signed once and could be recorded on a plaintext link and
 * replayed later — after a relay restart or on another cluster node, where no nonce cache
 * remembers it. So the relay's 101 carries a fresh random challenge, and before the relay routes
 * anything to the session the agent must send, as the session's first 64 bytes, its signature of
 * the challenge bound to the registration's own signature. The relay answers with
 * `PROOF_ACCEPTED`; only then does either side start the session framing.
 */
export const PROOF_TAG = 'POSTERN-SESSION-PROOF-V1';
/** An ed25519 signature. */
export const PROOF_BYTES = 64;
/** The relay's answer to a good proof: the four bytes before the first session frame. */
export const PROOF_ACCEPTED = Buffer.from('PSOK', 'latin1');
/** Challenges are 32 random bytes, base64url (43 characters). */
const CHALLENGE_BYTES = 32;
export const CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

export function newChallenge(): string {
  return randomBytes(CHALLENGE_BYTES).toString('base64url');
}

function proofText(challenge: string, registrationSignature: string): Buffer {
  return Buffer.from(`${PROOF_TAG}\n${challenge}\n${registrationSignature}`, 'utf8');
}

/** The agent's 64 bytes for `challenge`, bound to the registration it answers. */
export function signPossession(
  privateKey: KeyObject,
  challenge: string,
  registrationSignature: string,
): Buffer {
  return sign(null, proofText(challenge, registrationSignature), privateKey);
}

/** Whether `proof` is the registered key's signature of `challenge` for this registration. */
export function verifyPossession(
  keyX: string,
  challenge: string,
  registrationSignature: string,
  proof: Buffer,
): boolean {
  return (
    proof.length === PROOF_BYTES &&
    verify(null, proofText(challenge, registrationSignature), publicKeyFromX(keyX), proof)
  );
}
