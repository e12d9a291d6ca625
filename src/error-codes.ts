/**
 * Every error code anyone outside Postern can see, in one table: the `code` of a PosternError that
 * a library call rejects with or the CLI prints (`POSTERN_*`), and the `Postern-Error` a visitor,
 * an agent or another relay node gets with an HTTP status (snake_case, on the wire). docs/errors.md
 * lists the same codes; test/error-catalogue.test.ts keeps the two equal.
 *
 * `retryable`: whether the same attempt may succeed later without anyone changing anything. A
 * PosternError may say otherwise for one occurrence (a preflight refused with 503 is retryable,
 * with 403 it is not).
 */
export const ERROR_CATALOGUE = {
  // --- Library and CLI: PosternError.code, and `code` of the CLI's --json error events ---
  POSTERN_BAD_CONNECTION_STRING: { audience: 'caller', retryable: false },
  POSTERN_BAD_OPTION: { audience: 'caller', retryable: false },
  POSTERN_USAGE: { audience: 'caller', retryable: false },
  POSTERN_BAD_KEY_FILE: { audience: 'caller', retryable: false },
  POSTERN_BAD_HEADER: { audience: 'caller', retryable: false },
  POSTERN_CONNECT_FAILED: { audience: 'caller', retryable: true },
  POSTERN_PIN_MISMATCH: { audience: 'caller', retryable: false },
  POSTERN_PREFLIGHT_REFUSED: { audience: 'caller', retryable: false },
  POSTERN_PREFLIGHT_FAILED: { audience: 'caller', retryable: true },
  POSTERN_UPGRADE_REFUSED: { audience: 'caller', retryable: true },
  POSTERN_REGISTRATION_REJECTED: { audience: 'caller', retryable: true },
  POSTERN_READY_TIMEOUT: { audience: 'caller', retryable: true },
  POSTERN_ABORTED: { audience: 'caller', retryable: false },
  POSTERN_SESSION_CLOSED: { audience: 'caller', retryable: true },
  POSTERN_STREAM_LIMIT: { audience: 'caller', retryable: true },
  POSTERN_HEADERS_TOO_LARGE: { audience: 'caller', retryable: false },
  POSTERN_INSPECT_LISTEN: { audience: 'caller', retryable: false },
  POSTERN_REPLAY: { audience: 'caller', retryable: false },
  POSTERN_REPLAY_FAILED: { audience: 'caller', retryable: true },
  POSTERN_IGNORED_OPTION: { audience: 'caller', retryable: false },
  POSTERN_ERROR: { audience: 'caller', retryable: false },

  // --- Visitors of a tunnel: the relay's answer, with `Postern-Error: <code>` ---
  bad_request: { audience: 'visitor', status: 400, retryable: false },
  upgrade_required: { audience: 'visitor', status: 426, retryable: false },
  access_unauthorized: { audience: 'visitor', status: 401, retryable: false },
  access_denied: { audience: 'visitor', status: 403, retryable: false },
  access_rate_limited: { audience: 'visitor', status: 429, retryable: true },
  tunnel_not_found: { audience: 'visitor', status: 404, retryable: false },
  body_too_large: { audience: 'visitor', status: 413, retryable: false },
  rate_limited: { audience: 'visitor', status: 429, retryable: true },
  too_many_streams: { audience: 'visitor', status: 429, retryable: true },
  request_head_too_large: { audience: 'visitor', status: 431, retryable: false },
  target_unreachable: { audience: 'visitor', status: 502, retryable: true },
  agent_error: { audience: 'visitor', status: 502, retryable: true },
  tunnel_offline: { audience: 'visitor', status: 503, retryable: true },
  cluster_unavailable: { audience: 'visitor', status: 503, retryable: true },
  relay_busy: { audience: 'visitor', status: 503, retryable: true },
  response_timeout: { audience: 'visitor', status: 504, retryable: true },
  target_stalled: { audience: 'visitor', status: 504, retryable: true },

  // --- Agents registering (docs/protocol.md §1): the agent retries exactly the retryable ones ---
  registration_malformed: { audience: 'agent', status: 400, retryable: false },
  registration_bad_signature: { audience: 'agent', status: 401, retryable: true },
  registration_stale: { audience: 'agent', status: 401, retryable: true },
  registration_replayed: { audience: 'agent', status: 401, retryable: true },
  registration_not_admitted: { audience: 'agent', status: 403, retryable: false },
  registration_conflict: { audience: 'agent', status: 409, retryable: false },
  service_unsupported: { audience: 'agent', status: 422, retryable: false },
  subdomain_taken: { audience: 'agent', status: 409, retryable: false },
  registration_rate_limited: { audience: 'agent', status: 429, retryable: true },
  registration_too_many_sessions: { audience: 'agent', status: 429, retryable: true },
  relay_shutting_down: { audience: 'agent', status: 503, retryable: true },

  // --- Relay nodes linking to each other in cluster mode ---
  node_refused: { audience: 'node', status: 403, retryable: false },
} as const satisfies Record<string, CatalogueEntry>;

interface CatalogueEntry {
  /** Who meets the code: a program or user of the library and CLI, a visitor, an agent, a node. */
  readonly audience: 'caller' | 'visitor' | 'agent' | 'node';
  /** The HTTP status that carries the code (every code but the callers'). */
  readonly status?: number;
  readonly retryable: boolean;
}

/** Any code in the catalogue. */
export type PosternErrorCode = keyof typeof ERROR_CATALOGUE;

/** The codes that travel in `Postern-Error`, with an HTTP status. */
export type WireErrorCode = {
  [K in PosternErrorCode]: (typeof ERROR_CATALOGUE)[K] extends { status: number } ? K : never;
}[PosternErrorCode];

/** The HTTP status of a wire code. */
export function statusOf(code: WireErrorCode): number {
  return ERROR_CATALOGUE[code].status;
}

/** Whether `text` (say, a `Postern-Error` header from the network) is a code of the catalogue. */
export function isErrorCode(text: string): text is PosternErrorCode {
  return Object.hasOwn(ERROR_CATALOGUE, text);
}
