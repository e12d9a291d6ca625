import { Duplex } from 'node:stream';
import { PosternError } from '../errors.js';
import { MuxError } from './frames.js';
import type { MuxHeaders } from './header-block.js';

/** What a stream asks of its session; MuxSession implements it. */
export interface StreamCarrier {
  readonly role: 'client' | 'server';
  sendHeaders(stream: MuxStream, headers: MuxHeaders, endStream: boolean): void;
  sendData(stream: MuxStream, chunk: Buffer, done: (error?: Error | null) => void): void;
  sendEnd(stream: MuxStream, done: () => void): void;
  sendReset(stream: MuxStream, code: number): void;
  /** `bytes` of the stream's data left its buffer: the peer may send that much more. */
  credit(stream: MuxStream, bytes: number): void;
  /** The stream is gone: nothing more is credited or sent for it. */
  release(stream: MuxStream): void;
}

/**
 * One stream of a MuxSession: a Duplex whose readable side is the peer's data and whose writable
 * side goes to the peer under flow control. It keeps the parts of Node's Http2Stream interface
 * that a tunnel uses — `respond`, `additionalHeaders`, `sendTrailers`, `rstCode`, `headersSent`,
 * the 'response', 'continue', 'trailers' and 'wantTrailers' events — so relay and agent code reads
 * the same as it did over HTTP/2.
 *
 * A failure is always an error: destroying with an error resets the stream with INTERNAL_ERROR,
 * without one with CANCEL, and a stream whose session dies is destroyed with an error, never ended
 * — a cut body can never pass for a whole one.
 */
export class MuxStream extends Duplex {
  readonly id: number;
  readonly #carrier: StreamCarrier;
  /** The reset code sent or received, once the stream was reset. */
  rstCode: number | undefined;
  /** Server: a response (non-1xx) was sent. Client: the request went out with the stream. */
  headersSent = false;
  /** Peer data that left our buffer but is not yet credited (push() said the buffer was full). */
  #owed = 0;
  /** Set while 'wantTrailers' listeners may call sendTrailers(). */
  #waitForTrailers = false;
  #finalDone: (() => void) | undefined;
  /** @internal flow-control and state, kept by the session */
  sendWindow: number;
  /** @internal what the peer may still send before we credit more */
  recvWindow = 0;
  /** @internal credit not yet sent to the peer */
  pendingCredit = 0;
  /** @internal our receive window: the most the peer may have sent that we have not credited */
  windowSize = 0;
  /** @internal how much of windowSize came from the process's growth budget */
  grown = 0;
  /** @internal bytes its reader has taken (given back as credit) since the stream opened */
  taken = 0;
  /** @internal the window sample this stream was last counted in: what arrived, and `taken` then */
  sampleRound = 0;
  sampledBytes = 0;
  takenAtSample = 0;
  /** @internal bytes of the chunk in _write not yet framed (waiting for window) */
  unsent = 0;
  /** Length of the chunk in _write until its callback ran. */
  #inProgress = 0;
  /** @internal */
  blocked: (() => void) | undefined;
  /** @internal END_STREAM (or a reset) went out. */
  localEnded = false;
  /** @internal END_STREAM (or a reset) came in. */
  remoteEnded = false;
  /** @internal a response (client) or the request (server) headers arrived. */
  gotHeaders = false;
  /** @internal the session has forgotten the stream (ended both ways or reset). */
  forgotten = false;
  /** @internal body bytes still due by the head's content-length */
  bodyBytesLeft: number | undefined;
  /** @internal client: the request was HEAD, so its response has no body whatever it declares */
  headRequest = false;
  /** @internal the peer, done sending, reset with NO_ERROR: what we still write is dropped */
  discarding = false;
  /** @internal a reset arrived; destroying must not send one back. */
  resetByPeer = false;

  constructor(carrier: StreamCarrier, id: number, sendWindow: number) {
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024 });
    this.#carrier = carrier;
    this.id = id;
    this.sendWindow = sendWindow;
  }

  /** Server side: sends the response head. */
  respond(headers: MuxHeaders, options: { endStream?: boolean; waitForTrailers?: boolean } = {}): void {
    if (this.headersSent) throw new PosternError('POSTERN_ERROR', 'response already sent');
    if (this.destroyed) return;
    this.headersSent = true;
    this.#waitForTrailers = options.waitForTrailers === true;
    this.#carrier.sendHeaders(this, headers, options.endStream === true);
    if (options.endStream === true) this.end();
  }

  /** Server side: an informational (1xx) head, e.g. `100 Continue`. */
  additionalHeaders(headers: MuxHeaders): void {
    if (this.headersSent || this.destroyed) return;
    this.#carrier.sendHeaders(this, headers, false);
  }

  /** Inside 'wantTrailers': the trailers end the stream. */
  sendTrailers(headers: MuxHeaders): void {
    const done = this.#finalDone;
    if (done === undefined) throw new PosternError('POSTERN_ERROR', 'sendTrailers() outside of wantTrailers');
    this.#finalDone = undefined;
    this.#carrier.sendHeaders(this, headers, true);
    done();
  }

  /** Resets the stream with `code`. */
  close(code: number = MuxError.noError): void {
    if (this.destroyed) return;
    this.rstCode ??= code;
    this.destroy();
  }

  /** @internal data from the peer */
  receive(chunk: Buffer): void {
    if (this.push(chunk)) this.#carrier.credit(this, chunk.length);
    else this.#owed += chunk.length;
  }

  /** @internal the peer ended its side */
  receiveEnd(): void {
    this.push(null);
  }

  override _read(): void {
    if (this.#owed === 0) return;
    const owed = this.#owed;
    this.#owed = 0;
    this.#carrier.credit(this, owed);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#implicitResponse();
    this.#inProgress = chunk.length;
    this.unsent = chunk.length;
    this.#carrier.sendData(this, chunk, (error) => {
      this.#inProgress = 0;
      callback(error);
    });
  }

  override _final(callback: () => void): void {
    if (this.localEnded) {
      callback();
      return;
    }
    this.#implicitResponse();
    if (this.#waitForTrailers) {
      this.#finalDone = callback;
      this.emit('wantTrailers');
      // No listener sent trailers: end the stream without them.
      if (this.#finalDone !== undefined) {
        this.#finalDone = undefined;
        this.#carrier.sendEnd(this, callback);
      }
      return;
    }
    this.#carrier.sendEnd(this, callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // end() was called and every byte is framed: the body is whole, so the peer gets its END
    // before the reset.
    const whole =
      this.writableEnded &&
      this.unsent === 0 &&
      this.writableLength === this.#inProgress &&
      !this.#waitForTrailers;
    if (!this.forgotten && whole && !this.localEnded) this.#carrier.sendEnd(this, () => {});
    if (!this.forgotten) {
      // An answer that went out whole is not failed by what happens to the request after it: the
      // reset only says "I read no more of yours" (NO_ERROR), as an HTTP/2 server that answers
      // before the request body is in does (RFC 9113 §8.1).
      const answered = this.#carrier.role === 'server' && this.localEnded;
      this.rstCode ??= answered ? MuxError.noError : error ? MuxError.internal : MuxError.cancel;
      this.#carrier.sendReset(this, this.rstCode);
    }
    this.#carrier.release(this);
    this.#owed = 0;
    this.blocked = undefined;
    callback(error);
  }

  /** Writing before respond() answers 200, as Node's Http2Stream does. */
  #implicitResponse(): void {
    if (this.#carrier.role === 'server' && !this.headersSent) this.respond({ ':status': 200 });
  }
}
