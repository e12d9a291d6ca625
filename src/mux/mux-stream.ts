import { Duplex } from 'node:stream';
import { PosternError } from '../errors.js';
import { MAX_WINDOW, MuxError } from './frames.js';
import type { MuxHeaders } from './header-block.js';
import { MessageFraming } from './message-framing.js';

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
  /** The HTTP rules of this stream's message: content-length, 1xx, HEAD, trailers. */
  readonly framing = new MessageFraming();
  #rstCode: number | undefined;
  /** Server: a response (non-1xx) was sent. Client: the request went out with the stream. */
  #headersSent = false;
  /** Peer data that left our buffer but is not yet credited (push() said the buffer was full). */
  #owed = 0;
  /** Set while 'wantTrailers' listeners may call sendTrailers(). */
  #waitForTrailers = false;
  #finalDone: (() => void) | undefined;
  /** Length of the chunk in _write until its callback ran. */
  #inProgress = 0;
  /** Bytes of the chunk in _write not yet framed (waiting for window). */
  #unsent = 0;
  /** Where the stream stands; only the methods below change it. */
  readonly #state = {
    /** END_STREAM (or a reset) went out. */
    localEnded: false,
    /** END_STREAM (or a reset) came in. */
    remoteEnded: false,
    /** The session has forgotten the stream (ended both ways, or reset). */
    forgotten: false,
    /** The peer, done sending, reset with NO_ERROR: what we still write is dropped. */
    discarding: false,
  };
  /** Flow control, as the session keeps it for this stream; only the methods below change it. */
  readonly #window = {
    /** What we may still send. */
    send: 0,
    /** What the peer may still send before we credit more. */
    receive: 0,
    /** Credit not yet sent to the peer. */
    pendingCredit: 0,
    /** Our receive window: the most the peer may have sent that we have not credited. */
    size: 0,
    /** How much of `size` came from the process's growth budget. */
    grown: 0,
    /** Bytes the reader has taken (given back as credit) since the stream opened. */
    taken: 0,
    /** The window sample this stream was last counted in: what arrived then, and `taken` then. */
    sampleRound: 0,
    sampledBytes: 0,
    takenAtSample: 0,
  };
  /** The rest of a write that waits for window, run again when window comes. */
  #blocked: (() => void) | undefined;

  constructor(carrier: StreamCarrier, id: number, windows: { send: number; receive: number }) {
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024 });
    this.#carrier = carrier;
    this.id = id;
    this.#window.send = windows.send;
    this.#window.receive = windows.receive;
    this.#window.size = windows.receive;
  }

  /** The reset code sent or received, once the stream was reset. */
  get rstCode(): number | undefined {
    return this.#rstCode;
  }

  get headersSent(): boolean {
    return this.#headersSent;
  }

  /** END_STREAM (or a reset) came in: the peer sends nothing more. */
  get remoteEnded(): boolean {
    return this.#state.remoteEnded;
  }

  get localEnded(): boolean {
    return this.#state.localEnded;
  }

  /** The session no longer sends or credits anything for this stream. */
  get forgotten(): boolean {
    return this.#state.forgotten;
  }

  /** What we write is dropped (the peer said it reads no more). */
  get discarding(): boolean {
    return this.#state.discarding;
  }

  /** Server side: sends the response head. */
  respond(headers: MuxHeaders, options: { endStream?: boolean; waitForTrailers?: boolean } = {}): void {
    if (this.#headersSent) throw new PosternError('POSTERN_ERROR', 'response already sent');
    if (this.destroyed) return;
    this.#headersSent = true;
    this.#waitForTrailers = options.waitForTrailers === true;
    this.#carrier.sendHeaders(this, headers, options.endStream === true);
    if (options.endStream === true) this.end();
  }

  /** Server side: an informational (1xx) head, e.g. `100 Continue`. */
  additionalHeaders(headers: MuxHeaders): void {
    if (this.#headersSent || this.destroyed) return;
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
    this.#rstCode ??= code;
    this.destroy();
  }

  // --- What the session tells the stream. Nothing else changes its state. ---

  /** @internal client: the request head went out. */
  requestSent(method: unknown): void {
    this.#headersSent = true;
    this.framing.requestSent(method);
  }

  /** @internal data from the peer */
  receive(chunk: Buffer): void {
    if (this.push(chunk)) this.#carrier.credit(this, chunk.length);
    else this.#owed += chunk.length;
  }

  /** @internal END_STREAM went out; true when the stream is now done both ways. */
  endLocal(): boolean {
    this.#state.localEnded = true;
    return this.#state.remoteEnded;
  }

  /** @internal END_STREAM came in; true when the stream is now done both ways. */
  endRemote(): boolean {
    this.#state.remoteEnded = true;
    this.push(null);
    return this.#state.localEnded;
  }

  /** @internal the session drops the stream; false when it already had. */
  forget(): boolean {
    if (this.#state.forgotten) return false;
    this.#state.forgotten = true;
    this.#state.localEnded = true;
    return true;
  }

  /** @internal the peer reset the stream with `code` (the session forgets it, so none goes back). */
  resetByPeer(code: number): void {
    this.#rstCode = code;
  }

  /** @internal the peer reset with NO_ERROR after its data came whole: drop what we still write. */
  discardWrites(): void {
    this.#state.discarding = true;
  }

  /** @internal the stream fails with `code` and `error` (a broken rule, a dead session). */
  fail(code: number, error: Error): void {
    this.#rstCode ??= code;
    this.destroy(error);
  }

  /** @internal what we may still send on this stream. */
  get sendWindow(): number {
    return this.#window.send;
  }

  /** @internal `size` bytes of the write in progress were framed. */
  spendSendWindow(size: number): void {
    this.#window.send -= size;
    this.#unsent -= size;
  }

  /** @internal the write in progress is framed whole. */
  writeFramed(): void {
    this.#unsent = 0;
    this.#blocked = undefined;
  }

  /** @internal the peer gave `delta` more window (negative: SETTINGS shrank it); false past 2^31-1. */
  addSendWindow(delta: number): boolean {
    this.#window.send += delta;
    return this.#window.send <= MAX_WINDOW;
  }

  /** @internal the write in progress waits for window; `resume` runs when some comes. */
  waitForWindow(resume: () => void): void {
    this.#blocked = resume;
  }

  /** @internal window came: the waiting write goes on. */
  unblock(): void {
    const resume = this.#blocked;
    this.#blocked = undefined;
    resume?.();
  }

  /** @internal `length` bytes arrived; false when they overrun the window we gave. */
  takeReceiveWindow(length: number): boolean {
    this.#window.receive -= length;
    return this.#window.receive >= 0;
  }

  /** @internal the reader took `bytes`: the credit to send the peer now, or 0 to wait for more. */
  creditTaken(bytes: number): number {
    const window = this.#window;
    window.taken += bytes;
    window.pendingCredit += bytes;
    if (window.pendingCredit < window.size / 4) return 0;
    const credit = window.pendingCredit;
    window.receive += credit;
    window.pendingCredit = 0;
    return credit;
  }

  /** @internal our receive window. */
  get windowSize(): number {
    return this.#window.size;
  }

  /** @internal the window grows by `granted` from the growth budget. */
  growWindow(granted: number): void {
    this.#window.size += granted;
    this.#window.grown += granted;
    this.#window.receive += granted;
  }

  /** @internal what the window took from the growth budget, now handed back. */
  returnGrowth(): number {
    const grown = this.#window.grown;
    this.#window.grown = 0;
    return grown;
  }

  /** @internal `length` bytes arrived during window sample `round`; true the first time in it. */
  countSample(round: number, length: number): boolean {
    const window = this.#window;
    const first = window.sampleRound !== round;
    if (first) {
      window.sampleRound = round;
      window.sampledBytes = 0;
      window.takenAtSample = window.taken;
    }
    window.sampledBytes += length;
    return first;
  }

  /**
   * @internal whether sample `round` found the window the limit: at least two thirds of it arrived
   * in the round trip, and the reader took at least half a window meanwhile.
   */
  windowWasTheLimit(round: number): boolean {
    const window = this.#window;
    if (window.sampleRound !== round) return false;
    const filled = window.sampledBytes * 3 >= window.size * 2;
    const keptUp = (window.taken - window.takenAtSample) * 2 >= window.size;
    return filled && keptUp;
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
    this.#unsent = chunk.length;
    this.#carrier.sendData(this, chunk, (error) => {
      this.#inProgress = 0;
      callback(error);
    });
  }

  override _final(callback: () => void): void {
    if (this.#state.localEnded) {
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
      this.#unsent === 0 &&
      this.writableLength === this.#inProgress &&
      !this.#waitForTrailers;
    const state = this.#state;
    if (!state.forgotten && whole && !state.localEnded) this.#carrier.sendEnd(this, () => {});
    if (!state.forgotten) {
      // An answer that went out whole is not failed by what happens to the request after it: the
      // reset only says "I read no more of yours" (NO_ERROR), as an HTTP/2 server that answers
      // before the request body is in does (RFC 9113 §8.1).
      const answered = this.#carrier.role === 'server' && state.localEnded;
      this.#rstCode ??= answered ? MuxError.noError : error ? MuxError.internal : MuxError.cancel;
      this.#carrier.sendReset(this, this.#rstCode);
    }
    this.#carrier.release(this);
    this.#owed = 0;
    this.#blocked = undefined;
    callback(error);
  }

  /** Writing before respond() answers 200, as Node's Http2Stream does. */
  #implicitResponse(): void {
    if (this.#carrier.role === 'server' && !this.#headersSent) this.respond({ ':status': 200 });
  }
}
