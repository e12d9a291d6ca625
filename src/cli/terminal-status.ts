import type { AssignedService } from '../session/protocol.js';

/** Requests kept for the list and the figures. */
const RECENT_REQUESTS = 200;
/** Shown in the list. */
const SHOWN_REQUESTS = 12;
/** Requests/s is counted over this window. */
const RATE_WINDOW_MS = 10_000;
/** Redraws at most this often. */
const REDRAW_MS = 250;

interface RequestLine {
  at: number;
  method: string;
  path: string;
  status: number;
  durationMs: number;
}

/**
 * `postern expose` on a terminal: one screen, redrawn in place like ngrok's — where each service
 * is forwarded, the sessions' state, requests per second, latency percentiles and the last
 * requests. Scripts get --json; pipes and --plain get plain lines.
 */
export class TerminalStatus {
  readonly #out: NodeJS.WriteStream;
  readonly #targets: Map<string, string>;
  readonly #sessions = new Map<number, string>();
  readonly #requests: RequestLine[] = [];
  #services: AssignedService[] = [];
  #total = 0;
  #note = '';
  /** Whether any session was ever up: before that the relay is being reached, not lost. */
  #everOnline = false;
  #timer: NodeJS.Timeout | undefined;
  #dirty = true;
  readonly #inspector: string | undefined;

  constructor(
    out: NodeJS.WriteStream,
    targets: Map<string, string>,
    connections: number,
    inspector: string | undefined,
  ) {
    this.#out = out;
    this.#inspector = inspector;
    this.#targets = targets;
    for (let i = 0; i < connections; i++) this.#sessions.set(i, 'connecting');
    this.#timer = setInterval(() => this.#draw(), REDRAW_MS);
    this.#timer.unref();
    this.#draw();
  }

  ready(services: AssignedService[]): void {
    this.#services = services;
    this.#changed();
  }

  connected(connection: number): void {
    this.#everOnline = true;
    this.#note = '';
    this.#sessions.set(connection, 'online');
    this.#changed();
  }

  disconnected(connection: number, reason: string): void {
    if (this.#everOnline) {
      this.#sessions.set(connection, 'reconnecting');
      this.#note = `last loss: ${reason}`;
    } else this.#note = `cannot reach the relay: ${reason}`;
    this.#changed();
  }

  /** A line under the figures until the next one: a target down or back, a session lost. */
  note(text: string): void {
    this.#note = text;
    this.#changed();
  }

  request(line: Omit<RequestLine, 'at'>): void {
    this.#total++;
    this.#requests.push({ ...line, at: Date.now() });
    if (this.#requests.length > RECENT_REQUESTS) this.#requests.shift();
    this.#changed();
  }

  stop(message: string): void {
    clearInterval(this.#timer);
    this.#note = message;
    this.#dirty = true;
    this.#draw();
  }

  #changed(): void {
    this.#dirty = true;
  }

  #draw(): void {
    // The rate decays with time even without new requests, so redraw while any are recent.
    const now = Date.now();
    const recent = this.#requests.filter((r) => now - r.at <= RATE_WINDOW_MS);
    if (!this.#dirty && recent.length === 0) return;
    this.#dirty = false;
    const online = [...this.#sessions.values()].filter((s) => s === 'online').length;
    const state =
      online === this.#sessions.size
        ? 'online'
        : online > 0
          ? 'degraded'
          : this.#everOnline
            ? 'reconnecting'
            : 'connecting';
    const sorted = this.#requests.map((r) => r.durationMs).sort((a, b) => a - b);
    const pct = (p: number): string =>
      sorted.length === 0
        ? '—'
        : `${(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0).toFixed(0)} ms`;
    const width = Math.max(60, this.#out.columns ?? 80);
    // Status rows wrap rather than lose the end of a URL; request rows are cut to the width.
    const row = (label: string, value: string): string => `${label.padEnd(19)}${value}`;
    const lines = [
      'postern                                              (Ctrl+C to quit)',
      '',
      row('Session status', `${state} (${online} of ${this.#sessions.size} sessions)`),
      ...(this.#services.length === 0
        ? [row('Forwarding', 'registering…')]
        : this.#services.flatMap((s, i) => {
            const label = i === 0 ? 'Forwarding' : '';
            const url = s.connect ?? s.url;
            const target = `-> ${this.#targets.get(s.name) ?? ''}`;
            // The terminal would wrap a long row mid-URL: the target goes on its own row, and
            // the URL on a row of its own from the first column if even that is too narrow.
            const one = row(label, `${url} ${target}`);
            if (one.length <= width) return [one];
            if (row(label, url).length <= width) return [row(label, url), row('', target)];
            return [label, url, row('', target)];
          })),
      ...(this.#inspector === undefined ? [] : [row('Web Interface', this.#inspector)]),
      row(
        'Requests',
        `${this.#total} total · ${(recent.length / (RATE_WINDOW_MS / 1000)).toFixed(1)}/s · p50 ${pct(0.5)} · p90 ${pct(0.9)} (last ${sorted.length})`,
      ),
      ...(this.#note === '' ? [] : [row('', this.#note)]),
      '',
      'HTTP requests',
      '-------------',
      ...this.#requests
        .slice(-SHOWN_REQUESTS)
        .reverse()
        .map(
          (r) =>
            `${`${r.method} ${r.path}`.slice(0, width - 20).padEnd(Math.min(60, width - 20))} ${String(r.status).padEnd(5)} ${r.durationMs.toFixed(0).padStart(6)} ms`,
        ),
    ];
    // Home, clear to the end of the screen, draw: no flicker from a full clear, no scrollback spam.
    this.#out.write(`\x1b[H\x1b[J${lines.join('\n')}\n`);
  }
}
