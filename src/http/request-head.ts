import type { OutgoingHttpHeaders } from 'node:http';
import { TOKEN } from './response-parser.js';

/** What a field value may hold on the wire: no control bytes but HTAB, nothing past latin1. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** A request target: visible bytes only, as Node's http.request allows. */
const REQUEST_TARGET = /^[\x21-\xff]+$/;

/**
 * The HTTP/1.1 head of a request without a body, Host first, as one latin1 string to write in one
 * call. Throws a TypeError naming what cannot be written (a method, a path, a field): such a
 * request is answered 502 by the caller, never sent in part.
 */
export function formatRequestHead(
  method: string,
  path: string,
  host: string,
  headers: OutgoingHttpHeaders,
): string {
  if (!TOKEN.test(method) || method === 'CONNECT') throw new TypeError(`method ${JSON.stringify(method)}`);
  if (!REQUEST_TARGET.test(path)) throw new TypeError(`request target ${JSON.stringify(path)}`);
  if (!FIELD_VALUE.test(host)) throw new TypeError('a control character in header host');
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name === 'host') continue;
    if (!TOKEN.test(name)) throw new TypeError(`header name ${JSON.stringify(name)}`);
    if (Array.isArray(value)) for (const one of value) head += field(name, one);
    else head += field(name, String(value));
  }
  return `${head}\r\n`;
}

function field(name: string, value: string): string {
  if (!FIELD_VALUE.test(value)) throw new TypeError(`a control character in header ${name}`);
  return `${name}: ${value}\r\n`;
}
