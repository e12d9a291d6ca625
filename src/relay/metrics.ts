import type { Registry } from 'prom-client';

/** What the relay is doing right now, read when /metrics is scraped (nothing to keep in step). */
export interface RelayState {
  sessions(): number;
  tunnels(): { online: number; known: number };
  waitingRequests(): number;
  /** Certificates the relay ordered by ACME (none without it): name and expiry, ms since the epoch. */
  certificates(): { name: string; notAfter: number }[];
}

export type StreamKind = 'http' | 'websocket' | 'tcp';

const STREAM_KINDS: readonly StreamKind[] = ['http', 'websocket', 'tcp'];
/** Upper bounds of postern_http_request_duration_seconds' buckets. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

type PromClient = typeof import('prom-client');

/**
 * The relay's Prometheus metrics (docs/operations.md lists them). The hot path only adds to plain
 * numbers, which prom-client's registry reads when scraped: a request pays no label hashing. The
 * registry exists once load() ran (createRelay runs it unless `metrics: false`): the embedded
 * relay of `postern expose`, which serves no /metrics, never loads prom-client (~40 ms at start).
 */
export class RelayMetrics {
  readonly #state: RelayState;
  #registry: Registry | undefined;
  readonly #responses = new Map<string, number>();
  /** Counts per bucket of DURATION_BUCKETS (not cumulative), and the responses past the last. */
  readonly #durationBuckets = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
  #durationSum = 0;
  readonly #streams = { http: 0, websocket: 0, tcp: 0 };
  readonly #activeStreams = { http: 0, websocket: 0, tcp: 0 };
  readonly #forwarded = { http: 0, websocket: 0, tcp: 0 };
  readonly #registrations = new Map<string, number>([['ok', 0]]);
  readonly #acmeOrders = new Map<string, number>();
  #visitorBytesIn = 0;
  #visitorBytesOut = 0;

  constructor(state: RelayState) {
    this.#state = state;
  }

  /** Loads prom-client and builds the registry, once. */
  async load(): Promise<void> {
    if (this.#registry !== undefined) return;
    const promClient = await import('prom-client');
    this.#registry ??= this.#buildRegistry(promClient);
  }

  /** The prom-client registry of these metrics. */
  get registry(): Registry {
    if (this.#registry === undefined)
      throw new Error('this relay keeps no Prometheus registry: it was created with metrics: false');
    return this.#registry;
  }

  /** A visitor's HTTP response ended: its status (or 'cut') and how long since its request head. */
  response(code: number | 'cut', seconds: number): void {
    const key = String(code);
    this.#responses.set(key, (this.#responses.get(key) ?? 0) + 1);
    let bucket = 0;
    while (bucket < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[bucket] as number)) bucket++;
    this.#durationBuckets[bucket] = (this.#durationBuckets[bucket] as number) + 1;
    this.#durationSum += seconds;
  }

  /** A stream to an agent opened; call the result when it closes. */
  streamOpened(kind: StreamKind): () => void {
    this.#streams[kind]++;
    this.#activeStreams[kind]++;
    return () => {
      this.#activeStreams[kind]--;
    };
  }

  /** A visitor stream went to another cluster node. */
  forwarded(kind: StreamKind): void {
    this.#forwarded[kind]++;
  }

  acmeOrder(result: 'issued' | 'failed'): void {
    this.#acmeOrders.set(result, (this.#acmeOrders.get(result) ?? 0) + 1);
  }

  registration(result: string): void {
    this.#registrations.set(result, (this.#registrations.get(result) ?? 0) + 1);
  }

  visitorClosed(bytesRead: number, bytesWritten: number): void {
    this.#visitorBytesIn += bytesRead;
    this.#visitorBytesOut += bytesWritten;
  }

  #buildRegistry({ Counter, Gauge, Registry, collectDefaultMetrics }: PromClient): Registry {
    const registry = new Registry();
    const registers = [registry];
    const state = this.#state;
    collectDefaultMetrics({ register: registry, prefix: 'postern_relay_' });
    // Each metric is set from the numbers above when scraped (collect).
    const counter = <L extends string>(
      name: string,
      help: string,
      label: L,
      values: () => Iterable<[string, number]>,
    ): void => {
      new Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          this.reset();
          for (const [value, count] of values()) this.inc({ [label]: value } as Record<L, string>, count);
        },
      });
    };
    const byKind = (counts: Record<StreamKind, number>) => (): [string, number][] =>
      STREAM_KINDS.map((kind) => [kind, counts[kind]]);
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
    counter(
      'postern_http_responses_total',
      'HTTP responses to visitors by status code; "cut" for responses that ended before they were whole.',
      'code',
      () => this.#responses,
    );
    registry.registerMetric(this.#durationHistogram());
    counter(
      'postern_streams_total',
      'Streams opened to agents, by kind: http requests, websocket and tcp (preflight) connections.',
      'kind',
      byKind(this.#streams),
    );
    const active = this.#activeStreams;
    new Gauge({
      name: 'postern_streams_active',
      help: 'Streams open to agents now, by kind.',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const kind of STREAM_KINDS) this.set({ kind }, active[kind]);
      },
    });
    counter(
      'postern_registrations_total',
      'Agent registrations: "ok", or the Postern-Error code they were refused with.',
      'result',
      () => this.#registrations,
    );
    counter(
      'postern_visitor_bytes_total',
      'Bytes read from (in) and written to (out) visitor connections, counted when each connection closes.',
      'direction',
      () => [
        ['in', this.#visitorBytesIn],
        ['out', this.#visitorBytesOut],
      ],
    );
    counter(
      'postern_forwarded_streams_total',
      'Streams this node sent to another cluster node holding the tunnel, by kind (cluster mode).',
      'kind',
      byKind(this.#forwarded),
    );
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
    counter(
      'postern_acme_orders_total',
      'ACME certificate orders that finished, by result: "issued" or "failed".',
      'result',
      () => this.#acmeOrders,
    );
    return registry;
  }

  /**
   * postern_http_request_duration_seconds, read from the bucket counts. prom-client's Histogram
   * only counts what it observes itself, so the registry gets an object of its metric shape.
   */
  #durationHistogram(): Parameters<Registry['registerMetric']>[0] {
    const name = 'postern_http_request_duration_seconds';
    const help = 'From a visitor request head to the end of its response (all responses, errors included).';
    const get = async () => {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      let cumulative = 0;
      DURATION_BUCKETS.forEach((le, i) => {
        cumulative += this.#durationBuckets[i] as number;
        values.push({ labels: { le }, value: cumulative, metricName: `${name}_bucket` });
      });
      cumulative += this.#durationBuckets[DURATION_BUCKETS.length] as number;
      values.push({ labels: { le: '+Inf' }, value: cumulative, metricName: `${name}_bucket` });
      values.push({ labels: {}, value: this.#durationSum, metricName: `${name}_sum` });
      values.push({ labels: {}, value: cumulative, metricName: `${name}_count` });
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    };
    // The registry reads a metric through get() (and name, for its index); the class type it
    // declares also names methods it never calls.
    return { name, help, get, reset: () => {} } as unknown as Parameters<Registry['registerMetric']>[0];
  }
}
