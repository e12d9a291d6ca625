import { lstatSync, type Stats, unlinkSync } from 'node:fs';
import { createServer as createNetServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { createSecureContext, type SecureContext, TLSSocket } from 'node:tls';
import { type ConnectionString, formatConnectionString, hostForUrl } from '../connection-string/index.js';
import { OptionError } from '../errors.js';
import { listenFailure } from '../listen-failure.js';
import { type ClientHello, parseClientHello } from './client-hello.js';
import { DEFAULT_TLS_RELOAD_INTERVAL_MS, loadTlsFiles, watchTlsFiles } from './tls-files.js';

/**
 * Connections the kernel may hold ready for accept (capped by net.core.somaxconn). Node's 511 is
 * reached by a burst of a few hundred visitors while the relay is busy; the kernel then drops the
 * handshakes' last packets, and those clients wait seconds for retransmissions.
 */
const LISTEN_BACKLOG = 4_096;

/** How long a TLS handshake may take before the connection is cut, ms. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 20_000;

/**
 * How a tcps connection goes on once its ClientHello is read: terminated here with a context
 * (`alpn`: the protocols to agree; `challenge`: close once the handshake is done, as an ACME
 * TLS-ALPN-01 validation wants), handed on raw (passthrough), or refused with a reason.
 */
export type TlsRoute =
  | { context: SecureContext; alpn?: string[]; challenge?: boolean }
  | { passthrough: (socket: Socket, hello: Buffer) => void }
  | { refuse: string };

/**
 * Picks the route for a ClientHello. undefined: the certificate of the files (--tls-cert), or
 * refused when there are none.
 */
export type TlsRouter = (hello: ClientHello) => TlsRoute | undefined | Promise<TlsRoute | undefined>;

export interface BoundListener {
  /** The connection string actually bound (port 0 replaced by the real port). */
  address: ConnectionString;
  /** Stops accepting; resolves once every accepted connection is gone. */
  close(): Promise<void>;
  /** Destroys every connection this listener accepted that is still open (TLS handshakes included). */
  destroyConnections(): void;
  /**
   * tcps only: loads the certificate and key now, from `files` when given (then watched instead of
   * the old ones), for connections from now on. Throws an OptionError, keeping the old pair, when
   * they do not load.
   */
  reloadTls?(files?: { cert: string; key: string }): void;
}

/** Listens on a tcp://, tcps:// or unix:// connection string and hands every accepted socket to `onSocket`. */
export async function listenOn(
  cs: ConnectionString,
  tls: {
    cert?: string | undefined;
    key?: string | undefined;
    /** How often the files are checked for a new certificate. Default 2 000 ms. */
    reloadIntervalMs?: number | undefined;
    /** Told of every reload: no error when the new pair is in use, else why it was not taken. */
    onReload?: ((error?: Error) => void) | undefined;
    /** A TLS handshake not done within this is cut, ms. Default 20 000. */
    handshakeTimeoutMs?: number | undefined;
    /** Routes each connection by its ClientHello (certificates by name, ACME challenges, passthrough). */
    router?: TlsRouter | undefined;
    /** The router has a certificate for names it terminates (ACME), so cert and key files are not needed. */
    routerHasCertificates?: boolean | undefined;
    /** Told why a connection was refused before its handshake (not TLS, no certificate for the name). */
    onRefused?: ((reason: string) => void) | undefined;
  },
  onSocket: (socket: Socket) => void,
): Promise<BoundListener> {
  let server: Server;
  let stopWatching = (): void => {};
  let reloadTls: BoundListener['reloadTls'];
  if (cs.transport === 'tcp' || cs.transport === 'unix') {
    // Half-open like http.Server's own sockets: a visitor's half-close must not end our direction.
    server = createNetServer({ noDelay: true, allowHalfOpen: true }, onSocket);
  } else if (cs.transport === 'tcps') {
    const router = tls.router;
    if ((tls.cert === undefined || tls.key === undefined) && tls.routerHasCertificates !== true) {
      throw new OptionError(
        `listening on ${formatConnectionString(cs)} needs --tls-cert and --tls-key (or --acme-email)`,
      );
    }
    let files =
      tls.cert === undefined || tls.key === undefined ? undefined : { cert: tls.cert, key: tls.key };
    let context = files === undefined ? undefined : createSecureContext(loadTlsFiles(files));
    const handshakeTimeoutMs = tls.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const accepting: Accepting = {
      timeoutMs: handshakeTimeoutMs,
      onSocket,
      onRefused: tls.onRefused ?? (() => {}),
      route: async (hello) => {
        const route = await router?.(hello);
        if (route !== undefined) return route;
        return context === undefined
          ? { refuse: `no certificate for ${hello.serverName ?? 'a hello without a name'}` }
          : { context };
      },
    };
    server = createNetServer({ noDelay: true, allowHalfOpen: true }, (raw) =>
      router === undefined && context !== undefined
        ? acceptTls(raw, { context }, accepting)
        : peekClientHello(raw, accepting),
    );
    // New certificates apply to new connections; open ones keep the one they shook hands with.
    const watch = (): void => {
      if (files === undefined) return;
      stopWatching = watchTlsFiles(
        files,
        tls.reloadIntervalMs ?? DEFAULT_TLS_RELOAD_INTERVAL_MS,
        (pair) => {
          context = createSecureContext(pair);
          tls.onReload?.();
        },
        (error) => tls.onReload?.(error),
      );
    };
    watch();
    reloadTls = (next = files) => {
      if (next === undefined) return;
      context = createSecureContext(loadTlsFiles(next));
      if (next.cert !== files?.cert || next.key !== files?.key) {
        stopWatching();
        files = { ...next };
        watch();
      }
    };
  } else {
    throw new OptionError(`cannot listen on ${formatConnectionString(cs)}: use tcp://, tcps:// or unix://`);
  }
  // Every raw connection, tracked from accept: one whose TLS handshake fails never reaches
  // onSocket, yet server.close() waits for it.
  const connections = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });
  if (cs.transport === 'unix') await removeStaleSocket(cs.socketPath as string);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      stopWatching();
      reject(
        new OptionError(
          `cannot listen on ${formatConnectionString(cs)}: ${listenFailure(error, cs.transport === 'unix' ? {} : cs)}`,
        ),
      );
    });
    if (cs.transport === 'unix') server.listen(cs.socketPath, resolve);
    else server.listen({ host: cs.host, port: cs.port, backlog: LISTEN_BACKLOG }, resolve);
  });
  const bound = server.address();
  const address: ConnectionString = { ...cs };
  if (bound !== null && typeof bound === 'object') address.port = bound.port;
  return {
    address,
    close: () => {
      stopWatching();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
    destroyConnections: () => {
      for (const socket of connections) socket.destroy();
    },
    ...(reloadTls === undefined ? {} : { reloadTls }),
  };
}

interface Accepting {
  timeoutMs: number;
  onSocket: (socket: Socket) => void;
  onRefused: (reason: string) => void;
  route: (hello: ClientHello) => Promise<TlsRoute>;
}

/**
 * Reads a connection's ClientHello (bounded by MAX_CLIENT_HELLO_BYTES and the handshake timeout),
 * routes it, and puts the bytes back for the TLS handshake or the passthrough tunnel.
 */
function peekClientHello(raw: Socket, accepting: Accepting): void {
  let buffered: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => raw.destroy(), accepting.timeoutMs);
  const stop = (): void => {
    raw.off('data', onData);
    raw.off('end', onEnd);
    raw.off('error', onEnd);
  };
  const onEnd = (): void => {
    stop();
    clearTimeout(timer);
    raw.destroy();
  };
  const onData = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const hello = parseClientHello(buffered);
    if (hello === 'incomplete') return;
    stop();
    raw.pause();
    if (hello instanceof Error) {
      clearTimeout(timer);
      accepting.onRefused(hello.message);
      raw.destroy();
      return;
    }
    raw.once('error', () => raw.destroy());
    accepting.route(hello).then(
      (route) => {
        clearTimeout(timer);
        if (raw.destroyed) return;
        if ('refuse' in route) {
          accepting.onRefused(route.refuse);
          raw.destroy();
        } else if ('passthrough' in route) {
          route.passthrough(raw, buffered);
        } else {
          // TLSSocket reads what the socket holds already before its own reads (lib/_tls_wrap.js).
          raw.unshift(buffered);
          acceptTls(raw, route, accepting);
        }
      },
      (error: Error) => {
        clearTimeout(timer);
        accepting.onRefused(error.message);
        raw.destroy();
      },
    );
  };
  raw.on('data', onData);
  raw.once('end', onEnd);
  raw.on('error', onEnd);
}

/**
 * Runs the TLS handshake on an accepted socket and hands it on once it is done. tls.Server keeps an
 * unfinished handshake for 120 s, and a half-closed one (the peer sent FIN, with allowHalfOpen on)
 * until then too: a flood of them held thousands of descriptors. Here a handshake has
 * `timeoutMs`, and a peer that ends before finishing it is closed at once.
 */
function acceptTls(
  raw: Socket,
  route: { context: SecureContext; alpn?: string[]; challenge?: boolean },
  accepting: Accepting,
): void {
  const socket = new TLSSocket(raw, {
    isServer: true,
    secureContext: route.context,
    ...(route.alpn === undefined ? {} : { ALPNProtocols: route.alpn }),
  });
  const unfinished = (): void => {
    socket.destroy();
  };
  const timer = setTimeout(unfinished, accepting.timeoutMs);
  socket.once('end', unfinished);
  socket.on('error', unfinished);
  socket.once('close', () => clearTimeout(timer));
  socket.once('secure', () => {
    clearTimeout(timer);
    socket.off('end', unfinished);
    socket.off('error', unfinished);
    if (route.challenge === true) socket.end();
    else accepting.onSocket(socket);
  });
}

/**
 * A socket file nobody accepts on is left over from a crash; one that answers is in use. Anything
 * that is not a socket (a regular file, a directory, a link to one) is never removed: a mistyped
 * path must not delete someone's data.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let stats: Stats;
  try {
    stats = lstatSync(path);
  } catch {
    return;
  }
  if (!stats.isSocket())
    throw new OptionError(`cannot listen on unix socket ${path}: a file that is not a socket is there`);
  const inUse = await new Promise<boolean>((resolve) => {
    const probe = netConnect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (inUse)
    throw new OptionError(`cannot listen on unix socket ${path}: another process is listening on it`);
  unlinkSync(path);
}

export function describeListener(cs: ConnectionString): string {
  return cs.transport === 'unix'
    ? formatConnectionString(cs)
    : `${cs.transport}://${hostForUrl(cs.host)}:${cs.port}`;
}
