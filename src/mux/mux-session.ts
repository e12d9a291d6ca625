import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { PosternError } from '../errors.js';
import { countRead } from '../read-buffer-collector.js';
import { RenewingMap, RenewingSet } from '../renewing-collections.js';
import {
  ACK,
  END_STREAM,
  FRAME_HEADER_BYTES,
  FrameReader,
  FrameType,
  frameHeader,
  INITIAL_WINDOW,
  MAX_CONTROL_PAYLOAD,
  MAX_DATA_PAYLOAD,
  MAX_WINDOW,
  MuxError,
  writeFrameHeader,
} from './frames.js';
import {
  decodeHeaderBlock,
  encodeHeaderBlock,
  type IncomingMuxHeaders,
  type MuxHeaders,
} from './header-block.js';
import { MuxStream, type StreamCarrier } from './mux-stream.js';
import { processWindowGrowth, type WindowGrowth } from './windows.js';

export interface MuxSessionOptions {
  /** The client opens streams (the relay), the server answers them (the agent). */
  role: 'client' | 'server';
  /** How much of one stream's data we buffer unread before the peer must wait. */
  streamWindowBytes: number;
  /** How much of all streams' data together. */
  connectionWindowBytes: number;
  /** Streams the peer may have open at once; more are refused (REFUSED_STREAM). */
  maxConcurrentStreams: number;
  /** Header fields one header block may carry. */
  maxHeaderPairs: number;
  /**
   * Where fast streams' receive windows may grow from (see #sampleWindows); the process's shared
   * budget when left out, none (every window stays streamWindowBytes) when null.
   */
  windowGrowth?: WindowGrowth | null | undefined;
}

/** PINGs that may be unanswered at once; ping() returns false past it. */
const MAX_OUTSTANDING_PINGS = 10;
/**
 * Replies the peer causes (PING answers, refusals) stop when this much is waiting to be written:
 * a peer that floods requests for replies and never reads them is cut off, not buffered for.
 */
const MAX_WRITE_BACKLOG = 32 << 20;
/** After our GOAWAY and the last stream, how long the peer has to close its side. */
const CLOSE_LINGER_MS = 5_000;
/**
 * A stream's write completes at once while the socket holds less than this unsent; past it, once
 * the socket has drained. The socket's own high-water mark (16 KiB) is below one 64 KiB read, so
 * honouring it stopped every body after each chunk until the next event-loop turn. At 256 KiB a
 * bulk stream still hit it every few reads: the relay waited for writability twice as often and
 * wrote in twice as many `writev`s as at 1 MiB, for ~10 % less throughput (docs/benchmarks.md).
 * Frames of other streams queue behind at most this much (about 1 ms on loopback), under what the
 * kernel's own send buffer already holds.
 */
const MAX_UNSENT_BYTES = 1024 * 1024;
const PING_PAYLOAD_BYTES = 8;

/**
 * Postern's session multiplexer over one connection (a raw upgraded socket, TLS, or a WebSocket
 * adapter): many MuxStreams, each with its own flow-control window, plus a window for the whole
 * session, PING and an orderly GOAWAY. It replaced Node's HTTP/2 between relay and agent because
 * the same relay-plus-agent in Node served 1.7× the small requests with it at half the relay's
 * CPU per request (docs/benchmarks.md); the frame layout and error codes stay HTTP/2's.
 *
 * Events: 'stream' (server; stream, headers), 'goaway' (code), 'error', 'close'.
 */
export class MuxSession extends EventEmitter implements StreamCarrier {
  readonly role: 'client' | 'server';
  readonly socket: Duplex;
  /** Bytes read from the connection (keepalive: any byte is a sign of life). */
  bytesRead = 0;
  readonly #options: MuxSessionOptions;
  readonly #reader: FrameReader;
  readonly #streams = new RenewingMap<number, MuxStream>();
  readonly #blocked = new RenewingSet<MuxStream>();
  #afterDrain: (() => void)[] = [];
  readonly #pings: ((error: Error | null) => void)[] = [];
  #nextStreamId = 1;
  #lastPeerStreamId = 0;
  #peerStreamWindow = INITIAL_WINDOW;
  #peerMaxStreams = Number.POSITIVE_INFINITY;
  /** What we may still send on the session as a whole. */
  #sendWindow = INITIAL_WINDOW;
  /** What the peer may still send us on the session as a whole. */
  #recvWindow = INITIAL_WINDOW;
  #pendingCredit = 0;
  readonly #growth: WindowGrowth | null;
  /** The window sample in flight (its PING unanswered): its number, and the streams it counted. */
  #sampleRound = 0;
  #sampling = false;
  readonly #sampled: MuxStream[] = [];
  #corked = false;
  #closing = false;
  #peerGoaway = false;
  #destroyed = false;

  constructor(socket: Duplex, options: MuxSessionOptions) {
    super();
    this.role = options.role;
    this.socket = socket;
    this.#options = options;
    this.#growth = options.windowGrowth === undefined ? processWindowGrowth : options.windowGrowth;
    this.#nextStreamId = options.role === 'client' ? 1 : 2;
    this.#reader = new FrameReader({
      onData: (id, flags, chunk, last) => this.#onData(id, flags, chunk, last),
      onFrame: (type, flags, id, payload) => this.#onFrame(type, flags, id, payload),
      onFrameError: (code, message) => this.#fail(code, message),
    });
    socket.on('data', (chunk: Buffer) => {
      this.bytesRead += chunk.length;
      countRead(chunk.length);
      this.#reader.push(chunk);
    });
    socket.on('drain', () => this.#drained());
    // A session cannot live half-closed: an 'end' means the peer is gone, and a half-open
    // session would hold its streams forever.
    socket.on('end', () => this.destroy());
    socket.on('error', (error: Error) => this.destroy(error));
    socket.on('close', () => this.destroy());
    // An upgraded socket may have been paused while its 101 was read.
    socket.resume();
    const settings = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 8);
    writeFrameHeader(settings, FrameType.settings, 0, 0, 8);
    settings.writeUInt32BE(options.streamWindowBytes, 9);
    settings.writeUInt32BE(Math.min(options.maxConcurrentStreams, 2 ** 32 - 1), 13);
    this.#write(settings);
    if (options.connectionWindowBytes > INITIAL_WINDOW) {
      this.#sendWindowUpdate(0, options.connectionWindowBytes - INITIAL_WINDOW);
      this.#recvWindow = options.connectionWindowBytes;
    }
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Closing (GOAWAY sent or received) or gone: no new streams. */
  get closed(): boolean {
    return this.#closing || this.#peerGoaway || this.#destroyed;
  }

  get nextStreamId(): number {
    return this.#nextStreamId;
  }

  get openStreams(): number {
    return this.#streams.size;
  }

  /** Client: opens a stream with a request head. Throws when the session cannot take one. */
  request(headers: MuxHeaders, options: { endStream?: boolean } = {}): MuxStream {
    if (this.role !== 'client') throw new PosternError('POSTERN_ERROR', 'only the client side opens streams');
    if (this.closed) throw new PosternError('POSTERN_SESSION_CLOSED', 'the session is closing');
    if (this.#streams.size >= this.#peerMaxStreams)
      throw new PosternError(
        'POSTERN_STREAM_LIMIT',
        `the peer takes at most ${this.#peerMaxStreams} streams at once`,
      );
    const id = this.#nextStreamId;
    this.#nextStreamId += 2;
    const stream = this.#newStream(id);
    stream.requestSent(headers[':method']);
    this.sendHeaders(stream, headers, options.endStream === true);
    if (options.endStream === true) stream.end();
    return stream;
  }

  /** Sends a PING; `callback` runs when its answer arrives (or with an error when the session dies). */
  ping(callback: (error: Error | null) => void): boolean {
    if (this.#destroyed || this.#pings.length >= MAX_OUTSTANDING_PINGS) return false;
    const frame = Buffer.alloc(FRAME_HEADER_BYTES + PING_PAYLOAD_BYTES);
    writeFrameHeader(frame, FrameType.ping, 0, 0, PING_PAYLOAD_BYTES);
    this.#pings.push(callback);
    this.#write(frame);
    return true;
  }

  /** Orderly shutdown: GOAWAY, open streams finish, then the connection ends. */
  close(): void {
    if (this.#closing || this.#destroyed) return;
    this.#closing = true;
    this.#sendGoaway(MuxError.noError);
    if (this.#streams.size === 0) this.#finishClose();
  }

  /** Ends everything now; open streams fail. With `code`, a GOAWAY says why first. */
  destroy(error?: Error, code?: number): void {
    if (this.#destroyed) return;
    if (code !== undefined) this.#sendGoaway(code);
    this.#destroyed = true;
    this.#reader.stop();
    this.#uncork();
    this.socket.destroy();
    const cause = error?.message ?? 'the session closed';
    for (const stream of [...this.#streams.values()]) {
      this.#returnGrowth(stream);
      stream.forget();
      stream.fail(MuxError.cancel, new Error(`the stream was cut: ${cause}`));
    }
    this.#streams.clear();
    this.#blocked.clear();
    this.#afterDrain = [];
    for (const callback of this.#pings.splice(0)) callback(new Error(cause));
    if (error !== undefined && this.listenerCount('error') > 0) this.emit('error', error);
    // After the streams' own 'close' events, which are queued the same way.
    process.nextTick(() => this.emit('close'));
  }

  // --- StreamCarrier: what streams ask of the session ---

  sendHeaders(stream: MuxStream, headers: MuxHeaders, endStream: boolean): void {
    const block = encodeHeaderBlock(headers);
    const length = Buffer.byteLength(block);
    if (length > MAX_CONTROL_PAYLOAD)
      throw new PosternError(
        'POSTERN_HEADERS_TOO_LARGE',
        `header block of ${length} bytes (limit ${MAX_CONTROL_PAYLOAD})`,
      );
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
    writeFrameHeader(frame, FrameType.headers, endStream ? END_STREAM : 0, stream.id, length);
    frame.write(block, FRAME_HEADER_BYTES, 'utf8');
    this.#write(frame);
    if (endStream) this.#localEnd(stream);
  }

  sendData(stream: MuxStream, chunk: Buffer, done: (error?: Error | null) => void): void {
    if (stream.discarding) {
      done();
      return;
    }
    let offset = 0;
    const step = (): void => {
      while (offset < chunk.length) {
        if (stream.forgotten || this.#destroyed) return;
        const size = Math.min(chunk.length - offset, stream.sendWindow, this.#sendWindow, MAX_DATA_PAYLOAD);
        if (size <= 0) {
          stream.waitForWindow(step);
          this.#blocked.add(stream);
          return;
        }
        stream.spendSendWindow(size);
        this.#sendWindow -= size;
        this.#write(frameHeader(FrameType.data, 0, stream.id, size));
        this.#write(size === chunk.length ? chunk : chunk.subarray(offset, offset + size));
        offset += size;
      }
      this.#blocked.delete(stream);
      stream.writeFramed();
      if (this.socket.writableLength >= MAX_UNSENT_BYTES)
        this.#afterDrain.push(() => stream.destroyed || done());
      else done();
    };
    step();
  }

  sendEnd(stream: MuxStream, done: () => void): void {
    if (!stream.forgotten && !this.#destroyed) {
      this.#write(frameHeader(FrameType.data, END_STREAM, stream.id, 0));
      this.#localEnd(stream);
    }
    done();
  }

  sendReset(stream: MuxStream, code: number): void {
    if (stream.forgotten || this.#destroyed) return;
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
    writeFrameHeader(frame, FrameType.reset, 0, stream.id, 4);
    frame.writeUInt32BE(code, FRAME_HEADER_BYTES);
    this.#write(frame);
    this.#forget(stream);
  }

  credit(stream: MuxStream, bytes: number): void {
    if (stream.forgotten || stream.remoteEnded) return;
    const increment = stream.creditTaken(bytes);
    if (increment === 0) return;
    this.#sendWindowUpdate(stream.id, increment);
    if (this.#growth !== null && stream.windowSize < this.#growth.maxWindow) this.#sampleWindows();
  }

  release(stream: MuxStream): void {
    this.#forget(stream);
  }

  // --- incoming frames ---

  #onData(id: number, flags: number, chunk: Buffer, last: boolean): void {
    this.#recvWindow -= chunk.length;
    if (this.#recvWindow < 0) {
      this.#fail(MuxError.flowControl, 'the peer sent more than the session window');
      return;
    }
    // The session window is given back as soon as a frame is parsed: what a stream buffers is
    // bounded by its own window, and crediting the session only as readers take their bytes would
    // let a few stalled readers use up the session window and stop every other stream with them.
    this.#creditSession(chunk.length);
    const stream = this.#streams.get(id);
    if (stream === undefined || stream.remoteEnded) {
      // Data still in flight when we reset or finished the stream: dropped.
      return;
    }
    if (!stream.takeReceiveWindow(chunk.length)) {
      stream.close(MuxError.flowControl);
      return;
    }
    if (this.#sampling && stream.countSample(this.#sampleRound, chunk.length)) this.#sampled.push(stream);
    const end = last && (flags & END_STREAM) !== 0;
    const problem = stream.framing.body(chunk.length, end);
    if (problem !== undefined) {
      this.#breakStream(stream, problem);
      return;
    }
    if (chunk.length > 0) stream.receive(chunk);
    if (end) this.#remoteEnd(stream);
  }

  /** The peer broke a stream's rules: reset it (PROTOCOL_ERROR) and fail its reader. */
  #breakStream(stream: MuxStream, why: string): void {
    stream.fail(MuxError.protocol, new Error(`the peer broke the stream: ${why}`));
  }

  #onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    switch (type) {
      case FrameType.headers:
        this.#onHeaders(id, flags, payload);
        return;
      case FrameType.reset:
        if (payload.length !== 4) {
          this.#fail(MuxError.frameSize, 'RST_STREAM is not 4 bytes');
          return;
        }
        this.#onReset(id, payload.readUInt32BE(0));
        return;
      case FrameType.settings:
        if (payload.length !== 8) {
          this.#fail(MuxError.frameSize, 'SETTINGS is not 8 bytes');
          return;
        }
        this.#onSettings(payload.readUInt32BE(0), payload.readUInt32BE(4));
        return;
      case FrameType.ping:
        if (payload.length !== PING_PAYLOAD_BYTES) {
          this.#fail(MuxError.frameSize, 'PING is not 8 bytes');
          return;
        }
        if ((flags & ACK) !== 0) this.#pings.shift()?.(null);
        else if (this.socket.writableLength > MAX_WRITE_BACKLOG) {
          this.#fail(MuxError.enhanceYourCalm, 'PINGs faster than their answers are read');
        } else {
          const answer = Buffer.allocUnsafe(FRAME_HEADER_BYTES + PING_PAYLOAD_BYTES);
          writeFrameHeader(answer, FrameType.ping, ACK, 0, PING_PAYLOAD_BYTES);
          payload.copy(answer, FRAME_HEADER_BYTES);
          this.#write(answer);
        }
        return;
      case FrameType.goaway:
        if (payload.length !== 8) {
          this.#fail(MuxError.frameSize, 'GOAWAY is not 8 bytes');
          return;
        }
        this.#onGoaway(payload.readUInt32BE(0), payload.readUInt32BE(4));
        return;
      case FrameType.windowUpdate:
        if (payload.length !== 4) {
          this.#fail(MuxError.frameSize, 'WINDOW_UPDATE is not 4 bytes');
          return;
        }
        this.#onWindowUpdate(id, payload.readUInt32BE(0) & 0x7fff_ffff);
        return;
      default:
      // Unknown frame types are ignored, as in HTTP/2: room for extensions.
    }
  }

  #onHeaders(id: number, flags: number, block: Buffer): void {
    const end = (flags & END_STREAM) !== 0;
    const existing = this.#streams.get(id);
    if (existing === undefined) {
      if (this.role === 'client') {
        if (id % 2 === 0 || id >= this.#nextStreamId)
          this.#fail(MuxError.protocol, `HEADERS on stream ${id}, which was never opened`);
        return; // a stream we already dropped
      }
      if (id <= this.#lastPeerStreamId) return; // a stream we already dropped
      if (id % 2 === 0) {
        this.#fail(MuxError.protocol, `stream ${id} opened with an even id`);
        return;
      }
      this.#lastPeerStreamId = id;
      this.#openPeerStream(id, end, block);
      return;
    }
    if (existing.remoteEnded) return;
    const headers = decodeHeaderBlock(block, this.#options.maxHeaderPairs);
    if (typeof headers === 'string') {
      existing.close(MuxError.protocol);
      return;
    }
    switch (existing.framing.classifyHead(headers, end)) {
      case 'informational':
        if (Number(headers[':status']) === 100) existing.emit('continue');
        existing.emit('headers', headers);
        return;
      case 'response': {
        const invalid = existing.framing.responseHead(headers);
        if (invalid !== undefined) {
          this.#breakStream(existing, invalid);
          return;
        }
        existing.emit('response', headers, flags);
        const short = end ? existing.framing.endedAtHead() : undefined;
        if (short !== undefined) {
          this.#breakStream(existing, short);
          return;
        }
        break;
      }
      case 'trailers':
        existing.emit('trailers', headers, flags);
        break;
      case 'invalid':
        existing.close(MuxError.protocol);
        return;
    }
    if (end) this.#remoteEnd(existing);
  }

  #openPeerStream(id: number, end: boolean, block: Buffer): void {
    if (this.#closing || this.#streams.size >= this.#options.maxConcurrentStreams) {
      this.#refuse(id, MuxError.refusedStream);
      return;
    }
    const headers = decodeHeaderBlock(block, this.#options.maxHeaderPairs);
    if (typeof headers === 'string') {
      this.#refuse(id, MuxError.protocol);
      return;
    }
    const stream = this.#newStream(id);
    if (stream.framing.requestHead(headers, end) !== undefined) {
      this.#refuse(id, MuxError.protocol);
      this.#forget(stream);
      return;
    }
    if (end) this.#remoteEnd(stream);
    this.emit('stream', stream, headers satisfies IncomingMuxHeaders);
  }

  #onReset(id: number, code: number): void {
    const stream = this.#streams.get(id);
    if (stream === undefined) return;
    const wasWhole = stream.remoteEnded;
    stream.resetByPeer(code);
    this.#forget(stream);
    if (!wasWhole) {
      stream.destroy(new Error(`the stream was reset by the peer (code ${code})`));
      return;
    }
    // The peer's data came whole (END first): it stays readable to its end. NO_ERROR means "I read
    // no more of yours": what we still write is dropped, and the stream ends normally. Any other
    // code fails our sending once the reader has the whole of the peer's data.
    if (code === MuxError.noError) stream.discardWrites();
    else if (stream.readableEnded) stream.destroy();
    else stream.once('end', () => stream.destroy());
  }

  #onSettings(streamWindow: number, maxStreams: number): void {
    if (streamWindow > MAX_WINDOW) {
      this.#fail(MuxError.flowControl, 'SETTINGS window over 2^31-1');
      return;
    }
    const delta = streamWindow - this.#peerStreamWindow;
    this.#peerStreamWindow = streamWindow;
    this.#peerMaxStreams = maxStreams;
    for (const stream of this.#streams.values()) stream.addSendWindow(delta);
    if (delta > 0) this.#unblockAll();
  }

  #onGoaway(lastStreamId: number, code: number): void {
    this.#peerGoaway = true;
    for (const stream of [...this.#streams.values()]) {
      // Streams the peer never saw were not processed: refused, so they may be sent elsewhere.
      if (this.role === 'client' && stream.id > lastStreamId) {
        stream.resetByPeer(MuxError.refusedStream);
        this.#forget(stream);
        stream.destroy(new Error('the stream was refused: the peer is shutting down'));
      }
    }
    this.emit('goaway', code);
    if (this.#streams.size === 0) this.close();
  }

  #onWindowUpdate(id: number, increment: number): void {
    if (increment === 0) {
      this.#fail(MuxError.protocol, 'WINDOW_UPDATE of 0');
      return;
    }
    if (id === 0) {
      this.#sendWindow += increment;
      if (this.#sendWindow > MAX_WINDOW) {
        this.#fail(MuxError.flowControl, 'session window over 2^31-1');
        return;
      }
      this.#unblockAll();
      return;
    }
    const stream = this.#streams.get(id);
    if (stream === undefined) return;
    if (!stream.addSendWindow(increment)) {
      stream.close(MuxError.flowControl);
      return;
    }
    stream.unblock();
  }

  // --- internals ---

  #newStream(id: number): MuxStream {
    const stream = new MuxStream(this, id, {
      send: this.#peerStreamWindow,
      receive: this.#options.streamWindowBytes,
    });
    this.#streams.set(id, stream);
    return stream;
  }

  #localEnd(stream: MuxStream): void {
    if (stream.endLocal()) this.#forget(stream);
  }

  #remoteEnd(stream: MuxStream): void {
    if (stream.endRemote()) this.#forget(stream);
  }

  #forget(stream: MuxStream): void {
    if (!stream.forget()) return;
    this.#returnGrowth(stream);
    this.#streams.delete(stream.id);
    this.#blocked.delete(stream);
    // A request whose handler never read it still has to end, or it never closes.
    if (this.role === 'server' && stream.readableFlowing === null && !stream.destroyed) stream.resume();
    if ((this.#closing || this.#peerGoaway) && this.#streams.size === 0) this.#finishClose();
  }

  #refuse(id: number, code: number): void {
    if (this.socket.writableLength > MAX_WRITE_BACKLOG) {
      this.#fail(MuxError.enhanceYourCalm, 'streams opened faster than their refusals are read');
      return;
    }
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
    writeFrameHeader(frame, FrameType.reset, 0, id, 4);
    frame.writeUInt32BE(code, FRAME_HEADER_BYTES);
    this.#write(frame);
  }

  #creditSession(bytes: number): void {
    if (bytes === 0 || this.#destroyed) return;
    this.#pendingCredit += bytes;
    if (this.#pendingCredit >= this.#options.connectionWindowBytes / 4) {
      this.#recvWindow += this.#pendingCredit;
      this.#sendWindowUpdate(0, this.#pendingCredit);
      this.#pendingCredit = 0;
    }
  }

  /**
   * Receive-window tuning, after gRPC's BDP estimate: a PING goes out with a bulk stream's credit,
   * and each stream counts what arrives for it and what its reader takes until the answer. A
   * stream that received at least two thirds of its window in that round trip, and whose reader
   * took at least half a window meanwhile, is held back by its window rather than by its reader or
   * its sender, so its window doubles (up to the growth's maxWindow, from the process's budget).
   * A slow reader's credit comes back in lumps (when its buffer falls below the high-water mark),
   * and the lump's refill fills a round trip too; what its reader takes meanwhile tells it apart.
   * (Its buffer at the answer does too, in the unit test and over a 50 ms delay line alike; what
   * the reader took is the direct measure, where the buffer is a snapshot of one moment.) On loopback
   * the round trip is mostly the two processes' turns on the CPU: a 1 MiB window moved a single
   * download at ~75 % of a plain two-hop socket pipe and 4–16 MiB at ~90 % or more
   * (docs/benchmarks.md). A reader that stops takes no credit, starts no sample and keeps the
   * window it has.
   */
  #sampleWindows(): void {
    if (this.#sampling) return;
    const round = this.#sampleRound + 1;
    const sent = this.ping((error) => {
      this.#sampling = false;
      const sampled = this.#sampled.splice(0);
      if (error !== null) return;
      for (const stream of sampled) if (stream.windowWasTheLimit(round)) this.#growWindow(stream);
    });
    if (!sent) return;
    this.#sampleRound = round;
    this.#sampling = true;
  }

  #growWindow(stream: MuxStream): void {
    if (stream.forgotten || stream.remoteEnded || this.#growth === null) return;
    const wanted = Math.min(this.#growth.maxWindow, stream.windowSize * 2) - stream.windowSize;
    const granted = this.#growth.take(wanted);
    if (granted <= 0) return;
    stream.growWindow(granted);
    this.#sendWindowUpdate(stream.id, granted);
  }

  #returnGrowth(stream: MuxStream): void {
    if (this.#growth === null) return;
    const grown = stream.returnGrowth();
    if (grown > 0) this.#growth.give(grown);
  }

  #sendWindowUpdate(id: number, increment: number): void {
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
    writeFrameHeader(frame, FrameType.windowUpdate, 0, id, 4);
    frame.writeUInt32BE(increment, FRAME_HEADER_BYTES);
    this.#write(frame);
  }

  #sendGoaway(code: number): void {
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 8);
    writeFrameHeader(frame, FrameType.goaway, 0, 0, 8);
    frame.writeUInt32BE(this.#lastPeerStreamId, FRAME_HEADER_BYTES);
    frame.writeUInt32BE(code, FRAME_HEADER_BYTES + 4);
    this.#write(frame);
  }

  #unblockAll(): void {
    for (const stream of [...this.#blocked]) {
      if (this.#sendWindow <= 0) return;
      stream.unblock();
    }
  }

  #finishClose(): void {
    if (this.#destroyed) return;
    this.#uncork();
    this.socket.end();
    setTimeout(() => this.destroy(), CLOSE_LINGER_MS).unref();
  }

  #fail(code: number, message: string): void {
    this.destroy(new Error(`session protocol error: ${message}`), code);
  }

  #drained(): void {
    const callbacks = this.#afterDrain;
    this.#afterDrain = [];
    for (const callback of callbacks) callback();
  }

  /**
   * Frames written in one turn of the event loop leave in one writev: a small request's HEADERS
   * and END, or a response's head and body, cost one system call and one wake-up of the peer.
   */
  #write(frame: Buffer): void {
    if (this.#destroyed || this.socket.writableEnded) return;
    if (!this.#corked) {
      this.#corked = true;
      this.socket.cork();
      setImmediate(() => this.#uncork());
    }
    this.socket.write(frame);
  }

  #uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.socket.uncork();
  }
}
