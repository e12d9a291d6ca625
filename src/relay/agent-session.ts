import { EventEmitter } from 'node:events';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants as h2,
  connect as http2Connect,
  type OutgoingHttpHeaders,
} from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import { startKeepalive } from '../session/keepalive.js';
import { type AssignedService, MAX_HEADER_PAIRS } from '../session/protocol.js';
import type { VisitorAccess } from './visitor-access.js';

export type AgentSessionState = 'ready' | 'draining' | 'closed';

/** Past this stream id a session is drained and replaced: h2 ids run out at 2^31. */
const STREAM_ID_DRAIN_AT = 2 ** 31 - 2 ** 20;

/**
 * The relay's end of one agent connection: the HTTP/2 client session over the upgraded socket
 * (DESIGN §3.3), with its keepalive and lifecycle. Emits 'state' on every change.
 */
export class AgentSession extends EventEmitter {
  readonly id: string;
  readonly keyLabel: string;
  readonly services: readonly AssignedService[];
  /** Visitor access rules by service name (services without rules are open). */
  readonly access: ReadonlyMap<string, VisitorAccess>;
  readonly remoteAddress: string;
  readonly log: Logger;
  #state: AgentSessionState = 'ready';
  #activeStreams = 0;
  readonly #h2: ClientHttp2Session;
  readonly #socket: Duplex;

  constructor(options: {
    id: string;
    keyLabel: string;
    services: readonly AssignedService[];
    access?: ReadonlyMap<string, VisitorAccess>;
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
    this.remoteAddress = options.remoteAddress;
    this.log = options.log;
    this.#socket = options.socket;
    // An http.Server socket allows half-open; when the agent dies the relay would get 'end' and sit
    // in CLOSE-WAIT with requests hanging (DESIGN §3.4 hazard b). A session cannot live half-closed.
    options.socket.on('end', () => options.socket.destroy());
    this.#h2 = http2Connect('http://postern-agent', {
      createConnection: () => options.socket,
      settings: { initialWindowSize: options.streamWindowBytes, enablePush: false },
      maxSessionMemory: 64,
      maxHeaderListPairs: MAX_HEADER_PAIRS,
    });
    this.#h2.once('connect', () => this.#h2.setLocalWindowSize(options.connectionWindowBytes));
    this.#h2.on('error', (error) => this.log.debug('agent session error', { error: error.message }));
    // A GOAWAY from the agent (its shutdown, or an HTTP/2 error it saw) ends the session: close
    // our side too once open streams finish, so the agent notices and opens a fresh one.
    this.#h2.once('goaway', () => this.close());
    this.#h2.once('close', () => this.#setState('closed'));
    startKeepalive(this.#h2, options.keepalive, (reason) => {
      this.log.warn('agent session dead', { reason });
      this.destroy();
    });
  }

  get state(): AgentSessionState {
    return this.#state;
  }

  get activeStreams(): number {
    return this.#activeStreams;
  }

  /** The connection failed (reset, keepalive timeout, destroyed): not an orderly GOAWAY. */
  get broken(): boolean {
    return this.#h2.destroyed;
  }

  /** Whether new streams may be opened on this session. */
  get usable(): boolean {
    if (this.#state !== 'ready' || this.broken) return false;
    const next = this.#h2.state.nextStreamID;
    if (next !== undefined && next > STREAM_ID_DRAIN_AT) {
      this.log.info('stream ids nearly used up; draining the session so the agent opens a new one');
      this.close();
      return false;
    }
    return true;
  }

  /** Opens one stream to the agent; throws when the session cannot take it. */
  openStream(headers: OutgoingHttpHeaders, options: { endStream: boolean }): ClientHttp2Stream {
    const stream = this.#h2.request(headers, { endStream: options.endStream });
    this.#activeStreams++;
    stream.once('close', () => this.#activeStreams--);
    return stream;
  }

  /** Orderly: GOAWAY, let open streams finish. */
  close(): void {
    if (this.#state === 'ready') this.#setState('draining');
    if (!this.#h2.closed) this.#h2.close();
  }

  destroy(): void {
    this.#h2.destroy(undefined, h2.NGHTTP2_CANCEL);
    this.#socket.destroy();
  }

  #setState(state: AgentSessionState): void {
    if (this.#state === state || this.#state === 'closed') return;
    this.#state = state;
    this.emit('state', state);
  }
}
