import type { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import { MuxSession } from '../mux/mux-session.js';
import { type KeepaliveOptions, startKeepalive } from './keepalive.js';
import { MAX_HEADER_PAIRS } from './protocol.js';

export interface MuxSessionSetup {
  /** 'client' opens streams (the relay's end of an agent session, a node link's dialler). */
  role: 'client' | 'server';
  streamWindowBytes: number;
  connectionWindowBytes: number;
  /** Streams the peer may open at once; 0 when this end never accepts any. */
  maxConcurrentStreams: number;
  /** Logs '<name> error' (debug) and '<name> dead' (warn). */
  log: Logger;
  name: string;
  /** Without it the session is not pinged: the peer's keepalive watches the connection. */
  keepalive?: KeepaliveOptions;
  /** Runs when keepalive finds the peer dead, before the session is destroyed. */
  onDead?: (reason: string) => void;
}

/**
 * The one way a session connection becomes a MuxSession, for agent sessions (both ends) and node
 * links (both ends): the same header-pair limit everywhere, errors logged instead of thrown, and a
 * session whose peer went silent destroyed.
 */
export function startMuxSession(socket: Duplex, setup: MuxSessionSetup): MuxSession {
  const session = new MuxSession(socket, {
    role: setup.role,
    streamWindowBytes: setup.streamWindowBytes,
    connectionWindowBytes: setup.connectionWindowBytes,
    maxConcurrentStreams: setup.maxConcurrentStreams,
    // As many as the relay's HTTP/1.1 parser passes on (Node keeps 2 000): a visitor request
    // with 200 headers must not turn into a 502.
    maxHeaderPairs: MAX_HEADER_PAIRS,
  });
  session.on('error', (error: Error) => setup.log.debug({ error: error.message }, `${setup.name} error`));
  if (setup.keepalive !== undefined)
    startKeepalive(session, setup.keepalive, (reason) => {
      setup.log.warn({ reason }, `${setup.name} dead`);
      setup.onDead?.(reason);
      session.destroy();
    });
  return session;
}
