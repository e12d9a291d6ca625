import type { IncomingMuxHeaders } from './header-block.js';

/**
 * The HTTP rules a stream's bytes must keep, checked as they arrive as HTTP/2 does (RFC 9113
 * §8.1): a body that runs long or ends short of its content-length is a broken stream, never
 * passed on as whole; 1xx heads come before the response; a HEAD's, a 204's and a 304's response
 * has no body whatever it declares; a head after the response is trailers and must end the stream.
 * The framing below (frames, windows, resets) knows nothing of HTTP; this file is where it meets it.
 */
export class MessageFraming {
  /** Body bytes still due by the head's content-length; undefined when no length was declared. */
  #bodyLeft: number | undefined;
  /** Client: the request was HEAD. */
  #headRequest = false;
  /** The head that starts the message (the request, or the final response) arrived. */
  #headSeen = false;

  /** Client: the request went out with this method. */
  requestSent(method: unknown): void {
    this.#headRequest = method === 'HEAD';
  }

  /** Server: the request head arrived; a problem when its length cannot hold. */
  requestHead(headers: IncomingMuxHeaders, end: boolean): string | undefined {
    this.#headSeen = true;
    this.#bodyLeft = declaredLength(headers);
    if ((this.#bodyLeft ?? 0) < 0) return 'invalid content-length';
    if (end && (this.#bodyLeft ?? 0) > 0) return 'body length differs from its content-length';
    return undefined;
  }

  /** What a HEADERS frame on an open stream is: an informational head, the response, or trailers. */
  classifyHead(
    headers: IncomingMuxHeaders,
    end: boolean,
  ): 'informational' | 'response' | 'trailers' | 'invalid' {
    if (!this.#headSeen) {
      const status = Number(headers[':status']);
      return status >= 100 && status < 200 ? 'informational' : 'response';
    }
    return end ? 'trailers' : 'invalid';
  }

  /** Client: the final response head arrived; a problem when its declared length is not a length. */
  responseHead(headers: IncomingMuxHeaders): string | undefined {
    this.#headSeen = true;
    const status = Number(headers[':status']);
    if (!this.#headRequest && status !== 204 && status !== 304) this.#bodyLeft = declaredLength(headers);
    return (this.#bodyLeft ?? 0) < 0 ? 'invalid content-length' : undefined;
  }

  /** The stream ended with the head itself: a problem when the head promised a body. */
  endedAtHead(): string | undefined {
    return (this.#bodyLeft ?? 0) > 0 ? 'body length differs from its content-length' : undefined;
  }

  /** `length` body bytes arrived, `end` when they end the stream; a problem when they break the head's length. */
  body(length: number, end: boolean): string | undefined {
    if (!this.#headSeen) return 'data before the response head';
    if (this.#bodyLeft === undefined) return undefined;
    this.#bodyLeft -= length;
    if (this.#bodyLeft < 0 || (end && this.#bodyLeft > 0))
      return 'body length differs from its content-length';
    return undefined;
  }
}

/**
 * The body length a head declares. A value that is not one length gives -1, which fails the
 * first check.
 */
function declaredLength(headers: IncomingMuxHeaders): number | undefined {
  const value = headers['content-length'];
  if (value === undefined) return undefined;
  const length = typeof value === 'number' ? value : Array.isArray(value) ? Number.NaN : Number(value);
  return Number.isSafeInteger(length) && length >= 0 && value !== '' ? length : -1;
}
