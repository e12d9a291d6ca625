import type { PosternError } from '../errors.js';
import type { AssignedService } from '../session/protocol.js';

/** What an agent tells its embedder, by event name. `connection` counts its sessions from 0. */
export interface AgentEvents {
  /** A session registered; `services` as the relay assigned them (names, labels, URLs). */
  connected: [event: { connection: number; services: AssignedService[] }];
  /** A session ended or could not be set up; `relay` is the address it used, secrets redacted. */
  disconnected: [event: { connection: number; relay: string; reason: string }];
  /** The next attempt of that session starts after `delayMs` (backoff with jitter). */
  reconnecting: [event: { connection: number; attempt: number; delayMs: number }];
  /** The relay refused the agent for good (a key not admitted, a conflict): the agent has stopped. */
  fatal: [error: PosternError];
  /**
   * A service's target stopped answering (`reachable: false`, with the error: visitors get 502
   * target_unreachable meanwhile) or answers again. Said once per change, not per request.
   */
  target: [event: { service: string; target: string; reachable: boolean; reason?: string }];
  /** An HTTP target has answered a request; only emitted while someone listens. */
  request: [event: AgentRequestEvent];
}

export interface AgentRequestEvent {
  service: string;
  method: string;
  path: string;
  status: number;
  durationMs: number;
}
