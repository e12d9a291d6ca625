import { PosternError } from '../errors.js';

/**
 * A custom header for the preflight request, in either form AMPS clients accept: a raw line
 * (`"Cookie: a=1; b=2"`) or a name/value pair (`["Token", "value"]`).
 */
export type PreflightHeader = string | readonly [string, string];

/** A header that cannot be sent; raised before anything goes on the wire. */
export class BadHeaderError extends PosternError {
  constructor(message: string) {
    super('POSTERN_BAD_HEADER', message);
    this.name = 'BadHeaderError';
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Visible ASCII, obs-text, spaces and tabs inside: no CR, LF, NUL or other control characters.
const FIELD_VALUE = /^[\t\u0020-\u007e\u0080-\u00ff]*$/;
/** Headers the preflight sets itself; a custom one may not replace them. */
const RESERVED = new Set(['host', 'connection', 'upgrade', 'content-length', 'transfer-encoding']);

/** Validates one header in either form and returns it as [name, value]. */
export function normalizePreflightHeader(header: PreflightHeader): [string, string] {
  let name: string;
  let value: string;
  if (typeof header === 'string') {
    const colon = header.indexOf(':');
    if (colon <= 0) throw new BadHeaderError(`header line ${JSON.stringify(header)} is not "Name: value"`);
    name = header.slice(0, colon);
    value = header.slice(colon + 1).trim();
  } else {
    [name, value] = header;
    value = value.trim();
  }
  if (!TOKEN.test(name))
    throw new BadHeaderError(`header name ${JSON.stringify(name)} is not a valid HTTP token`);
  if (!FIELD_VALUE.test(value)) {
    throw new BadHeaderError(
      `value of header ${name} has a character not allowed in HTTP (CR, LF or another control character)`,
    );
  }
  if (RESERVED.has(name.toLowerCase()))
    throw new BadHeaderError(`header ${name} is set by the preflight itself and cannot be replaced`);
  return [name, value];
}
