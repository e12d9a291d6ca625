import type { IncomingMuxHeaders } from '../mux/header-block.js';

/**
 * What a hostile agent could put in a response head to desynchronise the visitor's side (a proxy in
 * front of the relay shares its upstream connections between visitors): a Content-Length that
 * parsers read differently (`0x3b`, `+59`, `59e0`, two values), or a body length announced where
 * none may be (RFC 9110 §8.6: never on 1xx/204; 205 has no content, RFC 9110 §15.3.6).
 * Returns why the head is refused, or undefined when it may be passed on.
 */
export function responseFramingProblem(status: number, headers: IncomingMuxHeaders): string | undefined {
  const field = headers['content-length'];
  if (field === undefined) return undefined;
  const length =
    typeof field === 'number' && Number.isSafeInteger(field) && field >= 0 ? String(field) : field;
  if (typeof length !== 'string' || !/^\d{1,15}$/.test(length))
    return `content-length ${JSON.stringify(field)} is not one plain decimal number`;
  if (status === 204) return 'a 204 response carries a content-length';
  if (status === 205 && length !== '0') return 'a 205 response announces content';
  return undefined;
}

/** Fields that must never come in trailers (RFC 9110 §6.5.1): framing, routing and the trailer list. */
const FORBIDDEN_TRAILERS = new Set([
  'content-length',
  'transfer-encoding',
  'host',
  'trailer',
  'content-encoding',
]);

/** The first trailer field that would change how the message is framed or routed, if any. */
export function forbiddenTrailer(trailers: IncomingMuxHeaders): string | undefined {
  for (const name of Object.keys(trailers)) if (FORBIDDEN_TRAILERS.has(name)) return name;
  return undefined;
}
