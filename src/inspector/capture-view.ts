import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import type { Capture, CapturedBody } from './capture-store.js';

/** A decoded (gunzipped…) body larger than this is shown encoded. */
const DECODED_LIMIT = 4 << 20;

/** One line of the list, as /api/requests and the live events give it. */
export function captureSummary(capture: Capture): Record<string, unknown> {
  return {
    id: capture.id,
    kind: capture.kind,
    service: capture.service,
    visitor: capture.visitor ?? null,
    replayOf: capture.replayOf ?? null,
    startedAt: new Date(capture.startedAt).toISOString(),
    durationMs: capture.durationMs === undefined ? null : Math.round(capture.durationMs * 10) / 10,
    state: capture.state,
    error: capture.error ?? null,
    method: capture.method,
    path: capture.path,
    status: capture.status ?? null,
    bytesIn: capture.request.size,
    bytesOut: capture.response.size,
    messages: capture.messageCount,
  };
}

/** Everything kept of one exchange, as /api/requests/:id gives it. */
export function captureDetail(capture: Capture): Record<string, unknown> {
  return {
    ...captureSummary(capture),
    requestHeaders: capture.requestHeaders,
    responseHeaders: capture.responseHeaders,
    ...(capture.kind === 'http'
      ? {
          requestBody: bodyView(capture.request, capture.requestHeaders),
          responseBody: bodyView(capture.response, capture.responseHeaders),
        }
      : {}),
    ...(capture.kind === 'websocket'
      ? {
          framingNote: capture.framingNote ?? null,
          messagesKept: capture.messages.length,
          messageList: capture.messages.map((m) => ({
            direction: m.direction,
            atMs: Math.round(m.at * 10) / 10,
            type: m.type,
            size: m.size,
            truncated: m.truncated,
            compressed: m.compressed,
            ...(m.type === 'close'
              ? closePayload(m.data)
              : payload(m.data, m.type === 'text' && !m.compressed)),
          })),
        }
      : {}),
  };
}

/**
 * A body for display: text when it is valid UTF-8 without binary control characters, else base64;
 * a gzip/deflate/br body kept whole is shown decoded (`decodedFrom` names the encoding).
 */
function bodyView(body: CapturedBody, headers: [string, string][]): Record<string, unknown> {
  let bytes = body.bytes();
  let decodedFrom: string | null = null;
  const encoding = headerValue(headers, 'content-encoding')?.trim().toLowerCase();
  if (encoding !== undefined && encoding !== 'identity' && !body.truncated && bytes.length > 0) {
    const decoded = decode(bytes, encoding);
    if (decoded !== undefined) {
      bytes = decoded;
      decodedFrom = encoding;
    }
  }
  return {
    size: body.size,
    kept: body.kept,
    truncated: body.truncated,
    contentType: headerValue(headers, 'content-type') ?? null,
    decodedFrom,
    ...payload(bytes, true),
  };
}

/** Searchable text of a body: decoded when possible, bytes as Latin-1 otherwise. */
export function bodyText(body: CapturedBody, headers: [string, string][]): string {
  const bytes = body.bytes();
  const encoding = headerValue(headers, 'content-encoding')?.trim().toLowerCase();
  const decoded =
    encoding !== undefined && encoding !== 'identity' && !body.truncated
      ? decode(bytes, encoding)
      : undefined;
  return (decoded ?? bytes).toString('latin1');
}

function decode(bytes: Buffer, encoding: string): Buffer | undefined {
  const options = { maxOutputLength: DECODED_LIMIT };
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') return gunzipSync(bytes, options);
    if (encoding === 'deflate') return inflateSync(bytes, options);
    if (encoding === 'br') return brotliDecompressSync(bytes, options);
  } catch {
    // Not what it says it is, or too big decoded: shown as sent.
  }
  return undefined;
}

/** A close frame as its code and reason, e.g. "1000 bye". */
function closePayload(data: Buffer): { text: string } | { base64: string } {
  if (data.length < 2) return { text: data.length === 0 ? '(no code)' : '(bad close payload)' };
  const reason = payload(data.subarray(2), true);
  return 'text' in reason
    ? { text: `${data.readUInt16BE(0)}${reason.text === '' ? '' : ` ${reason.text}`}` }
    : { base64: data.toString('base64') };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function payload(bytes: Buffer, tryText: boolean): { text: string } | { base64: string } {
  if (tryText) {
    try {
      const text = utf8.decode(bytes);
      // NUL and other C0 controls (but tab, LF, CR, ESC-free text) mean binary.
      if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(text)) return { text };
    } catch {
      // Not UTF-8: binary.
    }
  }
  return { base64: bytes.toString('base64') };
}

export function headerValue(headers: [string, string][], name: string): string | undefined {
  for (const [key, value] of headers) if (key.toLowerCase() === name) return value;
  return undefined;
}

export interface CaptureFilter {
  /** Full-text: method, path, status, service, visitor, headers, bodies and WebSocket messages. */
  q?: string | undefined;
  kind?: string | undefined;
  service?: string | undefined;
  /** '2xx', '3xx', '4xx', '5xx' or 'failed'. */
  status?: string | undefined;
}

export function matches(capture: Capture, filter: CaptureFilter): boolean {
  if (filter.kind && capture.kind !== filter.kind) return false;
  if (filter.service && capture.service !== filter.service) return false;
  if (filter.status) {
    if (filter.status === 'failed') {
      if (capture.state !== 'failed') return false;
    } else if (String(capture.status ?? '').charAt(0) !== filter.status.charAt(0)) return false;
  }
  if (!filter.q) return true;
  // Latin-1 on both sides: ASCII matches without case, other UTF-8 byte for byte.
  const needle = Buffer.from(filter.q.toLowerCase(), 'utf8').toString('latin1');
  const fields = [
    capture.method,
    capture.path,
    String(capture.status ?? ''),
    capture.service,
    capture.visitor ?? '',
    capture.error ?? '',
  ];
  for (const [name, value] of [...capture.requestHeaders, ...capture.responseHeaders])
    fields.push(`${name}: ${value}`);
  if (fields.some((field) => Buffer.from(field.toLowerCase(), 'utf8').toString('latin1').includes(needle)))
    return true;
  const texts = [
    () => bodyText(capture.request, capture.requestHeaders),
    () => bodyText(capture.response, capture.responseHeaders),
    ...capture.messages.map((m) => () => m.data.toString('latin1')),
  ];
  return texts.some((text) => text().toLowerCase().includes(needle));
}
