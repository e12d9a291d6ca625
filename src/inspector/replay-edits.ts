import type { ReplayRequest } from '../agent/replay.js';
import type { Capture } from './capture-store.js';

/** Most headers an edited replay may carry. */
const MAX_HEADERS = 256;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
const FORBIDDEN_IN_VALUES = /[\0\r\n]/;

export class ReplayEditError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * The request a replay sends: the captured one, with the edits in `text` (JSON: method, path,
 * headers as [name, value] pairs, body as text or bodyBase64) applied. An empty text replays as is.
 */
export function parseReplayEdits(capture: Capture, text: string): ReplayRequest {
  if (capture.kind !== 'http')
    throw new ReplayEditError(
      409,
      `capture ${capture.id} is a ${capture.kind} connection; only HTTP requests can be replayed`,
    );
  let edits: Record<string, unknown> = {};
  if (text.trim() !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new ReplayEditError(400, `the edits are not JSON: ${(error as Error).message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new ReplayEditError(400, 'the edits must be a JSON object {method, path, headers, body}');
    edits = parsed as Record<string, unknown>;
  }
  const known = new Set(['method', 'path', 'headers', 'body', 'bodyBase64']);
  for (const key of Object.keys(edits))
    if (!known.has(key))
      throw new ReplayEditError(400, `unknown edit "${key}" (edits: ${[...known].join(', ')})`);
  const method = edits.method ?? capture.method;
  if (typeof method !== 'string' || !TOKEN.test(method))
    throw new ReplayEditError(400, 'method must be an HTTP method token, e.g. POST');
  const path = edits.path ?? capture.path;
  if (typeof path !== 'string' || !path.startsWith('/') || path.length > 8192 || /[\s\0-\x1f\x7f]/.test(path))
    throw new ReplayEditError(
      400,
      'path must start with "/" and hold no spaces or control characters (8 KiB at most)',
    );
  const headers = edits.headers === undefined ? capture.requestHeaders : checkHeaders(edits.headers);
  let body: Buffer;
  if (edits.body !== undefined && edits.bodyBase64 !== undefined)
    throw new ReplayEditError(400, 'give body or bodyBase64, not both');
  if (typeof edits.body === 'string') body = Buffer.from(edits.body, 'utf8');
  else if (typeof edits.bodyBase64 === 'string') body = Buffer.from(edits.bodyBase64, 'base64');
  else if (edits.body !== undefined || edits.bodyBase64 !== undefined)
    throw new ReplayEditError(400, 'body must be a string (bodyBase64 for bytes)');
  else {
    if (capture.request.truncated)
      throw new ReplayEditError(
        409,
        `the request body was kept only in part (${capture.request.kept} of ${capture.request.size} bytes); send the body to replay with`,
      );
    body = capture.request.bytes();
  }
  return { service: capture.service, method, path, headers, body, replayOf: capture.id };
}

function checkHeaders(value: unknown): [string, string][] {
  if (!Array.isArray(value) || value.length > MAX_HEADERS)
    throw new ReplayEditError(400, `headers must be a list of [name, value] pairs (at most ${MAX_HEADERS})`);
  return value.map((pair: unknown, index) => {
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      typeof pair[0] !== 'string' ||
      typeof pair[1] !== 'string'
    )
      throw new ReplayEditError(400, `header ${index + 1} must be a [name, value] pair of strings`);
    const [name, headerValue] = pair as [string, string];
    if (!TOKEN.test(name))
      throw new ReplayEditError(400, `header ${index + 1}: "${name}" is not a header name`);
    if (FORBIDDEN_IN_VALUES.test(headerValue))
      throw new ReplayEditError(400, `header ${name}: a value may not hold CR, LF or NUL`);
    return [name, headerValue];
  });
}
