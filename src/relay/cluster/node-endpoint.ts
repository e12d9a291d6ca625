import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { statusOf, type WireErrorCode } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { IncomingMuxHeaders } from '../../mux/header-block.js';
import type { MuxSession } from '../../mux/mux-session.js';
import type { MuxStream } from '../../mux/mux-stream.js';
import { startMuxSession } from '../../session/mux-session-setup.js';
import { PROOF_ACCEPTED } from '../../session/possession-proof.js';
import { Header } from '../../session/protocol.js';
import { joinDuplex } from '../../stream/join-duplex.js';
import { readExactly } from '../../stream/read-exactly.js';
import type { ForwardContext } from '../forward-context.js';
import { findSession, takeRequestToken } from '../stream-admission.js';
import { writeRawError } from '../visitor-error.js';
import {
  LINK_CHALLENGE_BYTES,
  linkAnswerMatches,
  NODE_AUTH_HEADER,
  NODE_ID_HEADER,
  NODE_LINK_WINDOWS,
  NODE_UPGRADE_TOKEN,
  newLinkChallenge,
  verifyNodeAuth,
} from './node-auth.js';

/** A dialing node must answer the link challenge within this, ms. */
const LINK_PROOF_TIMEOUT_MS = 10_000;

import { FORWARD_LABEL_HEADER, FORWARD_VISITOR_HEADER } from './node-links.js';

/** Node ids: what --node-id accepts. */
export const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * This node's end of the links other nodes dial (`/_postern/node`): checks the dialing node's
 * proof, then serves each stream it forwards as if the visitor had come here — the tunnel's access
 * rules, rate limit and stream cap apply — by opening the same stream to a local agent session and
 * joining the two with flow control end to end.
 */
export class NodeEndpoint {
  readonly #ctx: ForwardContext;
  readonly #secret: string;
  readonly #log: Logger;
  readonly #sessions = new Set<MuxSession>();

  readonly #selfId: string;

  constructor(ctx: ForwardContext, selfId: string, secret: string, log: Logger) {
    this.#ctx = ctx;
    this.#selfId = selfId;
    this.#secret = secret;
    this.#log = log;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const id = String(req.headers[NODE_ID_HEADER] ?? '');
    const refuse = (reason: string): void => {
      this.#log.warn({ peer: id, remoteAddress: req.socket.remoteAddress, reason }, 'node link refused');
      writeRawError(socket, 'node_refused', reason);
    };
    if (String(req.headers.upgrade).toLowerCase() !== NODE_UPGRADE_TOKEN) {
      refuse(`the node endpoint expects "Upgrade: ${NODE_UPGRADE_TOKEN}"`);
      return;
    }
    if (!NODE_ID.test(id)) {
      refuse('missing or malformed node id');
      return;
    }
    const verdict = verifyNodeAuth(
      this.#secret,
      id,
      this.#selfId,
      String(req.headers[NODE_AUTH_HEADER] ?? ''),
    );
    if (!verdict.ok) {
      refuse(verdict.reason);
      return;
    }
    const challenge = newLinkChallenge();
    socket.write(
      Buffer.concat([
        Buffer.from(
          `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${NODE_UPGRADE_TOKEN}\r\n\r\n`,
        ),
        challenge,
      ]),
    );
    if (head.length > 0) socket.unshift(head);
    readExactly(socket, LINK_CHALLENGE_BYTES, LINK_PROOF_TIMEOUT_MS).then(
      (answer) => {
        if (!linkAnswerMatches(this.#secret, id, this.#selfId, challenge, answer)) {
          this.#log.warn({ peer: id, reason: 'wrong answer to the link challenge' }, 'node link refused');
          socket.destroy();
          return;
        }
        socket.write(PROOF_ACCEPTED);
        this.#accept(id, socket);
      },
      (error: Error) => {
        this.#log.warn(
          {
            peer: id,
            reason: `no answer to the link challenge: ${error.message}`,
          },
          'node link refused',
        );
        socket.destroy();
      },
    );
  }

  #accept(id: string, socket: Duplex): void {
    const session = startMuxSession(socket, {
      role: 'server',
      ...NODE_LINK_WINDOWS,
      maxConcurrentStreams: 100_000,
      log: this.#log.child({ peer: id }),
      name: 'node link',
    });
    this.#sessions.add(session);
    session.once('close', () => this.#sessions.delete(session));
    session.on('stream', (stream: MuxStream, headers: IncomingMuxHeaders) => {
      stream.on('error', () => {});
      this.#serve(stream, headers).catch((error: Error) => {
        this.#log.error({ peer: id, error: error.message }, 'forwarded stream failed');
        stream.destroy(error);
      });
    });
    this.#log.info({ peer: id }, 'node link accepted');
  }

  async #serve(stream: MuxStream, received: IncomingMuxHeaders): Promise<void> {
    const ctx = this.#ctx;
    // A request head is all strings; a number from the peer is taken as its text.
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(received))
      headers[name] = typeof value === 'number' ? String(value) : value;
    const label = String(headers[FORWARD_LABEL_HEADER] ?? '');
    const visitor = String(headers[FORWARD_VISITOR_HEADER] ?? '');
    const tunnel = ctx.registry.get(label);
    if (tunnel === undefined)
      return respondError(stream, 'tunnel_offline', `${label} is no longer held here`);
    let consumed: readonly string[] = [];
    if (tunnel.access !== undefined) {
      const verdict = await tunnel.access.check(headers, visitor, ctx.access);
      if (!verdict.ok) return respondError(stream, verdict.error, verdict.message, verdict.headers);
      consumed = verdict.consumed;
    }
    const waitMs = await takeRequestToken(ctx, tunnel);
    if (waitMs > 0)
      return respondError(
        stream,
        'rate_limited',
        `tunnel over its limit of ${ctx.options.requestsPerSecondPerTunnel} requests/s`,
        {
          'retry-after': String(Math.ceil(waitMs / 1000)),
        },
      );
    if (tunnel.activeStreams >= ctx.options.maxConcurrentStreamsPerTunnel)
      return respondError(stream, 'too_many_streams', `tunnel has ${tunnel.activeStreams} streams open`, {
        'retry-after': '1',
      });
    tunnel.activeStreams++;
    tunnel.streamsTotal++;
    stream.once('close', () => tunnel.activeStreams--);
    const session = await findSession(ctx, tunnel, stream);
    if (stream.destroyed) return;
    if (session === undefined)
      return respondError(
        stream,
        'tunnel_offline',
        `the agent of ${label} is not connected; try again shortly`,
        {
          'retry-after': '2',
        },
      );
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(headers)) {
      if (name === FORWARD_LABEL_HEADER || name === FORWARD_VISITOR_HEADER) continue;
      if (consumed.includes(name)) continue;
      out[name] = value;
    }
    // The service is the one of the label whose rules were checked here, whatever the peer sent.
    out[Header.service] = tunnel.name;
    let agentStream: MuxStream;
    try {
      agentStream = session.openStream(out, { endStream: false });
    } catch (error) {
      return respondError(
        stream,
        'agent_error',
        `could not open a stream to the agent: ${(error as Error).message}`,
      );
    }
    agentStream.on('headers', (informational: IncomingMuxHeaders) => {
      if (!stream.headersSent && !stream.destroyed) stream.additionalHeaders(informational);
    });
    let trailers: IncomingMuxHeaders | undefined;
    agentStream.once('trailers', (received: IncomingMuxHeaders) => {
      trailers = received;
    });
    agentStream.once('response', (response: IncomingMuxHeaders) => {
      if (stream.destroyed) return;
      const waitForTrailers = response.trailer !== undefined;
      stream.respond(response, { waitForTrailers });
      if (waitForTrailers)
        stream.once('wantTrailers', () => {
          try {
            stream.sendTrailers(trailers ?? {});
          } catch {
            stream.destroy(new Error('trailers could not be sent'));
          }
        });
    });
    joinDuplex(stream, agentStream);
  }

  /** GOAWAY on every link: forwarded streams in flight finish, the dialing nodes dial elsewhere. */
  close(): void {
    for (const session of this.#sessions) session.close();
  }
}

function respondError(
  stream: MuxStream,
  code: WireErrorCode,
  message: string,
  extra: Record<string, string> = {},
): void {
  if (stream.destroyed || stream.headersSent) return;
  const body = `postern: ${message}\n`;
  stream.respond({
    ':status': statusOf(code),
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    [Header.error]: code,
    ...extra,
  });
  stream.end(body);
}
