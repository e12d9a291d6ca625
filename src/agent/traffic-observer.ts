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
  /** The request as the agent sent it to the target (Host included). */
  headers: [string, string][];
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
  /** The target's answer (for WebSocket: its 101 or its refusal). */
  response(status: number, headers: [string, string][]): void;
  /** Bytes from the target towards the visitor. */
  toVisitor(chunk: Buffer): void;
  /** Once, when the exchange is over; `error` says how it was cut short. */
  end(error?: string): void;
}

/** Header pairs from Node's rawHeaders list (names as the peer wrote them, order kept). */
export function headerPairs(raw: readonly string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i] as string, raw[i + 1] as string]);
  return pairs;
}

/** Header pairs from an outgoing headers object (list values become one pair each). */
export function outgoingPairs(
  headers: Record<string, number | string | string[] | undefined>,
): [string, string][] {
  const pairs: [string, string][] = [];
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const one of value) pairs.push([name, one]);
    else pairs.push([name, String(value)]);
  }
  return pairs;
}

/** The visitor's address: the last X-Forwarded-For entry, which the relay appended. */
export function visitorOf(forwardedFor: string | string[] | number | undefined): string | undefined {
  const value = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor?.toString();
  if (value === undefined || value === '') return undefined;
  return value.slice(value.lastIndexOf(',') + 1).trim();
}
