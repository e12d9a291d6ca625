import { constants, inflateRaw } from 'node:zlib';

/**
 * What the 101 response agreed for permessage-deflate (RFC 7692), or undefined when it was not
 * agreed. Each side's compressor keeps its window from message to message ("context takeover")
 * unless `<side>_no_context_takeover` was agreed.
 */
export function agreedDeflate(
  responseHeaders: readonly [string, string][],
): { clientResets: boolean; serverResets: boolean } | undefined {
  for (const [name, value] of responseHeaders) {
    if (name.toLowerCase() !== 'sec-websocket-extensions') continue;
    for (const extension of value.split(',')) {
      const [token, ...parameters] = extension.split(';').map((part) => part.trim().toLowerCase());
      if (token !== 'permessage-deflate') continue;
      const names = parameters.map((parameter) => parameter.split('=')[0]?.trim());
      return {
        clientResets: names.includes('client_no_context_takeover'),
        serverResets: names.includes('server_no_context_takeover'),
      };
    }
  }
  return undefined;
}

/** The end of every deflated message, which the sender leaves off (RFC 7692 section 7.2.1). */
const MESSAGE_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
/** The most a deflate window reaches back. */
const WINDOW_BYTES = 32 << 10;

/**
 * Shared by every connection of one inspector: at most `maxWaiting` compressed messages wait to be
 * inflated (past it a message is not decoded), and at most `concurrency` inflate at once on libuv's
 * thread pool, so DNS lookups and file reads always find a free thread. Deflate inflates up to 1 000
 * times its size: counting messages, not bytes, bounds the work queued (each waiting message is at
 * most the bytes kept of a message and inflates to at most the decode limit).
 */
export class InflateBudget {
  readonly #maxWaiting: number;
  readonly #concurrency: number;
  #waitingCount = 0;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(maxWaiting: number, concurrency = 2) {
    this.#maxWaiting = maxWaiting;
    this.#concurrency = concurrency;
  }

  /** Counts one more message waiting; false when the budget is full. */
  reserve(): boolean {
    if (this.#waitingCount >= this.#maxWaiting) return false;
    this.#waitingCount++;
    return true;
  }

  /** Runs `task` for a reserved message when a thread is free; `finish` frees both. */
  run(task: (finish: () => void) => void): void {
    const start = (): void => {
      this.#running++;
      task(() => {
        this.#running--;
        this.#waitingCount--;
        this.#waiting.shift()?.();
      });
    };
    if (this.#running < this.#concurrency) start();
    else this.#waiting.push(start);
  }
}

/** A message inflated (`data`: its first `keepBytes`, `size`: all of it), or why it was not. */
export type Inflated = { data: Buffer; size: number } | { note: string };

/**
 * Inflates the compressed messages of one direction of one WebSocket connection, in order. With
 * context takeover each message may refer to the 32 KiB decoded before it, so that window is kept and
 * given to zlib as the dictionary; once a message cannot be decoded (not kept whole, too big decoded,
 * not deflate, or the budget full), the window is lost and no later message of that direction is
 * decoded. A sender that resets its context loses nothing: each message stands alone.
 */
export class MessageInflater {
  readonly #resets: boolean;
  readonly #budget: InflateBudget;
  readonly #keepBytes: number;
  readonly #maxDecodedBytes: number;
  #window = Buffer.alloc(0);
  #sequence = 0;
  /** The first message that could not be decoded; every later one needs its window. */
  #lostAt: number | undefined;
  /** Messages waiting for the one before them: each needs the window the last one left. */
  readonly #queue: { sequence: number; payload: Buffer; done: (result: Inflated) => void }[] = [];
  #busy = false;

  constructor(options: {
    resets: boolean;
    budget: InflateBudget;
    keepBytes: number;
    maxDecodedBytes: number;
  }) {
    this.#resets = options.resets;
    this.#budget = options.budget;
    this.#keepBytes = options.keepBytes;
    this.#maxDecodedBytes = options.maxDecodedBytes;
  }

  /**
   * `payload` is the compressed message as kept, `whole` whether it was kept whole; `done` is called
   * once, at once or when the message is decoded.
   */
  inflate(payload: Buffer, whole: boolean, done: (result: Inflated) => void): void {
    const sequence = ++this.#sequence;
    const refusal = this.#isLost(sequence)
      ? LOST
      : !whole
        ? this.#fail(sequence, 'longer than the inspector keeps of a message')
        : !this.#budget.reserve()
          ? this.#fail(sequence, 'the inspector fell behind decoding')
          : undefined;
    if (refusal !== undefined) done({ note: refusal });
    else {
      this.#queue.push({ sequence, payload, done });
      this.#next();
    }
  }

  #next(): void {
    const message = this.#busy ? undefined : this.#queue.shift();
    if (message === undefined) return;
    this.#busy = true;
    this.#budget.run((finish) => {
      const settle = (result: Inflated): void => {
        finish();
        this.#busy = false;
        message.done(result);
        this.#next();
      };
      if (this.#isLost(message.sequence)) return settle({ note: LOST });
      const dictionary = this.#resets || this.#window.length === 0 ? {} : { dictionary: this.#window };
      const options = {
        finishFlush: constants.Z_SYNC_FLUSH,
        maxOutputLength: this.#maxDecodedBytes,
        ...dictionary,
      };
      inflateRaw(Buffer.concat([message.payload, MESSAGE_TAIL]), options, (error, decoded) => {
        if (error !== null) {
          const tooBig = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
          const reason = tooBig
            ? `inflates to more than ${this.#maxDecodedBytes >> 10} KiB`
            : 'not deflate data';
          return settle({ note: this.#fail(message.sequence, reason) });
        }
        if (!this.#resets) {
          const joined = Buffer.concat([this.#window, decoded.subarray(-WINDOW_BYTES)]);
          this.#window = Buffer.from(joined.subarray(-WINDOW_BYTES));
        }
        settle({ data: Buffer.from(decoded.subarray(0, this.#keepBytes)), size: decoded.length });
      });
    });
  }

  #isLost(sequence: number): boolean {
    return !this.#resets && this.#lostAt !== undefined && sequence > this.#lostAt;
  }

  /** Says why a message was not decoded; with context takeover, no later one will be either. */
  #fail(sequence: number, reason: string): string {
    if (!this.#resets) this.#lostAt = Math.min(this.#lostAt ?? sequence, sequence);
    return `not decoded: ${reason}`;
  }
}

const LOST = 'not decoded: it may refer to an earlier message that was not decoded';
