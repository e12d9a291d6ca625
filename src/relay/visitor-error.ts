import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { statusOf, type WireErrorCode } from '../errors.js';
import { Header } from '../session/protocol.js';

/**
 * Answers a visitor with Postern's own error: the status, `Postern-Error: <code>` and a one-line
 * text body. If the response head is already out, the connection is destroyed instead, so the
 * visitor sees a broken transfer and never a clean end with missing bytes.
 */
export function sendVisitorError(
  res: ServerResponse,
  code: WireErrorCode,
  message: string,
  extraHeaders: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const status = statusOf(code);
  const html = wantsHtml(res.req?.headers.accept);
  const body = html ? errorPage(status, code, message) : `postern: ${message}\n`;
  res.writeHead(status, {
    'content-type': html ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    // The page quotes what visitors sent (a Host, a path): nothing in it may run or load.
    ...(html ? { 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'" } : {}),
    vary: 'Accept',
    [Header.error]: code,
    ...extraHeaders,
  });
  res.end(body);
}

/** A browser navigating (Accept names text/html); curl, scripts and APIs get the plain line. */
function wantsHtml(accept: string | undefined): boolean {
  return accept !== undefined && /(^|,)\s*text\/html\s*(;|,|$)/i.test(accept);
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

/** A short page for people: the status, the same one-line reason, the code to search for. */
function errorPage(status: number, code: WireErrorCode, message: string): string {
  const title = `${status} ${STATUS_CODES[status] ?? 'Error'}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${title} · postern</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}p.code{color:#666;font:14px ui-monospace,monospace}</style>
</head><body><h1>${title}</h1><p>${escapeHtml(message)}</p><p class="code">Postern-Error: ${code}</p></body></html>
`;
}

/** The same answer written raw on a socket that is not (or no longer) an http.ServerResponse. */
export function writeRawError(
  socket: Duplex,
  code: WireErrorCode,
  message: string,
  extraHeaders: Record<string, string> = {},
): void {
  const status = statusOf(code);
  const body = `postern: ${message}\n`;
  const extra = Object.entries(extraHeaders)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  if (!socket.destroyed && socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n${Header.error}: ${code}\r\nConnection: close\r\n${extra}\r\n${body}`,
    );
  }
  // Closing at once would reset the connection if the peer sent more than we read, and a reset can
  // discard the answer; read and discard instead, and close when the peer does or after a grace.
  socket.resume();
  socket.once('end', () => socket.destroy());
  setTimeout(() => socket.destroy(), RAW_ERROR_GRACE_MS).unref();
}

/** How long a socket answered with a raw error stays open for the answer to arrive, ms. */
const RAW_ERROR_GRACE_MS = 2_000;

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};
