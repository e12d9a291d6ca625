/**
 * What the agent tells an observer (the inspector) about the traffic it forwards. The agent calls
 * these only when an observer is configured, so without one forwarding costs nothing extra.
 * Chunks are the very buffers being forwarded: an observer must not change them.
 */
export interface TrafficObserver {
  open(exchange: ObservedExchange): ExchangeRecord;
}

export type ExchangeKind = 'http' | 'websocket' | 'tcp';

export interface ObservedExchange {
  kind: ExchangeKind;
  service: string;
  method: string;
  path: string;
  /** The request's header lines as the agent sent them to the target (Host included), packed. */
  headers: PackedHeaders;
  /** The visitor's address as the relay reported it (X-Forwarded-For), if any. */
  visitor: string | undefined;
  /** The id of the capture this exchange replays. */
  replayOf?: string;
}

export interface ExchangeRecord {
  /** The capture's id, e.g. for `postern replay`. */
  readonly id: string;
  /** Bytes from the visitor towards the target (request body, WebSocket or TCP stream). */
  fromVisitor(chunk: Buffer): void;
  /** The target's answer (for WebSocket: its 101 or its refusal), its header lines packed. */
  response(status: number, headers: PackedHeaders): void;
  /** Bytes from the target towards the visitor. */
  toVisitor(chunk: Buffer): void;
  /** Once, when the exchange is over; `error` says how it was cut short. */
  end(error?: string): void;
}

/**
 * A header list as one flat string of `name: value\r\n` lines: what the inspector keeps of each
 * exchange's heads. One string, not a pair of strings per header, because a capture outlives V8's
 * young generation: with pairs every small GET left ~20 small objects to move and later to mark,
 * and the agent spent 45 % more CPU per request with the inspector on (docs/benchmarks.md). Packed
 * where the headers come from, with no pairs in between. HTTP field values hold no CR or LF, so each
 * line is one field.
 */
export type PackedHeaders = string;

// Each list is gathered in an array and joined at once into a flat string: `+=` would leave a
// rope of one piece per header for the capture to keep.

export function packPairs(pairs: readonly (readonly [string, string])[]): PackedHeaders {
  const parts: string[] = [];
  for (const [name, value] of pairs) parts.push(name, ': ', value, '\r\n');
  return parts.join('');
}

/** Node's rawHeaders list (names as the peer wrote them, order kept). */
export function packRawHeaders(raw: readonly string[]): PackedHeaders {
  const parts: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2)
    parts.push(raw[i] as string, ': ', raw[i + 1] as string, '\r\n');
  return parts.join('');
}

/** An outgoing headers object (a list value becomes one line per item). */
export function packOutgoing(headers: Record<string, number | string | string[] | undefined>): PackedHeaders {
  const parts: string[] = [];
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const one of value) parts.push(name, ': ', one, '\r\n');
    else parts.push(name, ': ', String(value), '\r\n');
  }
  return parts.join('');
}

export function unpackHeaders(packed: PackedHeaders): [string, string][] {
  const pairs: [string, string][] = [];
  for (let start = 0; start < packed.length; ) {
    let end = packed.indexOf('\r\n', start);
    if (end < 0) end = packed.length;
    // Names are never empty: the colon is searched from the second character (":authority" stays whole).
    const colon = packed.indexOf(': ', start + 1);
    if (colon < 0 || colon > end) pairs.push([packed.slice(start, end), '']);
    else pairs.push([packed.slice(start, colon), packed.slice(colon + 2, end)]);
    start = end + 2;
  }
  return pairs;
}

/** The visitor's address: the last X-Forwarded-For entry, which the relay appended. */
export function visitorOf(forwardedFor: string | string[] | number | undefined): string | undefined {
  const value = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor?.toString();
  if (value === undefined || value === '') return undefined;
  return value.slice(value.lastIndexOf(',') + 1).trim();
}
