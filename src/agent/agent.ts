import { KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { withoutUndefined } from '../defined.js';
import { OptionError, PosternError } from '../errors.js';
import type { AgentKey } from '../keys/key-file.js';
import { type Logger, silentLogger } from '../log.js';
import type { IncomingMuxHeaders } from '../mux/header-block.js';
import type { MuxSession } from '../mux/mux-session.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { sessionWindows } from '../mux/windows.js';
import { type AssignedService, Header } from '../session/protocol.js';
import { formatSetups, formatSubdomains, serviceFingerprint } from '../session/registration.js';
import { StallWatch } from '../stream/stall-watch.js';
import { normalizePreflightHeader } from '../transport/preflight-headers.js';
import type { AgentEvents } from './agent-events.js';
import { forwardToHttpTarget } from './http-target.js';
import { type InProcessTarget, inProcessTarget } from './in-process-target.js';
import { type AgentOptions, DEFAULT_AGENT_OPTIONS, type ResolvedAgentOptions } from './options.js';
import { agentRelayAddress } from './relay-address.js';
import { type ReplayRequest, replayToTarget } from './replay.js';
import { SessionSlot } from './session-slot.js';
import { resolveServices, type TargetService } from './targets.js';
import { forwardToTcpTarget } from './tcp-target.js';
import { forwardUpgradeToTarget } from './upgrade-target.js';
import { accessHeaderFor } from './visitor-access.js';

/** A running agent; its events are AgentEvents. */
export interface Agent extends EventEmitter<AgentEvents> {
  /** Resolves with the services as the relay assigned them on the first registration; rejects on 'fatal'. */
  readonly ready: Promise<AssignedService[]>;
  /**
   * Sends a captured HTTP request to its service's target again (the inspector's replay); resolves
   * when the response has ended, with its capture id (when an observer records) and status.
   */
  replay(request: ReplayRequest): Promise<{ id: string | undefined; status: number }>;
  /** GOAWAY to the relay, lets open streams finish (drainTimeoutMs), closes every socket. */
  close(): Promise<void>;
  /** close(), for `await using agent = createAgent(…)`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A key the relay could never accept fails here, not as a registration retried for ever. */
function checkAgentKey(key: AgentKey | undefined): void {
  const type = (part: KeyObject | undefined): string | undefined =>
    part instanceof KeyObject ? part.asymmetricKeyType : undefined;
  if (type(key?.privateKey) !== 'ed25519' || type(key?.publicKey) !== 'ed25519')
    throw new OptionError(
      `the agent key must be an ed25519 key pair (generateAgentKey() or loadKeyFile()), not ${type(key?.privateKey) ?? typeof key?.privateKey}`,
    );
  if (key?.privateKey.type !== 'private')
    throw new OptionError("the agent key's privateKey is not a private key");
}

export function createAgent(options: AgentOptions): Agent {
  return new AgentRuntime(options);
}

class AgentRuntime extends EventEmitter<AgentEvents> implements Agent {
  readonly ready: Promise<AssignedService[]>;
  readonly #opts: ResolvedAgentOptions;
  readonly #services: TargetService[];
  readonly #slots: SessionSlot[] = [];
  readonly #log: Logger;
  readonly #stalls: StallWatch;
  #closing: Promise<void> | undefined;
  /** Applications published without a port: started here, stopped by close(). */
  readonly #inProcess: InProcessTarget[] = [];
  readonly #targetsReady: Promise<unknown>;

  constructor(options: AgentOptions) {
    super();
    this.#opts = {
      ...DEFAULT_AGENT_OPTIONS,
      logger: silentLogger,
      ...withoutUndefined(options),
    } as ResolvedAgentOptions;
    this.#log = this.#opts.logger;
    checkAgentKey(options.key);
    const relays = (typeof options.relay === 'string' ? [options.relay] : [...options.relay]).map(
      agentRelayAddress,
    );
    if (relays.length === 0) throw new OptionError('the agent needs at least one relay address');
    if (options.connections === undefined)
      this.#opts.connections = Math.max(DEFAULT_AGENT_OPTIONS.connections, relays.length);
    if (!Number.isInteger(this.#opts.connections) || this.#opts.connections < relays.length) {
      throw new OptionError(
        `connections must be a whole number of at least one per relay address (${relays.length}), got ${this.#opts.connections}`,
      );
    }
    // Checked whether or not the session window was given.
    const windows = sessionWindows(this.#opts.streamWindowBytes);
    this.#opts.connectionWindowBytes ??= windows.session;
    const addressed = this.#opts.services.map((service) => {
      if (typeof service.target === 'string') return { ...service, target: service.target };
      const app = inProcessTarget(service.target);
      this.#inProcess.push(app);
      return { ...service, target: app.target };
    });
    this.#stalls = new StallWatch(this.#opts.stallTimeoutMs);
    try {
      this.#services = resolveServices(addressed, {
        maxIdleTargetSockets: this.#opts.maxIdleTargetSockets,
        connectTimeoutMs: this.#opts.targetConnectTimeoutMs,
        stalls: this.#stalls,
        observer: options.observer,
        onReachability: (service, reachable, reason) => {
          const target = this.#services.find((s) => s.name === service)?.targetText ?? '';
          this.emit('target', { service, target, reachable, ...(reason === undefined ? {} : { reason }) });
        },
      });
    } catch (error) {
      this.#stalls.close();
      for (const app of this.#inProcess) void app.close();
      throw error;
    }
    // Sessions start once the in-process applications take connections.
    this.#targetsReady = Promise.all(this.#inProcess.map((app) => app.start()));
    this.ready = this.#readyOrNot(this.#opts.readyTimeoutMs, options.signal);
    // A caller that never awaits `ready` learns of failures from 'fatal'; no unhandled rejection.
    this.ready.catch(() => {});
    // 'fatal' stops the agent; make sure an unlistened one does not crash the process as 'error' would.
    this.on('fatal', (error: Error) => {
      // Info, not error: the 'fatal' listener (the CLI's one line) is where the user is told.
      this.#log.info({ error: error.message }, 'agent stopped');
      void this.close();
    });
    const extraHeaders = Object.fromEntries((options.headers ?? []).map(normalizePreflightHeader));
    const byName = new Map(this.#services.map((s) => [s.name, s]));
    const access = accessHeaderFor(this.#services);
    for (let i = 0; i < this.#opts.connections; i++) {
      this.#slots.push(
        new SessionSlot(i, {
          targetsReady: this.#targetsReady,
          opts: this.#opts,
          relays,
          firstRelay: i,
          key: this.#opts.key,
          services: this.#services.map((s) => ({ name: s.name, kind: s.kind })),
          log: this.#log.child({ connection: i }),
          events: this,
          extraHeaders,
          access,
          setups: formatSetups(
            this.#services.map((s, index) => {
              const subdomain = this.#opts.services[index]?.subdomain;
              return {
                name: s.name,
                // The subdomain joins the setup only when asked for: older agents' fingerprints stay valid.
                fingerprint: serviceFingerprint(this.#opts.key.privateKey, [
                  s.kind,
                  s.targetText,
                  this.#opts.services[index]?.access ?? null,
                  ...(subdomain === undefined ? [] : [subdomain]),
                ]),
              };
            }),
          ),
          subdomains: formatSubdomains(
            this.#services.map((s, index) => ({
              name: s.name,
              subdomain: this.#opts.services[index]?.subdomain,
            })),
          ),
          serve: (session) => this.#serve(session, byName),
        }),
      );
    }
  }

  /**
   * Resolves on the first registration; rejects when the relay refuses for good, when
   * `timeoutMs` passes first (the agent then closes: nothing keeps retrying behind the caller's
   * back), or when `signal` aborts (which always closes the agent).
   */
  #readyOrNot(timeoutMs: number, signal: AbortSignal | undefined): Promise<AssignedService[]> {
    let lastReason = 'no attempt finished yet';
    const noteReason = (event: { reason: string }): void => {
      lastReason = event.reason;
    };
    this.on('disconnected', noteReason);
    signal?.addEventListener('abort', this.#closeOnAbort, { once: true });
    return new Promise<AssignedService[]>((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              settle();
              reject(
                new PosternError(
                  'POSTERN_READY_TIMEOUT',
                  `no relay admitted the agent within ${timeoutMs} ms (last: ${lastReason})`,
                ),
              );
              void this.close();
            }, timeoutMs)
          : undefined;
      const abort = (): void => {
        settle();
        reject(
          new PosternError('POSTERN_ABORTED', 'aborted before the agent was ready', {
            cause: signal?.reason,
          }),
        );
      };
      const connected = (event: { services: AssignedService[] }): void => {
        settle();
        resolve(event.services);
      };
      const fatal = (error: PosternError): void => {
        settle();
        reject(error);
      };
      const settle = (): void => {
        clearTimeout(timer);
        this.off('disconnected', noteReason);
        this.off('connected', connected);
        this.off('fatal', fatal);
        signal?.removeEventListener('abort', abort);
      };
      this.once('connected', connected);
      this.once('fatal', fatal);
      if (signal?.aborted) abort();
      else signal?.addEventListener('abort', abort, { once: true });
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #serve(session: MuxSession, byName: Map<string, TargetService>): void {
    session.on('stream', (stream: MuxStream, headers: IncomingMuxHeaders) => {
      stream.on('error', () => {});
      const service = byName.get(String(headers[Header.service]));
      if (service === undefined) {
        stream.respond({ ':status': 404, [Header.error]: 'unknown_service' }, { endStream: true });
        return;
      }
      if (service.kind !== 'http') {
        // Only a preflight reaches a TCP service (a TLS passthrough stream is one too); the relay answers plain requests with 426 itself.
        if (headers[Header.upgrade] === undefined)
          stream.respond({ ':status': 426, [Header.error]: 'upgrade_required' }, { endStream: true });
        else forwardToTcpTarget(stream, headers, service);
      } else if (headers[Header.upgrade] !== undefined) forwardUpgradeToTarget(stream, headers, service);
      else if (this.listenerCount('request') === 0) forwardToHttpTarget(stream, headers, service);
      else {
        const started = performance.now();
        forwardToHttpTarget(stream, headers, service, (status) =>
          this.emit('request', {
            service: service.name,
            method: String(headers[':method']),
            path: String(headers[':path']),
            status,
            durationMs: performance.now() - started,
          }),
        );
      }
    });
  }

  replay(request: ReplayRequest): Promise<{ id: string | undefined; status: number }> {
    const service = this.#services.find((s) => s.name === request.service);
    if (service === undefined || service.kind !== 'http')
      return Promise.reject(
        new OptionError(`the agent has no HTTP service "${request.service}" to replay to`),
      );
    return replayToTarget(service, request, this.#opts.targetConnectTimeoutMs * 3);
  }

  readonly #closeOnAbort = (): void => void this.close();

  close(): Promise<void> {
    this.#opts.signal?.removeEventListener('abort', this.#closeOnAbort);
    this.#closing ??= (async () => {
      await Promise.all(this.#slots.map((slot) => slot.stop(this.#opts.drainTimeoutMs)));
      for (const service of this.#services) service.pool.destroy();
      for (const service of this.#services) service.targetPool?.close();
      await Promise.all(this.#inProcess.map((app) => app.close()));
      this.#stalls.close();
    })();
    return this.#closing;
  }
}
