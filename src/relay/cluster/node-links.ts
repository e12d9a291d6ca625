import { formatConnectionString, parseConnectionString } from '../../connection-string/index.js';
import type { Logger } from '../../log.js';
import type { MuxHeaders } from '../../mux/header-block.js';
import type { MuxSession } from '../../mux/mux-session.js';
import type { MuxStream } from '../../mux/mux-stream.js';
import { startMuxSession } from '../../session/mux-session-setup.js';
import { PROOF_ACCEPTED } from '../../session/possession-proof.js';
import { readExactly } from '../../stream/read-exactly.js';
import { connect } from '../../transport/connect.js';
import type { NodeRecord, TunnelLocation } from './directory.js';
import {
  LINK_CHALLENGE_BYTES,
  linkAnswer,
  NODE_AUTH_HEADER,
  NODE_ID_HEADER,
  NODE_LINK_WINDOWS,
  NODE_PATH,
  NODE_UPGRADE_TOKEN,
  nodeAuthValue,
} from './node-auth.js';

/** Headers a forwarded stream carries from the node that took the visitor to the node that holds the tunnel. */
export const FORWARD_LABEL_HEADER = 'postern-forward-label';
export const FORWARD_VISITOR_HEADER = 'postern-forward-visitor';
/**
 * A node that could not be reached is not dialed again for this long, doubling with each failure
 * in a row up to 5 s (a node that restarts is back in use within that).
 */
const DEAD_NODE_MS = 500;
const DEAD_NODE_MAX_MS = 5_000;
/** Dialing another node (TCP + upgrade) gives up after this. */
const DIAL_TIMEOUT_MS = 3_000;

/** Something a stream can be opened on: a local agent session, or a node holding the tunnel. */
export interface StreamPeer {
  openStream(headers: MuxHeaders, options: { endStream: boolean }): MuxStream;
  /** The connection failed under the stream (not an orderly end). */
  readonly broken: boolean;
}

/**
 * The persistent multiplexed sessions from this node to the others (one per node, dialed on first
 * need, authenticated with the cluster secret), over which visitor streams for tunnels held
 * elsewhere are forwarded with flow control end to end (the same multiplexer as agent sessions).
 */
export class NodeLinks {
  readonly #self: NodeRecord;
  readonly #secret: string;
  readonly #basePath: string;
  readonly #log: Logger;
  readonly #links = new Map<string, Promise<MuxSession>>();
  readonly #dead = new Map<string, { until: number; failures: number }>();
  readonly #keepalive: { intervalMs: number; timeoutMs: number };
  #closed = false;

  constructor(options: {
    self: NodeRecord;
    secret: string;
    basePath: string;
    log: Logger;
    keepalive: { intervalMs: number; timeoutMs: number };
  }) {
    this.#self = options.self;
    this.#secret = options.secret;
    this.#basePath = options.basePath;
    this.#log = options.log;
    this.#keepalive = options.keepalive;
  }

  /**
   * A peer on one of the nodes holding the tunnel (in their order, skipping nodes that just failed),
   * or a message for the visitor when none could be reached (the details, which name internal
   * addresses, go to the log only).
   */
  async peer(location: TunnelLocation, visitor: string): Promise<StreamPeer | string> {
    const now = Date.now();
    const alive = location.nodes.filter((node) => (this.#dead.get(node.id)?.until ?? 0) <= now);
    // Nodes already linked first: no dial, and a node that just died is not tried before them.
    alive.sort((a, b) => Number(this.#links.has(b.id)) - Number(this.#links.has(a.id)));
    for (const node of alive) {
      try {
        const session = await this.#session(node);
        return {
          openStream: (headers, options) =>
            session.request(
              { ...headers, [FORWARD_LABEL_HEADER]: location.label, [FORWARD_VISITOR_HEADER]: visitor },
              options,
            ),
          get broken() {
            return session.destroyed;
          },
        };
      } catch (error) {
        this.#log.warn(
          {
            peer: node.id,
            advertise: node.advertise,
            error: (error as Error).message,
          },
          'node link failed',
        );
        this.#markDead(node.id);
      }
    }
    return `no node holding ${location.label} could be reached; try again shortly`;
  }

  #session(node: NodeRecord): Promise<MuxSession> {
    if (this.#closed) return Promise.reject(new Error('this node is shutting down'));
    let link = this.#links.get(node.id);
    if (link === undefined) {
      link = this.#dial(node);
      this.#links.set(node.id, link);
      link.catch(() => this.#links.delete(node.id));
    }
    return link;
  }

  async #dial(node: NodeRecord): Promise<MuxSession> {
    const address = formatConnectionString({
      ...parseConnectionString(node.advertise),
      path: `${this.#basePath}${NODE_PATH}`,
      httpPreflight: true,
    });
    const socket = await connect(address, {
      upgradeToken: NODE_UPGRADE_TOKEN,
      headers: [
        [NODE_ID_HEADER, this.#self.id],
        [NODE_AUTH_HEADER, nodeAuthValue(this.#secret, this.#self.id, node.id)],
      ],
      connectTimeoutMs: DIAL_TIMEOUT_MS,
      handshakeTimeoutMs: DIAL_TIMEOUT_MS,
    });
    try {
      const challenge = await readExactly(socket, LINK_CHALLENGE_BYTES, DIAL_TIMEOUT_MS);
      socket.write(linkAnswer(this.#secret, this.#self.id, node.id, challenge));
      const accepted = await readExactly(socket, PROOF_ACCEPTED.length, DIAL_TIMEOUT_MS);
      if (!accepted.equals(PROOF_ACCEPTED)) throw new Error('the node did not accept the link proof');
    } catch (error) {
      socket.destroy();
      throw new Error(`node link to ${node.id}: ${(error as Error).message}`);
    }
    const session = startMuxSession(socket, {
      role: 'client',
      ...NODE_LINK_WINDOWS,
      maxConcurrentStreams: 0,
      log: this.#log.child({ peer: node.id }),
      name: 'node link',
      keepalive: this.#keepalive,
      onDead: () => this.#markDead(node.id),
    });
    const forget = (): void => {
      if (this.#links.get(node.id) === linked) this.#links.delete(node.id);
    };
    const linked = Promise.resolve(session);
    session.once('close', forget);
    session.once('goaway', () => {
      forget();
      session.close();
    });
    this.#dead.delete(node.id);
    this.#log.info({ peer: node.id, advertise: node.advertise }, 'node link up');
    // The map holds the promise #session() made; replace it with the settled one.
    this.#links.set(node.id, linked);
    return session;
  }

  #markDead(id: string): void {
    const failures = (this.#dead.get(id)?.failures ?? 0) + 1;
    const wait = Math.min(DEAD_NODE_MAX_MS, DEAD_NODE_MS * 2 ** (failures - 1));
    this.#dead.set(id, { until: Date.now() + wait, failures });
    // Bounded: ids of nodes long gone are dropped once the map grows.
    if (this.#dead.size > 1_000)
      for (const key of [...this.#dead.keys()].slice(0, 500)) this.#dead.delete(key);
  }

  close(): void {
    this.#closed = true;
    for (const link of this.#links.values()) link.then((session) => session.destroy()).catch(() => {});
    this.#links.clear();
  }
}
