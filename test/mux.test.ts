import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import fc from 'fast-check';
import { FrameReader, FrameType, frameHeader, MuxError } from '../src/mux/frames.js';
import type { IncomingMuxHeaders } from '../src/mux/header-block.js';
import { MuxSession, type MuxSessionOptions } from '../src/mux/mux-session.js';
import type { MuxStream } from '../src/mux/mux-stream.js';
import { WindowGrowth } from '../src/mux/windows.js';
import { until } from './helpers/wait.js';

const OPTIONS = {
  streamWindowBytes: 256 * 1024,
  connectionWindowBytes: 1 << 20,
  maxConcurrentStreams: 100,
  maxHeaderPairs: 100,
};

/** A client and a server session over a real loopback TCP connection. */
async function sessionPair(
  server: Partial<MuxSessionOptions> = {},
  client: Partial<MuxSessionOptions> = {},
): Promise<{ client: MuxSession; server: MuxSession; close(): void }> {
  const listener: Server = createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const accepted = once(listener, 'connection') as Promise<[Socket]>;
  const socket = connect((listener.address() as { port: number }).port, '127.0.0.1');
  const [serverSocket] = await accepted;
  const serverSession = new MuxSession(serverSocket, { role: 'server', ...OPTIONS, ...server });
  const clientSession = new MuxSession(socket, {
    role: 'client',
    ...OPTIONS,
    maxConcurrentStreams: 0,
    ...client,
  });
  for (const s of [serverSession, clientSession]) s.on('error', () => {});
  return {
    client: clientSession,
    server: serverSession,
    close() {
      clientSession.destroy();
      serverSession.destroy();
      listener.close();
    },
  };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function readAll(stream: MuxStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('session multiplexer (src/mux)', () => {
  test('the frame reader gives the same frames whatever way the bytes are cut', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            type: fc.constantFrom(FrameType.data, FrameType.headers, FrameType.ping, 0x42),
            id: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
            payload: fc.uint8Array({ maxLength: 300 }),
          }),
          { maxLength: 12 },
        ),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
        (frames, cuts) => {
          const wire = Buffer.concat(
            frames.flatMap((f) => [frameHeader(f.type, 0, f.id, f.payload.length), Buffer.from(f.payload)]),
          );
          const seen: { type: number; id: number; payload: Buffer[] }[] = [];
          const reader = new FrameReader({
            onData(id, _flags, chunk, last) {
              const current = seen.at(-1);
              if (current?.type === FrameType.data && current.id === id && !('done' in current))
                current.payload.push(chunk);
              else seen.push({ type: FrameType.data, id, payload: [chunk] });
              if (last) Object.assign(seen.at(-1) as object, { done: true });
            },
            onFrame(type, _flags, id, payload) {
              seen.push({ type, id, payload: [Buffer.from(payload)] });
            },
            onFrameError(_code, message) {
              throw new Error(message);
            },
          });
          let at = 0;
          for (let i = 0; at < wire.length; i++) {
            const size = cuts[i % cuts.length] as number;
            reader.push(wire.subarray(at, at + size));
            at += size;
          }
          assert.equal(seen.length, frames.length);
          frames.forEach((f, i) => {
            assert.equal(seen[i]?.type, f.type);
            assert.equal(seen[i]?.id, f.id);
            assert.deepEqual(Buffer.concat(seen[i]?.payload ?? []), Buffer.from(f.payload));
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  test('a control frame over 1 MiB is a FRAME_SIZE error before any of it is buffered', () => {
    let error: [number, string] | undefined;
    const reader = new FrameReader({
      onData() {},
      onFrame() {},
      onFrameError: (code, message) => {
        error = [code, message];
      },
    });
    reader.push(frameHeader(FrameType.headers, 0, 1, (1 << 20) + 1));
    assert.equal(error?.[0], MuxError.frameSize);
    assert.match(error?.[1] ?? '', /limit 1048576/);
  });

  describe('over a real connection', () => {
    let pair: Awaited<ReturnType<typeof sessionPair>>;
    before(async () => {
      pair = await sessionPair();
      pair.server.on('stream', (stream: MuxStream, headers: IncomingMuxHeaders) => {
        stream.on('error', () => {});
        const path = String(headers[':path']);
        if (path === '/echo') {
          stream.respond({ ':status': 200 });
          stream.pipe(stream);
        } else if (path === '/big') {
          stream.respond({ ':status': 200, 'content-length': String(8 << 20) });
          stream.end(Buffer.alloc(8 << 20, 7));
        } else if (path === '/short') {
          stream.respond({ ':status': 200, 'content-length': '100' });
          stream.end('five!');
        } else if (path === '/trailers') {
          stream.respond({ ':status': 200 }, { waitForTrailers: true });
          stream.once('wantTrailers', () => stream.sendTrailers({ 'x-sum': 'abc' }));
          stream.end('body');
        } else if (path === '/continue') {
          stream.additionalHeaders({ ':status': 100 });
          stream.respond({ ':status': 204 }, { endStream: true });
        } else {
          stream.respond({ ':status': 404 }, { endStream: true });
        }
      });
    });
    after(() => pair.close());

    test('64 streams at once echo 1 MiB each, every byte intact', async () => {
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          const data = randomBytes(1 << 20);
          const stream = pair.client.request({ ':method': 'POST', ':path': '/echo' });
          const [response] = (await once(stream, 'response')) as [IncomingMuxHeaders];
          assert.equal(response[':status'], 200);
          const reading = readAll(stream);
          stream.end(data);
          assert.equal(sha256(await reading), sha256(data));
        }),
      );
      assert.equal(pair.client.openStreams, 0);
      await until(() => pair.server.openStreams === 0, 'the server to forget every stream');
    });

    test('a reader that does not read holds the sender at the stream window (no unbounded buffer)', async () => {
      const stream = pair.client.request({ ':method': 'GET', ':path': '/big' }, { endStream: true });
      await once(stream, 'response');
      stream.pause();
      await delay(200);
      // Buffered here: at most the stream window (256 KiB) plus one read's worth.
      assert.ok(stream.readableLength <= 256 * 1024 + 64 * 1024, `${stream.readableLength} bytes buffered`);
      const body = await readAll(stream);
      assert.equal(body.length, 8 << 20);
    });

    test('stalled readers whose windows add up past the session window do not stop other streams', async () => {
      // 6 × 256 KiB stream windows = 1.5 MiB held, more than the 1 MiB session window.
      const stalled = Array.from({ length: 6 }, () => {
        const stream = pair.client.request({ ':method': 'GET', ':path': '/big' }, { endStream: true });
        stream.pause();
        return stream;
      });
      await until(
        () => stalled.every((s) => s.readableLength >= 256 * 1024),
        'every stalled stream to hold its whole window',
      );
      const other = pair.client.request({ ':method': 'GET', ':path': '/big' }, { endStream: true });
      const body = await Promise.race([
        readAll(other),
        delay(10_000).then(() => assert.fail('a stream waited behind stalled ones for 10 s')),
      ]);
      assert.equal(body.length, 8 << 20);
      for (const s of stalled) s.close(MuxError.cancel);
    });

    test('a body shorter than its content-length fails the reader, never ends cleanly', async () => {
      const stream = pair.client.request({ ':method': 'GET', ':path': '/short' }, { endStream: true });
      stream.on('error', () => {});
      await once(stream, 'response');
      await assert.rejects(readAll(stream), /content-length/);
      assert.equal(stream.rstCode, MuxError.protocol);
    });

    test('trailers and 100-continue', async () => {
      const withTrailers = pair.client.request(
        { ':method': 'GET', ':path': '/trailers' },
        { endStream: true },
      );
      const trailers = once(withTrailers, 'trailers') as Promise<[IncomingMuxHeaders]>;
      assert.equal((await readAll(withTrailers)).toString(), 'body');
      assert.equal((await trailers)[0]['x-sum'], 'abc');
      const expecting = pair.client.request({ ':method': 'POST', ':path': '/continue' });
      // Both heads may arrive in one read: listen for both at once.
      const continued = once(expecting, 'continue');
      const answered = once(expecting, 'response') as Promise<[IncomingMuxHeaders]>;
      await continued;
      const [response] = await answered;
      assert.equal(response[':status'], 204);
      expecting.end();
    });

    test('a reset stream fails on the other side with its code; the session lives on', async () => {
      const stream = pair.client.request({ ':method': 'POST', ':path': '/echo' });
      await once(stream, 'response');
      stream.on('error', () => {});
      stream.write('x');
      stream.destroy(new Error('visitor left'));
      assert.equal(stream.rstCode, MuxError.internal);
      const again = pair.client.request({ ':method': 'GET', ':path': '/nothing' }, { endStream: true });
      const [response] = (await once(again, 'response')) as [IncomingMuxHeaders];
      assert.equal(response[':status'], 404);
    });
  });

  describe('receive windows that grow', () => {
    const KiB = 1024;
    /** Uploads `bytes` of random data on one stream with backpressure; resolves with what the server counted. */
    async function upload(pair: Awaited<ReturnType<typeof sessionPair>>, bytes: number): Promise<string> {
      const stream = pair.client.request({ ':method': 'POST', ':path': '/count' });
      const block = randomBytes(64 * KiB);
      for (let sent = 0; sent < bytes; sent += block.length)
        if (!stream.write(block)) await once(stream, 'drain');
      stream.end();
      return (await readAll(stream)).toString();
    }
    function countingServer(pair: Awaited<ReturnType<typeof sessionPair>>): void {
      pair.server.on('stream', (stream: MuxStream) => {
        stream.on('error', () => {});
        stream.respond({ ':status': 200 });
        let received = 0;
        stream.on('data', (chunk: Buffer) => {
          received += chunk.length;
        });
        stream.on('end', () => stream.end(String(received)));
      });
    }

    /** Runs `transfer` and gives what it returned and the least of `growth`'s budget meanwhile. */
    async function lowestBudget<T>(growth: WindowGrowth, transfer: () => Promise<T>): Promise<[T, number]> {
      let lowest = growth.available;
      const watch = setInterval(() => {
        lowest = Math.min(lowest, growth.available);
      }, 1);
      try {
        return [await transfer(), lowest];
      } finally {
        clearInterval(watch);
      }
    }

    test('a stream whose reader keeps up grows its window to the most allowed; closing gives it back', async () => {
      const growth = new WindowGrowth(1024 * KiB, 4096 * KiB);
      const pair = await sessionPair({ windowGrowth: growth }, { windowGrowth: null });
      try {
        countingServer(pair);
        const [counted, leastAvailable] = await lowestBudget(growth, () => upload(pair, 32 << 20));
        assert.equal(counted, String(32 << 20));
        // 256 KiB → 512 KiB → 1 MiB: 768 KiB of the budget, and no more (1 MiB is the most).
        assert.equal(leastAvailable, 4096 * KiB - 768 * KiB);
        await until(() => pair.server.openStreams === 0, 'the server to forget the stream');
        assert.equal(growth.available, 4096 * KiB);
      } finally {
        pair.close();
      }
    });

    test('the budget bounds what all streams grow by together', async () => {
      const growth = new WindowGrowth(4096 * KiB, 512 * KiB);
      const pair = await sessionPair({ windowGrowth: growth }, { windowGrowth: null });
      try {
        countingServer(pair);
        const [counted, leastAvailable] = await lowestBudget(growth, () =>
          Promise.all([upload(pair, 24 << 20), upload(pair, 24 << 20)]),
        );
        assert.deepEqual(counted, [String(24 << 20), String(24 << 20)]);
        assert.equal(leastAvailable, 0, 'the streams grew until the budget was spent');
        await until(() => pair.server.openStreams === 0, 'the server to forget both streams');
        assert.equal(growth.available, 512 * KiB);
      } finally {
        pair.close();
      }
    });

    test('a reader that stops, or reads slower than the sender, keeps its window', async () => {
      const growth = new WindowGrowth(4096 * KiB, 4096 * KiB);
      const pair = await sessionPair({ windowGrowth: growth }, { windowGrowth: null });
      try {
        let held: MuxStream | undefined;
        pair.server.on('stream', (stream: MuxStream) => {
          stream.on('error', () => {});
          stream.respond({ ':status': 200 });
          stream.pause();
          held = stream;
        });
        const stream = pair.client.request({ ':method': 'POST', ':path': '/hold' });
        stream.on('error', () => {});
        const block = Buffer.alloc(64 * KiB);
        for (let i = 0; i < 256; i++) stream.write(block);
        await until(() => (held?.readableLength ?? 0) >= 256 * KiB, 'the held stream to fill its window');
        await delay(200);
        assert.equal(held?.readableLength, 256 * KiB);
        // 16 KiB every 10 ms: credit goes back every 64 KiB, and the sender refills only that.
        let taken = 0;
        const trickle = setInterval(() => {
          taken += (held?.read(16 * KiB) as Buffer | null)?.length ?? 0;
        }, 10);
        await until(() => taken >= 256 * KiB, 'the slow reader to take a whole window').finally(() =>
          clearInterval(trickle),
        );
        assert.ok((held?.readableLength ?? 0) <= 256 * KiB, `${held?.readableLength} bytes held`);
        assert.equal(growth.available, 4096 * KiB);
        stream.destroy();
      } finally {
        pair.close();
      }
    });
  });

  test('GOAWAY: streams the server never saw are refused (REFUSED_STREAM), open ones finish', async () => {
    const pair = await sessionPair();
    try {
      let held: MuxStream | undefined;
      pair.server.on('stream', (stream: MuxStream) => {
        held = stream;
        stream.respond({ ':status': 200 });
      });
      const first = pair.client.request({ ':method': 'GET', ':path': '/' }, { endStream: true });
      await once(first, 'response');
      pair.server.close();
      await once(pair.client, 'goaway');
      assert.throws(() => pair.client.request({ ':method': 'GET', ':path': '/' }), /closing/);
      (held as MuxStream).end('last words');
      assert.equal((await readAll(first)).toString(), 'last words');
      await once(pair.client, 'close');
    } finally {
      pair.close();
    }
  });

  test('a stream past the server limit is refused; a dead connection fails every open stream', async () => {
    const pair = await sessionPair({ maxConcurrentStreams: 1 });
    try {
      pair.server.on('stream', (stream: MuxStream) => {
        stream.on('error', () => {});
        stream.respond({ ':status': 200 });
      });
      const open = pair.client.request({ ':method': 'GET', ':path': '/' }, { endStream: true });
      await once(open, 'response');
      open.on('error', () => {});
      // The client learns the limit from SETTINGS and refuses locally...
      assert.throws(() => pair.client.request({ ':method': 'GET', ':path': '/' }), /at most 1 streams/);
      // ...and a connection that dies takes the open stream down with an error, never an end.
      const outcome = new Promise<string>((resolve) => {
        open.once('end', () => resolve('end'));
        open.once('close', () => resolve(`close ${open.rstCode}`));
      });
      pair.server.socket.destroy();
      assert.equal(await outcome, `close ${MuxError.cancel}`);
    } finally {
      pair.close();
    }
  });

  test('PING is answered; keepalive data counts bytes', async () => {
    const pair = await sessionPair();
    try {
      const answered = await new Promise<Error | null>((resolve) => pair.client.ping(resolve));
      assert.equal(answered, null);
      assert.ok(pair.client.bytesRead > 0);
    } finally {
      pair.close();
    }
  });
});
