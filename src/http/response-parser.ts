/**
 * An HTTP/1.1 response parser for the agent's own target connections (target-client.ts): a state
 * machine fed socket chunks, strict where a lenient parser would let a response be read two ways
 * (RFC 9112 §6.3, §11.2). It is stricter than llhttp's defaults: bare LF line ends, folded lines,
 * Content-Length beside Transfer-Encoding, conflicting lengths and control bytes in values are
 * errors. Each is a ResponseError with an llhttp-style code, so logs read as they did with undici.
 *
 * Every buffer is bounded: a head (and the trailer section) by `maxHeadBytes`, a chunk-size line
 * by CHUNK_LINE_LIMIT, interim (1xx) answers by INTERIM_LIMIT. Body bytes are passed on as slices
 * of the chunks read, never copied or held.
 */

/** What the parser found in a final response's head. */
export interface ResponseHead {
  status: number;
  /** Lowercase names; a repeated field as a list of its values, in order. */
  headers: Record<string, string | string[]>;
  /** The fields as the target wrote them, `Name: value\r\n` each (the inspector's packed form). */
  packed: string;
  /** Whether the connection may carry another request once this response has ended. */
  reusable: boolean;
  /** The idle time the target announced with `Keep-Alive: timeout=N`, in ms, if any. */
  keepAliveMs: number | undefined;
}

export interface ResponseEvents {
  onHead(head: ResponseHead): void;
  /** A part of the body, a slice of the chunk read (valid until the handler returns). */
  onBody(chunk: Buffer): void;
  /** The body is whole; `trailers` from a chunked body's trailer section. */
  onEnd(trailers: Record<string, string | string[]> | undefined): void;
}

export class ResponseError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** Default bound on a response head, as Node's and undici's 16 KiB. */
export const MAX_HEAD_BYTES = 16 * 1024;
/** The most header fields in one head or trailer section. */
export const MAX_FIELDS = 1000;
/** 100 Continue, 103 Early Hints…: more than this many before the answer is an error. */
const INTERIM_LIMIT = 16;
/** A chunk-size line with its extensions. */
const CHUNK_LINE_LIMIT = 4096;
/** 13 hex digits stay below 2^53: a chunk size is always an exact number. */
const CHUNK_SIZE = /^([0-9a-fA-F]{1,13})[\t ]*(?:;[\t\x20-\x7e\x80-\xff]*)?$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [\t\x20-\x7e\x80-\xff]*)?$/;
/** An RFC 9110 token: a method, a field name. */
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Control bytes but HTAB, and DEL: never in a field value. */
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const DIGITS = /^\d{1,15}$/;

const CRLF = Buffer.from('\r\n');
const CRLF2 = Buffer.from('\r\n\r\n');

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'close' | 'done';

export class ResponseParser {
  readonly #events: ResponseEvents;
  readonly #maxHeadBytes: number;
  readonly #bodiless: boolean;
  #state: State = 'head';
  /** Bytes of an unfinished head, chunk-size line or trailer section. */
  #pending: Buffer | undefined;
  #remaining = 0;
  #interim = 0;
  /** Whether bytes came after the response ended: the connection cannot be trusted again. */
  #extra = false;

  /** `bodiless`: the request was HEAD, so no response to it has a body whatever its head says. */
  constructor(events: ResponseEvents, options: { bodiless: boolean; maxHeadBytes?: number }) {
    this.#events = events;
    this.#bodiless = options.bodiless;
    this.#maxHeadBytes = options.maxHeadBytes ?? MAX_HEAD_BYTES;
  }

  /** Whether the response has ended. */
  get done(): boolean {
    return this.#state === 'done';
  }

  /** Whether any byte of a response has been read. */
  get started(): boolean {
    return this.#state !== 'head' || this.#pending !== undefined || this.#interim > 0;
  }

  /** Whether the response ended with bytes after it (then the connection is not reused). */
  get extraBytes(): boolean {
    return this.#extra;
  }

  /** Parses one chunk read from the target; throws ResponseError on a malformed response. */
  execute(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      switch (this.#state) {
        case 'head':
          at = this.#readHead(chunk, at);
          break;
        case 'length':
        case 'chunk-data': {
          const take = Math.min(this.#remaining, chunk.length - at);
          this.#remaining -= take;
          this.#events.onBody(take === chunk.length ? chunk : chunk.subarray(at, at + take));
          at += take;
          if (this.#remaining > 0) break;
          if (this.#state === 'length') this.#finish(undefined);
          else {
            this.#state = 'chunk-end';
            this.#remaining = 2;
          }
          break;
        }
        case 'chunk-size':
          at = this.#readChunkSize(chunk, at);
          break;
        case 'chunk-end':
          // The CRLF after a chunk's data, possibly split across reads.
          if (chunk[at] !== (this.#remaining === 2 ? 0x0d : 0x0a))
            throw new ResponseError('HPE_STRICT', 'no CRLF after a chunk of the body');
          at++;
          if (--this.#remaining === 0) this.#state = 'chunk-size';
          break;
        case 'trailers':
          at = this.#readTrailers(chunk, at);
          break;
        case 'close':
          this.#events.onBody(at === 0 ? chunk : chunk.subarray(at));
          at = chunk.length;
          break;
        case 'done':
          this.#extra = true;
          return;
      }
    }
  }

  /**
   * The target closed its side: ends a body read until close. Returns whether the response is
   * whole; anywhere else it was cut short.
   */
  finish(): boolean {
    if (this.#state === 'close') this.#finish(undefined);
    return this.#state === 'done';
  }

  #finish(trailers: Record<string, string | string[]> | undefined): void {
    this.#state = 'done';
    this.#events.onEnd(trailers);
  }

  /**
   * Collects bytes up to `terminator` (a head, a chunk-size line): the bytes before it and where the
   * rest of `chunk` begins, or undefined when `chunk` ended first (its bytes are kept, bounded).
   */
  #collect(
    chunk: Buffer,
    at: number,
    terminator: Buffer,
    limit: number,
    what: string,
  ): [Buffer, number] | undefined {
    const pending = this.#pending;
    const data = pending === undefined ? chunk.subarray(at) : Buffer.concat([pending, chunk.subarray(at)]);
    const end = data.indexOf(terminator);
    if (end > limit || (end === -1 && data.length > limit))
      throw new ResponseError('HPE_HEADER_OVERFLOW', `${what} over ${limit} bytes`);
    if (end === -1) {
      // A copy: the chunk read is not held beyond this call.
      this.#pending = pending === undefined ? Buffer.from(data) : data;
      return undefined;
    }
    this.#pending = undefined;
    return [data.subarray(0, end), at + end + terminator.length - (pending?.length ?? 0)];
  }

  #readHead(chunk: Buffer, at: number): number {
    const found = this.#collect(chunk, at, CRLF2, this.#maxHeadBytes, 'response head');
    if (found === undefined) return chunk.length;
    const [bytes, next] = found;
    const text = bytes.toString('latin1');
    const lines = text.split('\r\n');
    const match = STATUS_LINE.exec(lines[0] as string);
    if (match === null)
      throw new ResponseError(
        'HPE_INVALID_CONSTANT',
        `not an HTTP/1.x status line: ${quote(lines[0] as string)}`,
      );
    const status = Number(match[2]);
    const headers = parseFields(lines, 1);
    if (status < 200) {
      if (status === 101)
        throw new ResponseError('HPE_INVALID_STATUS', 'the target switched protocols unasked (101)');
      if (++this.#interim > INTERIM_LIMIT)
        throw new ResponseError('HPE_INVALID_STATUS', `more than ${INTERIM_LIMIT} interim (1xx) responses`);
      return next;
    }
    const http10 = match[1] === '0';
    const connection = listOf(headers.connection);
    let reusable = http10 ? connection.includes('keep-alive') : !connection.includes('close');
    const length = contentLength(headers['content-length']);
    const coding = headers['transfer-encoding'];
    if (coding !== undefined && length !== undefined)
      throw new ResponseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'both Content-Length and Transfer-Encoding');
    const bodiless = this.#bodiless || status === 204 || status === 304;
    if (bodiless) this.#state = 'done';
    else if (coding !== undefined) {
      const codings = listOf(coding);
      const chunked = codings.indexOf('chunked');
      if (chunked !== -1 && (chunked !== codings.length - 1 || http10))
        throw new ResponseError(
          'HPE_INVALID_TRANSFER_ENCODING',
          `Transfer-Encoding ${quote(String(coding))}`,
        );
      if (chunked === -1) {
        this.#state = 'close';
        reusable = false;
      } else this.#state = 'chunk-size';
    } else if (length !== undefined) {
      this.#state = length === 0 ? 'done' : 'length';
      this.#remaining = length;
    } else {
      this.#state = 'close';
      reusable = false;
    }
    this.#events.onHead({
      status,
      headers,
      packed: lines.length > 1 ? `${text.slice((lines[0] as string).length + 2)}\r\n` : '',
      reusable,
      keepAliveMs: keepAliveMs(headers['keep-alive']),
    });
    if (this.#state === 'done') this.#finish(undefined);
    return next;
  }

  #readChunkSize(chunk: Buffer, at: number): number {
    const found = this.#collect(chunk, at, CRLF, CHUNK_LINE_LIMIT, 'chunk-size line');
    if (found === undefined) return chunk.length;
    const [bytes, next] = found;
    const match = CHUNK_SIZE.exec(bytes.toString('latin1'));
    if (match === null) throw new ResponseError('HPE_INVALID_CHUNK_SIZE', 'a malformed chunk-size line');
    const size = Number.parseInt(match[1] as string, 16);
    if (size === 0) {
      // The line's own CRLF starts the trailer section, so one with no fields is CRLF CRLF too.
      this.#state = 'trailers';
      this.#pending = CRLF;
    } else {
      this.#state = 'chunk-data';
      this.#remaining = size;
    }
    return next;
  }

  #readTrailers(chunk: Buffer, at: number): number {
    const found = this.#collect(chunk, at, CRLF2, this.#maxHeadBytes, 'trailer section');
    if (found === undefined) return chunk.length;
    const [bytes, next] = found;
    this.#finish(bytes.length === 0 ? undefined : parseFields(bytes.toString('latin1').split('\r\n'), 1));
    return next;
  }
}

function parseFields(lines: string[], from: number): Record<string, string | string[]> {
  if (lines.length - from > MAX_FIELDS)
    throw new ResponseError('HPE_HEADER_OVERFLOW', `more than ${MAX_FIELDS} header fields`);
  const fields: Record<string, string | string[]> = Object.create(null);
  for (let i = from; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name))
      throw new ResponseError(
        'HPE_INVALID_HEADER_TOKEN',
        line[0] === ' ' || line[0] === '\t'
          ? 'a folded header line'
          : `a malformed header line: ${quote(line)}`,
      );
    const value = trimOws(line, colon + 1);
    if (BAD_VALUE.test(value))
      throw new ResponseError('HPE_INVALID_HEADER_TOKEN', `a control character in header ${name}`);
    const key = name.toLowerCase();
    const prior = fields[key];
    if (prior === undefined) fields[key] = value;
    else if (typeof prior === 'string') fields[key] = [prior, value];
    else prior.push(value);
  }
  return fields;
}

function trimOws(line: string, from: number): string {
  let start = from;
  let end = line.length;
  while (start < end && (line.charCodeAt(start) === 0x20 || line.charCodeAt(start) === 0x09)) start++;
  while (end > start && (line.charCodeAt(end - 1) === 0x20 || line.charCodeAt(end - 1) === 0x09)) end--;
  return line.slice(start, end);
}

/** Content-Length's value; repeats (as fields or a list) must agree (RFC 9110 §8.6). */
function contentLength(field: string | string[] | undefined): number | undefined {
  if (field === undefined) return undefined;
  let length: string | undefined;
  for (const value of listOf(field)) {
    if (!DIGITS.test(value))
      throw new ResponseError('HPE_INVALID_CONTENT_LENGTH', `Content-Length ${quote(value)}`);
    if (length !== undefined && Number(value) !== Number(length))
      throw new ResponseError('HPE_INVALID_CONTENT_LENGTH', 'conflicting Content-Length values');
    length = value;
  }
  if (length === undefined) throw new ResponseError('HPE_INVALID_CONTENT_LENGTH', 'an empty Content-Length');
  return Number(length);
}

/** The comma-separated tokens of a field, lowercase, across repeats. */
function listOf(field: string | string[] | undefined): string[] {
  if (field === undefined) return [];
  const whole = typeof field === 'string' ? field : field.join(',');
  const tokens: string[] = [];
  for (const token of whole.toLowerCase().split(',')) {
    const trimmed = token.trim();
    if (trimmed !== '') tokens.push(trimmed);
  }
  return tokens;
}

function keepAliveMs(field: string | string[] | undefined): number | undefined {
  if (field === undefined) return undefined;
  const match = /(?:^|[,;\s])timeout=(\d{1,9})/i.exec(String(field));
  return match === null ? undefined : Number(match[1]) * 1000;
}

function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}
