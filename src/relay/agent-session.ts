import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import type { MuxHeaders } from '../mux/header-block.js';
import type { MuxSession } from '../mux/mux-session.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { startMuxSession } from '../session/mux-session-setup.js';
import type { AssignedService } from '../session/protocol.js';
import type { VisitorAccess } from './visitor-access.js';

export type AgentSessionState = 'ready' | 'draining' | 'closed';

/** Past this stream id a session is drained and replaced: ids run out at 2^31. */
const STREAM_ID_DRAIN_AT = 2 ** 31 - 2 ** 20;

/**
 * The relay's end of one agent connection: the multiplexer's client session over the upgraded socket
 * (docs/protocol.md §3), with its keepalive and lifecycle. Emits 'state' on every change.
 */
export class AgentSession extends EventEmitter {
  readonly id: string;
  readonly keyLabel: string;
  readonly services: readonly AssignedService[];
  /** Visitor access rules by service name (services without rules are open). */
  readonly access: ReadonlyMap<string, VisitorAccess>;
  /** What each service serves and how it is guarded (registration.ts serviceSetup()), by name. */
  readonly setups: ReadonlyMap<string, string>;
  /** Registered with `replace`: live sessions of its services that differ are closed for it. */
  readonly replace: boolean;
  readonly remoteAddress: string;
  readonly log: Logger;
  #state: AgentSessionState = 'ready';
  #activeStreams = 0;
  readonly #mux: MuxSession;

  constructor(options: {
    id: string;
    keyLabel: string;
    services: readonly AssignedService[];
    access?: ReadonlyMap<string, VisitorAccess>;
    setups?: ReadonlyMap<string, string>;
    replace?: boolean;
    remoteAddress: string;
    socket: Duplex;
    streamWindowBytes: number;
    connectionWindowBytes: number;
    keepalive: { intervalMs: number; timeoutMs: number };
    log: Logger;
  }) {
    super();
    this.id = options.id;
    this.keyLabel = options.keyLabel;
    this.services = options.services;
    this.access = options.access ?? new Map();
    this.setups = options.setups ?? new Map();
    this.replace = options.replace ?? false;
    this.remoteAddress = options.remoteAddress;
    this.log = options.log;
    this.#mux = startMuxSession(options.socket, {
      role: 'client',
      streamWindowBytes: options.streamWindowBytes,
      connectionWindowBytes: options.connectionWindowBytes,
      // The relay never accepts streams from the agent.
      maxConcurrentStreams: 0,
      log: this.log,
      name: 'agent session',
      keepalive: options.keepalive,
    });
    // A GOAWAY from the agent (its shutdown, or a protocol error it saw) ends the session: close
    // our side too once open streams finish, so the agent notices and opens a fresh one.
    this.#mux.once('goaway', () => this.close());
    this.#mux.once('close', () => this.#setState('closed'));
  }

  get state(): AgentSessionState {
    return this.#state;
  }

  get activeStreams(): number {
    return this.#activeStreams;
  }

  /** The connection failed (reset, keepalive timeout, destroyed): not an orderly GOAWAY. */
  get broken(): boolean {
    return this.#mux.destroyed;
  }

  /** Whether new streams may be opened on this session. */
  get usable(): boolean {
    if (this.#state !== 'ready' || this.broken) return false;
    if (this.#mux.nextStreamId > STREAM_ID_DRAIN_AT) {
      this.log.info('stream ids nearly used up; draining the session so the agent opens a new one');
      this.close();
      return false;
    }
    return true;
  }

  /** Opens one stream to the agent; throws when the session cannot take it. */
  openStream(headers: MuxHeaders, options: { endStream: boolean }): MuxStream {
    const stream = this.#mux.request(headers, { endStream: options.endStream });
    this.#activeStreams++;
    stream.once('close', () => this.#activeStreams--);
    return stream;
  }

  /** Orderly: GOAWAY, let open streams finish. */
  close(): void {
    if (this.#state === 'ready') this.#setState('draining');
    this.#mux.close();
  }

  destroy(): void {
    this.#mux.destroy();
  }

  #setState(state: AgentSessionState): void {
    if (this.#state === state || this.#state === 'closed') return;
    this.#state = state;
    this.emit('state', state);
  }
}
