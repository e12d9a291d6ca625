/**
 * The agent ↔ relay wire protocol, version 3 — everything both sides must agree on, in one place.
 * docs/protocol.md describes it for people who write another agent.
 *
 * 1. Agent → relay: `GET /_postern/agent HTTP/1.1` with `Connection: Upgrade`,
 *    `Upgrade: postern-session/3` and the registration headers below, signed with the agent's
 *    ed25519 key over `signedString()`.
 * 2. Relay → agent: `101 Switching Protocols` with `Postern-Assigned` (JSON list of the services'
 *    labels and public URLs) and `Postern-Challenge`, or an error status (400, 401, 403, 429, 503)
 *    with a one-line reason in the body and in `Postern-Error`; no upgrade then.
 * 3. Agent → relay: 64 bytes, its signature of the challenge (possession-proof.ts); relay → agent:
 *    `PSOK`. A registration recorded on the wire cannot answer a new challenge.
 * 4. Then the connection carries Postern's session framing (src/mux/): the relay opens
 *    streams, the agent answers them. Each visitor request is one stream; `postern-service` names
 *    the agent's service. (Version 1 ran HTTP/2 here; version 2 replaced it, docs/protocol.md.)
 * 5. Either side PINGs every keepalive interval and closes a session whose PING is not answered in
 *    time; GOAWAY announces an orderly shutdown.
 */
export const AGENT_PATH = '/_postern/agent';
export const SESSION_UPGRADE_TOKEN = 'postern-session/3';
/**
 * The largest binary message either side accepts on a WebSocket session. Senders cut their
 * batches into messages of at most 256 KiB (websocket-stream.ts), well inside it.
 */
export const MAX_SESSION_MESSAGE_BYTES = 1 << 20;
export const PROTOCOL_VERSION = '3';
/**
 * Header fields one stream's request or response head may carry, both ways: what Node's HTTP/1.1 parser keeps
 * (2 000) plus room for pseudo-headers and the forwarding headers the relay adds.
 */
export const MAX_HEADER_PAIRS = 2_048;
export const SIGNED_STRING_TAG = 'POSTERN-REGISTRATION-V1';

export const Header = {
  /** Agent → relay: protocol version, "3". */
  version: 'postern-version',
  /** Agent → relay: ed25519 public key, raw 32 bytes in base64url (the JWK `x`). */
  key: 'postern-key',
  /** Agent → relay: Unix time in whole seconds when the registration was signed. */
  timestamp: 'postern-timestamp',
  /** Agent → relay: 16–48 random bytes, base64url; never reused within the time window. */
  nonce: 'postern-nonce',
  /** Agent → relay: the services requested, `name=kind` joined by commas (`default=http`). */
  services: 'postern-services',
  /**
   * Agent → relay, optional: visitor access rules by service (JSON, see access.ts). Signed with
   * the rest, so no one on the way can loosen them.
   */
  access: 'postern-access',
  /**
   * Agent → relay, optional: a fingerprint of each service's setup (target and access options),
   * `name=<fp>` joined by commas (registration.ts serviceFingerprint()). The relay never learns
   * the setup; it only compares fingerprints, so a second agent of the same key cannot silently
   * change a live service.
   */
  setups: 'postern-setups',
  /** Agent → relay, optional: `1` takes the services over from live sessions that differ. */
  replace: 'postern-replace',
  /**
   * Agent → relay, optional: the names services ask for instead of their key-derived labels,
   * `name=<subdomain>` joined by commas (`web=myapp` → myapp.<domain>).
   */
  subdomains: 'postern-subdomains',
  /** Agent → relay: ed25519 signature of signedString(), base64url. */
  signature: 'postern-signature',
  /** Relay → agent (101): JSON array of AssignedService. */
  assigned: 'postern-assigned',
  /** Relay → agent (101): 32 random bytes, base64url, the agent signs to prove its key on this connection. */
  challenge: 'postern-challenge',
  /** Relay → visitor and agent → relay on errors: a stable error code (see docs/protocol.md). */
  error: 'postern-error',
  /** Relay → agent on every stream: the name of the service the stream is for. */
  service: 'postern-service',
  /**
   * Relay → agent: this stream carries an HTTP Upgrade (value: the visitor's Upgrade token, e.g.
   * `websocket`); hop-by-hop Upgrade/Connection headers are not carried themselves.
   */
  upgrade: 'postern-upgrade',
  /**
   * Agent → relay, on a 200 answering an upgrade stream: the target's real status, `101` when it
   * switched protocols (a stream's head is never a 101); the stream then carries raw bytes both ways.
   */
  status: 'postern-status',
} as const;

/** http: requests and upgrades; tcp: preflight upgrades only; tls: TLS passthrough by SNI (and preflights). */
export const SERVICE_KINDS = ['http', 'tcp', 'tls'] as const;
export type ServiceKind = (typeof SERVICE_KINDS)[number];

export interface RequestedService {
  name: string;
  kind: ServiceKind;
}

export interface AssignedService extends RequestedService {
  label: string;
  /** The public URL visitors use, as the relay knows it. */
  url: string;
  /**
   * The same tunnel by path (`http://127.0.0.1:8080/<label>/`), for clients that do not resolve
   * `*.localhost` (Node's fetch and ws, Python on glibc); older relays leave it out.
   */
  pathUrl?: string;
  /** TCP services: the connection string a client dials (`tcp://<label>.<domain>:<port>?http_preflight=true`). */
  connect?: string;
  /** The visitor checks the relay enforces for it ('basic', 'bearer', 'header', 'ip'), when any. */
  access?: string[];
}

/** The host part of a Host header, lowercased, without port or trailing dot. */
export function hostName(hostHeader: string): string {
  const host = hostHeader.toLowerCase();
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d*$/, '');
  return name.replace(/\.$/, '');
}

/**
 * What the agent signs: every registration field plus the request line and the Host name, one per
 * line. The Host's port is left out because proxies in front of a relay (nginx's `$host`) drop it.
 * Access rules, when sent, add a line `access:<value>`: a registration signed without them
 * cannot have them added, and one signed with them cannot have them taken away. Setup
 * fingerprints, a replace request and chosen subdomains add `setups:<value>`, `replace:<value>`
 * and `subdomains:<value>` the same way.
 */
export function signedString(fields: {
  method: string;
  path: string;
  host: string;
  key: string;
  timestamp: string;
  nonce: string;
  services: string;
  access?: string | undefined;
  setups?: string | undefined;
  replace?: string | undefined;
  subdomains?: string | undefined;
}): string {
  const lines = [
    SIGNED_STRING_TAG,
    fields.method.toUpperCase(),
    fields.path,
    hostName(fields.host),
    fields.key,
    fields.timestamp,
    fields.nonce,
    fields.services,
  ];
  if (fields.access !== undefined) lines.push(`access:${fields.access}`);
  if (fields.setups !== undefined) lines.push(`setups:${fields.setups}`);
  if (fields.replace !== undefined) lines.push(`replace:${fields.replace}`);
  if (fields.subdomains !== undefined) lines.push(`subdomains:${fields.subdomains}`);
  return lines.join('\n');
}
