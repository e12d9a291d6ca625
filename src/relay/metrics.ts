import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** What the relay is doing right now, read when /metrics is scraped (nothing to keep in step). */
export interface RelayState {
  sessions(): number;
  tunnels(): { online: number; known: number };
  waitingRequests(): number;
  /** Certificates the relay ordered by ACME (none without it): name and expiry, ms since the epoch. */
  certificates(): { name: string; notAfter: number }[];
}

export type StreamKind = 'http' | 'websocket' | 'tcp';

/**
 * The relay's Prometheus metrics (docs/operations.md lists them). Counters move on the hot path
 * with one increment each; gauges of current state are computed when scraped.
 */
export class RelayMetrics {
  readonly registry = new Registry();
  readonly #responses: Counter<'code'>;
  readonly #duration: Histogram;
  readonly #streams: Counter<'kind'>;
  readonly #activeStreams: Gauge<'kind'>;
  readonly #registrations: Counter<'result'>;
  readonly #visitorBytes: Counter<'direction'>;
  readonly #forwarded: Counter<'kind'>;
  readonly #acmeOrders: Counter<'result'>;

  constructor(state: RelayState) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'postern_relay_' });
    new Gauge({
      name: 'postern_sessions',
      help: 'Agent sessions open now.',
      registers,
      collect() {
        this.set(state.sessions());
      },
    });
    new Gauge({
      name: 'postern_tunnels',
      help: 'Tunnels known to this relay: online (an agent session serves it) or all (offline ones are kept for the retention time).',
      labelNames: ['state'],
      registers,
      collect() {
        const { online, known } = state.tunnels();
        this.set({ state: 'online' }, online);
        this.set({ state: 'all' }, known);
      },
    });
    new Gauge({
      name: 'postern_requests_waiting',
      help: 'Visitor requests waiting for an agent: one reconnecting, or a label not registered since the relay started.',
      registers,
      collect() {
        this.set(state.waitingRequests());
      },
    });
    this.#responses = new Counter({
      name: 'postern_http_responses_total',
      help: 'HTTP responses to visitors by status code; "cut" for responses that ended before they were whole.',
      labelNames: ['code'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'postern_http_request_duration_seconds',
      help: 'From a visitor request head to the end of its response (all responses, errors included).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#streams = new Counter({
      name: 'postern_streams_total',
      help: 'Streams opened to agents, by kind: http requests, websocket and tcp (preflight) connections.',
      labelNames: ['kind'],
      registers,
    });
    this.#activeStreams = new Gauge({
      name: 'postern_streams_active',
      help: 'Streams open to agents now, by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.#registrations = new Counter({
      name: 'postern_registrations_total',
      help: 'Agent registrations: "ok", or the Postern-Error code they were refused with.',
      labelNames: ['result'],
      registers,
    });
    this.#visitorBytes = new Counter({
      name: 'postern_visitor_bytes_total',
      help: 'Bytes read from (in) and written to (out) visitor connections, counted when each connection closes.',
      labelNames: ['direction'],
      registers,
    });
    this.#forwarded = new Counter({
      name: 'postern_forwarded_streams_total',
      help: 'Streams this node sent to another cluster node holding the tunnel, by kind (cluster mode).',
      labelNames: ['kind'],
      registers,
    });
    new Gauge({
      name: 'postern_tls_certificate_expiry_timestamp_seconds',
      help: 'When each certificate the relay got by ACME expires (Unix time), by name ("*.<domain>" for the wildcard).',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        for (const { name, notAfter } of state.certificates())
          this.set({ name }, Math.floor(notAfter / 1000));
      },
    });
    this.#acmeOrders = new Counter({
      name: 'postern_acme_orders_total',
      help: 'ACME certificate orders that finished, by result: "issued" or "failed".',
      labelNames: ['result'],
      registers,
    });
    for (const kind of ['http', 'websocket', 'tcp'] as const) {
      this.#forwarded.inc({ kind }, 0);
      this.#streams.inc({ kind }, 0);
      this.#activeStreams.set({ kind }, 0);
    }
    this.#registrations.inc({ result: 'ok' }, 0);
  }

  /** A visitor's HTTP response ended: its status (or 'cut') and how long since its request head. */
  response(code: number | 'cut', seconds: number): void {
    this.#responses.inc({ code: String(code) });
    this.#duration.observe(seconds);
  }

  /** A stream to an agent opened; call the result when it closes. */
  streamOpened(kind: StreamKind): () => void {
    this.#streams.inc({ kind });
    this.#activeStreams.inc({ kind });
    return () => this.#activeStreams.dec({ kind });
  }

  /** A visitor stream went to another cluster node. */
  forwarded(kind: StreamKind): void {
    this.#forwarded.inc({ kind });
  }

  acmeOrder(result: 'issued' | 'failed'): void {
    this.#acmeOrders.inc({ result });
  }

  registration(result: string): void {
    this.#registrations.inc({ result });
  }

  visitorClosed(bytesRead: number, bytesWritten: number): void {
    this.#visitorBytes.inc({ direction: 'in' }, bytesRead);
    this.#visitorBytes.inc({ direction: 'out' }, bytesWritten);
  }
}
