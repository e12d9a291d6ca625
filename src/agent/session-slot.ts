import type { EventEmitter } from 'node:events';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { type ConnectionString, formatConnectionString, hostForUrl } from '../connection-string/index.js';
import {
  ConnectError,
  ERROR_CATALOGUE,
  isErrorCode,
  OptionError,
  RegistrationRejectedError,
  redactSecrets,
} from '../errors.js';
import type { AgentKey } from '../keys/key-file.js';
import type { Logger } from '../log.js';
import type { MuxSession } from '../mux/mux-session.js';
import { backoffDelay } from '../session/backoff.js';
import { startMuxSession } from '../session/mux-session-setup.js';
import { CHALLENGE, PROOF_ACCEPTED, signPossession } from '../session/possession-proof.js';
import {
  type AssignedService,
  Header,
  MAX_SESSION_MESSAGE_BYTES,
  type RequestedService,
  SESSION_UPGRADE_TOKEN,
} from '../session/protocol.js';
import { signRegistration } from '../session/registration.js';
import { readExactly } from '../stream/read-exactly.js';
import { dialSocket } from '../transport/dial.js';
import { requestUpgrade, UpgradeRefusedError, type UpgradeResult } from '../transport/upgrade-request.js';
import { requestWebSocketUpgrade } from '../transport/websocket-upgrade.js';
import type { AgentEvents } from './agent-events.js';
import type { ResolvedAgentOptions } from './options.js';

export type SlotState = 'connecting' | 'ready' | 'waiting' | 'stopped';

export interface SlotContext {
  opts: ResolvedAgentOptions;
  /**
   * The relay addresses, this slot's first one at `firstRelay`; after each loss the slot dials the
   * next one, so a dead node (or route) is left for a live one.
   */
  relays: readonly ConnectionString[];
  firstRelay: number;
  key: AgentKey;
  services: RequestedService[];
  log: Logger;
  /** Resolves once every target takes connections (in-process applications listen). */
  targetsReady: Promise<unknown>;
  /** Receives the agent's events: connected, disconnected, reconnecting, fatal. */
  events: EventEmitter<AgentEvents>;
  /** Custom headers for the upgrade request (validated), e.g. a reverse proxy's token. */
  extraHeaders: Record<string, string>;
  /** The signed `Postern-Access` value (visitor access rules), if any service has rules. */
  access: string | undefined;
  /** The Postern-Setups value: fingerprints of the services' setups. */
  setups: string;
  /** The Postern-Subdomains value, when a service asks for a name of its own. */
  subdomains: string | undefined;
  /** Serves one session's streams. */
  serve(session: MuxSession): void;
}

/**
 * Keeps one session to the relay alive: dial, register, run the session multiplexer as the server, and after any
 * loss reconnect with exponential backoff and full jitter. Refusals that retrying cannot fix (400,
 * 403) stop the slot and emit 'fatal'.
 */
export class SessionSlot {
  readonly index: number;
  #state: SlotState = 'connecting';
  #ctx: SlotContext;
  #current: MuxSession | undefined;
  readonly #draining = new Set<MuxSession>();
  #pendingSocket: Socket | undefined;
  #wake: (() => void) | undefined;
  #stopped = false;
  #relayIndex: number;
  readonly done: Promise<void>;

  constructor(index: number, ctx: SlotContext) {
    this.index = index;
    this.#ctx = ctx;
    this.#relayIndex = ctx.firstRelay % ctx.relays.length;
    this.done = this.#run();
  }

  get #relay(): ConnectionString {
    return this.#ctx.relays[this.#relayIndex] as ConnectionString;
  }

  get state(): SlotState {
    return this.#state;
  }

  async #run(): Promise<void> {
    try {
      await this.#ctx.targetsReady;
    } catch (error) {
      this.#state = 'stopped';
      this.#ctx.events.emit(
        'fatal',
        new OptionError(`the application could not listen: ${(error as Error).message}`),
      );
      return;
    }
    let attempt = 0;
    const { events, opts, log } = this.#ctx;
    while (!this.#stopped) {
      this.#state = 'connecting';
      let reason: string;
      try {
        const { session, services } = await this.#connect();
        attempt = 0;
        this.#current = session;
        this.#state = 'ready';
        events.emit('connected', { connection: this.index, services });
        reason = await sessionEnded(session);
        this.#current = undefined;
        if (!session.destroyed) this.#draining.add(session);
        session.once('close', () => this.#draining.delete(session));
      } catch (error) {
        if (error instanceof RegistrationRejectedError && !error.retryable) {
          this.#state = 'stopped';
          events.emit('fatal', error);
          return;
        }
        reason = (error as Error).message;
      }
      if (this.#stopped) break;
      this.#state = 'waiting';
      events.emit('disconnected', {
        connection: this.index,
        relay: redactSecrets(formatConnectionString(this.#relay)),
        reason,
      });
      this.#relayIndex = (this.#relayIndex + 1) % this.#ctx.relays.length;
      const delayMs = backoffDelay(attempt++, {
        initialMs: opts.reconnectInitialMs,
        maxMs: opts.reconnectMaxMs,
      });
      events.emit('reconnecting', { connection: this.index, attempt, delayMs });
      log.debug({ attempt, delayMs, reason }, 'reconnecting');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delayMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
    this.#state = 'stopped';
  }

  async #connect(): Promise<{ session: MuxSession; services: AssignedService[] }> {
    const { opts, key } = this.#ctx;
    const relay = this.#relay;
    const socket = await dialSocket(relay, { timeoutMs: opts.dialTimeoutMs, proxy: opts.proxy });
    this.#pendingSocket = socket;
    if (this.#stopped) socket.destroy();
    socket.setNoDelay(true);
    const host =
      opts.relayHost ??
      (relay.transport === 'unix' ? 'localhost' : `${hostForUrl(relay.host)}:${relay.port}`);
    const registration = signRegistration({
      privateKey: key.privateKey,
      publicKey: key.publicKey,
      services: this.#ctx.services,
      method: 'GET',
      path: relay.path,
      host,
      access: this.#ctx.access,
      setups: this.#ctx.setups,
      replace: opts.replace,
      subdomains: this.#ctx.subdomains,
    });
    // Custom headers first: the registration's own can never be replaced by them.
    const headers = { ...this.#ctx.extraHeaders, ...registration };
    let upgraded: UpgradeResult;
    try {
      upgraded =
        relay.transport === 'ws' || relay.transport === 'wss'
          ? await requestWebSocketUpgrade({
              stream: socket,
              url: `${relay.transport}://${hostForUrl(relay.host)}:${relay.port}${relay.path}`,
              host,
              headers,
              timeoutMs: opts.registrationTimeoutMs,
              maxMessageBytes: MAX_SESSION_MESSAGE_BYTES,
            })
          : await requestUpgrade({
              stream: socket,
              path: relay.path,
              host,
              token: SESSION_UPGRADE_TOKEN,
              headers,
              timeoutMs: opts.registrationTimeoutMs,
            });
    } catch (error) {
      if (error instanceof UpgradeRefusedError) {
        // Only the relay's own verdict stops the agent; a proxy in front of it may be fixed later.
        const code = error.headers[Header.error];
        // Every refusal of a relay names its code: without one, something else answered.
        if (code === undefined)
          throw new RegistrationRejectedError(
            error.status,
            error.reason,
            false,
            `answered ${error.status} ${STATUS_CODES[error.status] ?? ''} to the agent's upgrade, without a Postern-Error header: not a Postern relay, or a proxy in front of one refused (check the relay address, and any header or token that proxy requires)`,
          );
        const relayCode = String(code);
        const permanent =
          isErrorCode(relayCode) &&
          ERROR_CATALOGUE[relayCode].audience === 'agent' &&
          !ERROR_CATALOGUE[relayCode].retryable;
        // The relay's code closes the line: what a script (or a search of docs/errors.md) keys on.
        throw new RegistrationRejectedError(error.status, `${error.reason} (${relayCode})`, permanent);
      }
      throw error;
    } finally {
      this.#pendingSocket = undefined;
    }
    const services = parseAssigned(upgraded.headers[Header.assigned]);
    const unnamed = ungivenSubdomain(this.#ctx.subdomains, services);
    if (unnamed !== undefined) {
      upgraded.socket.destroy();
      throw new RegistrationRejectedError(
        502,
        `the relay did not give service "${unnamed}" the subdomain it asked for (a relay older than --subdomain?)`,
        false,
      );
    }
    const unguarded = unenforcedAccess(this.#ctx.access, services);
    if (unguarded !== undefined) {
      upgraded.socket.destroy();
      throw new RegistrationRejectedError(
        502,
        `the relay did not confirm the access rules of service "${unguarded}"; it stays unpublished rather than open`,
        true,
      );
    }
    // stop() may come while the proof is under way: it destroys the pending socket.
    this.#pendingSocket = socket;
    try {
      await this.#provePossession(upgraded, registration[Header.signature] as string);
    } finally {
      this.#pendingSocket = undefined;
    }
    if (this.#stopped) {
      upgraded.socket.destroy();
      throw new ConnectError('stopped');
    }
    const session = startMuxSession(upgraded.socket, {
      role: 'server',
      streamWindowBytes: opts.streamWindowBytes,
      connectionWindowBytes: opts.connectionWindowBytes,
      maxConcurrentStreams: opts.maxConcurrentStreams,
      log: this.#ctx.log,
      name: 'session',
      keepalive: { intervalMs: opts.keepaliveIntervalMs, timeoutMs: opts.keepaliveTimeoutMs },
    });
    this.#ctx.serve(session);
    if (this.#stopped) session.close();
    return { session, services };
  }

  /**
   * Answers the relay's challenge with the key's signature and waits for its `PSOK`: only then is
   * the session routed to (docs/protocol.md, "Proof of possession").
   */
  async #provePossession(upgraded: UpgradeResult, registrationSignature: string): Promise<void> {
    const challenge = upgraded.headers[Header.challenge];
    if (typeof challenge !== 'string' || !CHALLENGE.test(challenge)) {
      upgraded.socket.destroy();
      throw new RegistrationRejectedError(
        502,
        `the relay's 101 has no valid ${Header.challenge} (a relay older than protocol version 3?)`,
      );
    }
    upgraded.socket.write(signPossession(this.#ctx.key.privateKey, challenge, registrationSignature));
    let answer: Buffer;
    try {
      answer = await readExactly(
        upgraded.socket,
        PROOF_ACCEPTED.length,
        this.#ctx.opts.registrationTimeoutMs,
      );
    } catch (error) {
      upgraded.socket.destroy();
      throw new ConnectError(
        `the relay did not accept the proof of key possession: ${(error as Error).message}`,
      );
    }
    if (!answer.equals(PROOF_ACCEPTED)) {
      upgraded.socket.destroy();
      throw new ConnectError('the relay answered the proof of key possession with something else than PSOK');
    }
  }

  /** Stops reconnecting, sends GOAWAY, lets open streams finish within `drainMs`, then destroys. */
  async stop(drainMs: number): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    this.#pendingSocket?.destroy();
    const sessions = [...this.#draining, ...(this.#current ? [this.#current] : [])];
    await Promise.all(
      sessions.map(
        (session) =>
          new Promise<void>((resolve) => {
            if (session.destroyed) return resolve();
            const timer = setTimeout(() => session.destroy(), drainMs);
            session.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
            session.close();
          }),
      ),
    );
    await this.done;
  }
}

/** Resolves with why the session ended: GOAWAY from the relay, an error, or the connection closing. */
function sessionEnded(session: MuxSession): Promise<string> {
  return new Promise((resolve) => {
    session.once('goaway', (code: number) => resolve(`relay sent GOAWAY (code ${code})`));
    session.once('error', (error: Error) => resolve(error.message));
    session.once('close', () => resolve('session closed'));
  });
}

/** A service the relay published under another label than the subdomain it asked for, if any. */
function ungivenSubdomain(subdomains: string | undefined, services: AssignedService[]): string | undefined {
  for (const pair of subdomains?.split(',') ?? []) {
    const [name, subdomain] = pair.split('=');
    if (services.find((s) => s.name === name)?.label !== subdomain) return name;
  }
  return undefined;
}

/** A service with access rules the relay's answer does not list as enforced, if any. */
function unenforcedAccess(access: string | undefined, services: AssignedService[]): string | undefined {
  if (access === undefined) return undefined;
  const declared = Object.keys(JSON.parse(access) as Record<string, unknown>);
  return declared.find((name) => !services.some((s) => s.name === name && (s.access?.length ?? 0) > 0));
}

function parseAssigned(value: string | string[] | undefined): AssignedService[] {
  try {
    const parsed: unknown = JSON.parse(String(value));
    if (Array.isArray(parsed)) return parsed as AssignedService[];
  } catch {
    // fall through to the error below
  }
  throw new RegistrationRejectedError(502, `relay answered 101 without a valid ${Header.assigned} header`);
}
