import { brotliDecompress, gunzip, inflate } from 'node:zlib';
import { type Capture, type CapturedBody, type CaptureStore, DECODED_LIMIT } from './capture-store.js';

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
export async function captureDetail(store: CaptureStore, capture: Capture): Promise<Record<string, unknown>> {
  return {
    ...captureSummary(capture),
    requestHeaders: capture.requestHeaders,
    responseHeaders: capture.responseHeaders,
    ...(capture.kind === 'http'
      ? {
          requestBody: await bodyView(store, capture, capture.request, capture.requestHeaders),
          responseBody: await bodyView(store, capture, capture.response, capture.responseHeaders),
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
            inflatedSize: m.inflatedSize ?? null,
            inflateNote: m.inflateNote ?? null,
            ...(m.type === 'close'
              ? closePayload(m.data)
              : payload(m.data, m.type === 'text' && (!m.compressed || m.inflatedSize !== undefined))),
          })),
        }
      : {}),
  };
}

/**
 * A body for display: text when it is valid UTF-8 without binary control characters, else base64;
 * a gzip/deflate/br body kept whole is shown decoded (`decodedFrom` names the encoding).
 */
async function bodyView(
  store: CaptureStore,
  capture: Capture,
  body: CapturedBody,
  headers: [string, string][],
): Promise<Record<string, unknown>> {
  const decoded = await decodedBody(store, capture, body, headers);
  return {
    size: body.size,
    kept: body.kept,
    truncated: body.truncated,
    contentType: headerValue(headers, 'content-type') ?? null,
    decodedFrom: decoded === undefined ? null : contentEncoding(headers),
    ...payload(decoded ?? body.bytes(), true),
  };
}

function contentEncoding(headers: [string, string][]): string | undefined {
  const encoding = headerValue(headers, 'content-encoding')?.trim().toLowerCase();
  return encoding === undefined || encoding === 'identity' ? undefined : encoding;
}

/**
 * The body decoded, or undefined when it is not encoded, not kept whole, or does not decode to at
 * most DECODED_LIMIT. zlib's asynchronous calls work on libuv's thread pool, so a decode never
 * holds the agent's event loop (synchronous ones took 24 s for one search of 300 bombs); each
 * body is decoded at most once, and what is kept counts against the store's budget.
 */
export function decodedBody(
  store: CaptureStore,
  capture: Capture,
  body: CapturedBody,
  headers: [string, string][],
): Promise<Buffer | undefined> {
  if (body.decoding !== undefined) return body.decoding;
  const encoding = contentEncoding(headers);
  const decoder = encoding === undefined ? undefined : DECODERS[encoding];
  if (decoder === undefined || body.truncated || body.kept === 0 || capture.state === 'open')
    return Promise.resolve(undefined);
  body.decoding = new Promise((resolve) => {
    decoder(body.bytes(), { maxOutputLength: DECODED_LIMIT }, (error, decoded) => {
      // Not what it says it is, or too big decoded: shown and searched as sent.
      // Without room in the store's budget it is not kept either: searched as sent from then on.
      resolve(error === null && store.noteDecoded(capture, decoded.length) ? decoded : undefined);
    });
  });
  return body.decoding;
}

type Decoder = (
  bytes: Buffer,
  options: { maxOutputLength: number },
  callback: (error: Error | null, result: Buffer) => void,
) => void;

const DECODERS: Record<string, Decoder> = {
  gzip: gunzip,
  'x-gzip': gunzip,
  deflate: inflate,
  br: brotliDecompress,
};

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

/** Whether a capture passes the filter; bodies are searched decoded when they decode (decodedBody()). */
export async function matches(
  store: CaptureStore,
  capture: Capture,
  filter: CaptureFilter,
): Promise<boolean> {
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
  for (const [body, headers] of [
    [capture.request, capture.requestHeaders],
    [capture.response, capture.responseHeaders],
  ] as const) {
    const bytes = (await decodedBody(store, capture, body, headers)) ?? body.bytes();
    if (bytes.toString('latin1').toLowerCase().includes(needle)) return true;
  }
  return capture.messages.some((m) => m.data.toString('latin1').toLowerCase().includes(needle));
}
