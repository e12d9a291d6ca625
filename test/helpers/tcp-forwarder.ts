import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpForwarder {
  port: number;
  /** The first bytes each connection sent through (latin1), e.g. to see which upgrade an agent made. */
  firstChunks: string[];
  /** Destroys every connection going through the forwarder (both sides see a reset). */
  cutAll(): void;
  /** Resets the oldest open connection only; false when there is none. */
  cutOne(): boolean;
  /** How many connections are open through the forwarder. */
  readonly open: number;
  /** Stops moving bytes on the open connections without closing them: a silent, half-dead path. */
  stallAll(): void;
  close(): Promise<void>;
}

/** A loopback TCP forwarder to 127.0.0.1:`targetPort`, so a test can cut connections at will. */
export async function startTcpForwarder(targetPort: number): Promise<TcpForwarder> {
  const pairs = new Set<[Socket, Socket]>();
  const firstChunks: string[] = [];
  const server: Server = createServer((inbound) => {
    const outbound = connect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [inbound, outbound];
    pairs.add(pair);
    const teardown = (): void => {
      inbound.destroy();
      outbound.destroy();
      pairs.delete(pair);
    };
    inbound.on('error', teardown).on('close', teardown);
    outbound.on('error', teardown).on('close', teardown);
    inbound.once('data', (chunk: Buffer) => firstChunks.push(chunk.toString('latin1')));
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const cutAll = (): void => {
    for (const [a, b] of pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    pairs.clear();
  };
  const stallAll = (): void => {
    for (const [a, b] of pairs) {
      a.unpipe(b);
      b.unpipe(a);
      a.pause();
      b.pause();
    }
  };
  const cutOne = (): boolean => {
    const [pair] = pairs;
    if (pair === undefined) return false;
    pair[0].resetAndDestroy();
    pair[1].resetAndDestroy();
    pairs.delete(pair);
    return true;
  };
  return {
    get open() {
      return pairs.size;
    },
    cutOne,
    port: (server.address() as { port: number }).port,
    firstChunks,
    cutAll,
    stallAll,
    close() {
      cutAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
