import { connect, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import type { ConnectionString } from '../connection-string/index.js';
import { localhostLookup } from '../transport/localhost-lookup.js';

/** Who a pooled connection's events go to while it carries a request. */
export interface ConnectionUser {
  read(chunk: Buffer): void;
  /** The target closed its side. */
  ended(): void;
  /** The socket is gone; `error` says why when it failed (never after `ended` without one). */
  closed(error: NodeJS.ErrnoException | undefined): void;
}

export interface TargetPoolOptions {
  /** Idle connections kept for reuse (the agent option `maxIdleTargetSockets`, default 64); more are closed. */
  maxIdle: number;
  /** How long connecting may take before it fails with ETIMEDOUT. */
  connectTimeoutMs: number;
  /**
   * How long an idle connection is kept. Default 4 s: below the 5 s that Node's and many other
   * servers wait before closing an idle connection, so the agent does not write a request to a
   * connection the target is closing. A target's `Keep-Alive: timeout=N` shortens it to N − 1 s.
   */
  idleTimeoutMs?: number;
  /** For an https:// target: the name to verify and the CA to trust. */
  tls?: { servername?: string; ca?: Buffer };
}

export const DEFAULT_IDLE_TIMEOUT_MS = 4000;

/** One connection to the target; its listeners are added once and serve every request it carries. */
export class PooledConnection {
  readonly socket: Socket;
  user: ConnectionUser | undefined;
  /** How many requests it has been given, this one included. */
  carried = 0;
  /** Set while idle: when it was put back and how long it may stay. */
  idleSince = 0;
  idleLimitMs = 0;
  #error: NodeJS.ErrnoException | undefined;

  constructor(socket: Socket, onGone: (connection: PooledConnection) => void) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      // A target that speaks while no request is out has broken the exchange: never reuse it.
      if (this.user === undefined) socket.destroy();
      else this.user.read(chunk);
    });
    socket.on('end', () => {
      if (this.user === undefined) socket.destroy();
      else this.user.ended();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.#error = error;
    });
    socket.on('close', () => {
      onGone(this);
      const user = this.user;
      this.user = undefined;
      user?.closed(this.#error);
    });
  }
}

/**
 * Keep-alive connections to one http://, https:// or unix:// target, for the agent's own HTTP/1.1
 * client (pooled-request.ts): the most recently used idle connection first, so a burst after a
 * quiet spell finds a warm one and the rest time out. An https:// target is verified against its
 * own name (or `sni=`), never the visitor's Host, and the last TLS session is offered again so a
 * new connection resumes instead of a full handshake.
 */
export class TargetPool {
  readonly #target: ConnectionString;
  readonly #options: Required<Omit<TargetPoolOptions, 'tls'>>;
  readonly #tls: TargetPoolOptions['tls'];
  #tlsSession: Buffer | undefined;
  readonly #idle: PooledConnection[] = [];
  readonly #all = new Set<PooledConnection>();
  #sweep: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(target: ConnectionString, options: TargetPoolOptions) {
    this.#target = target;
    const { tls, ...rest } = options;
    this.#options = { idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS, ...rest };
    this.#tls = tls;
  }

  /**
   * A connection for `user`: an idle one if one is still fresh, else (or when `fresh`) a new one.
   * Its `carried` count says whether it served requests before.
   */
  take(user: ConnectionUser, fresh = false): PooledConnection {
    const now = Date.now();
    for (let idle = fresh ? undefined : this.#idle.pop(); idle !== undefined; idle = this.#idle.pop()) {
      if (now - idle.idleSince < idle.idleLimitMs && !idle.socket.destroyed) {
        idle.user = user;
        idle.carried++;
        return idle;
      }
      idle.socket.destroy();
    }
    const connection = this.#open();
    connection.user = user;
    connection.carried = 1;
    return connection;
  }

  /** Puts a connection whose response ended cleanly back for the next request. */
  give(connection: PooledConnection, keepAliveMs: number | undefined): void {
    connection.user = undefined;
    const limit = Math.min(
      this.#options.idleTimeoutMs,
      keepAliveMs === undefined ? Infinity : keepAliveMs - 1000,
    );
    if (
      this.#closed ||
      limit <= 0 ||
      this.#idle.length >= this.#options.maxIdle ||
      connection.socket.destroyed
    ) {
      connection.socket.destroy();
      return;
    }
    connection.idleSince = Date.now();
    connection.idleLimitMs = limit;
    // A paused socket would not see the target close it.
    connection.socket.resume();
    this.#idle.push(connection);
    this.#sweep ??= setTimeout(() => this.#closeExpired(), this.#options.idleTimeoutMs).unref();
  }

  /** Closes every connection, idle or carrying a request. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#sweep);
    for (const connection of this.#all) connection.socket.destroy();
  }

  #open(): PooledConnection {
    const target = this.#target;
    let socket: Socket;
    if (target.transport === 'unix') socket = connect({ path: target.socketPath as string });
    else if (target.transport === 'https') socket = this.#openTls();
    else socket = connect({ host: target.host, port: target.port, lookup: localhostLookup, noDelay: true });
    const connection = new PooledConnection(socket, (gone) => this.#forget(gone));
    this.#all.add(connection);
    // Bounds the TLS handshake too: a target that accepts and then says nothing fails the same way.
    const timer = setTimeout(() => {
      socket.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
    }, this.#options.connectTimeoutMs);
    socket.once(target.transport === 'https' ? 'secureConnect' : 'connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
    if (this.#closed) socket.destroy();
    return connection;
  }

  #openTls(): TLSSocket {
    const target = this.#target;
    const socket = connectTls({
      host: target.host,
      port: target.port,
      lookup: localhostLookup,
      ALPNProtocols: ['http/1.1'],
      ...this.#tls,
      ...(this.#tlsSession === undefined ? {} : { session: this.#tlsSession }),
    });
    socket.setNoDelay(true);
    socket.on('session', (session: Buffer) => {
      this.#tlsSession = session;
    });
    return socket;
  }

  #forget(connection: PooledConnection): void {
    this.#all.delete(connection);
    const at = this.#idle.indexOf(connection);
    if (at !== -1) this.#idle.splice(at, 1);
  }

  #closeExpired(): void {
    this.#sweep = undefined;
    const now = Date.now();
    for (const idle of [...this.#idle]) if (now - idle.idleSince >= idle.idleLimitMs) idle.socket.destroy();
    if (this.#idle.length > 0)
      this.#sweep = setTimeout(() => this.#closeExpired(), this.#options.idleTimeoutMs).unref();
  }
}
