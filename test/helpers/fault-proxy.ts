import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * What happens to the bytes of the connections open when a fault starts (new connections pass):
 * - pass: forwarded as they come;
 * - blackhole: read and thrown away, no FIN, no RST (packets that vanish, a lost NAT entry);
 * - stall: no longer read (the sender's window fills, nothing moves, nothing closes);
 * - delay: forwarded `delayMs` later, in order;
 * - throttle: forwarded at `bytesPerSecond`, in order.
 */
export type Fault =
  | { kind: 'pass' }
  | { kind: 'blackhole' }
  | { kind: 'stall' }
  | { kind: 'delay'; delayMs: number }
  | { kind: 'throttle'; bytesPerSecond: number };

/** Direction of the bytes: up = client → server (agent → relay), down = server → client. */
export type Direction = 'up' | 'down' | 'both';

export interface FaultProxy {
  port: number;
  /** Connections currently open through the proxy. */
  readonly open: number;
  /** Applies `fault` to the connections open now, in `direction`; later connections pass. */
  inject(fault: Fault, direction?: Direction): void;
  /** Applies `fault` to every connection from now on, including new ones. */
  injectForAll(fault: Fault, direction?: Direction): void;
  /** Resets every open connection (both sides see ECONNRESET). */
  resetAll(): void;
  close(): Promise<void>;
}

/** Bytes queued in one direction before the sending side is paused (backpressure, bounded memory). */
const MAX_QUEUED_BYTES = 1 << 20;

class Pipe {
  fault: Fault = { kind: 'pass' };
  #queued = 0;
  #nextSendAt = 0;
  readonly #from: Socket;
  readonly #to: Socket;

  constructor(from: Socket, to: Socket) {
    this.#from = from;
    this.#to = to;
    from.on('data', (chunk: Buffer) => this.#onData(chunk));
    from.on('end', () => this.#later(() => to.end()));
  }

  set(fault: Fault): void {
    this.fault = fault;
    if (fault.kind === 'stall') this.#from.pause();
    else this.#from.resume();
  }

  #onData(chunk: Buffer): void {
    const fault = this.fault;
    switch (fault.kind) {
      case 'blackhole':
        return;
      case 'pass':
        if (this.#queued === 0 && !this.#to.write(chunk)) {
          this.#from.pause();
          this.#to.once('drain', () => this.fault.kind !== 'stall' && this.#from.resume());
        } else if (this.#queued > 0) this.#schedule(chunk, Date.now());
        return;
      case 'stall':
        // Bytes already read when the stall began are held back, not lost.
        this.#schedule(chunk, Number.POSITIVE_INFINITY);
        return;
      case 'delay':
        this.#schedule(chunk, Date.now() + fault.delayMs);
        return;
      case 'throttle': {
        const start = Math.max(Date.now(), this.#nextSendAt);
        this.#nextSendAt = start + (chunk.length / fault.bytesPerSecond) * 1000;
        this.#schedule(chunk, this.#nextSendAt);
        return;
      }
    }
  }

  #chain: Promise<void> = Promise.resolve();

  #schedule(chunk: Buffer, at: number): void {
    this.#queued += chunk.length;
    if (this.#queued > MAX_QUEUED_BYTES) this.#from.pause();
    this.#chain = this.#chain.then(async () => {
      while (at === Number.POSITIVE_INFINITY && this.fault.kind === 'stall') await sleep(50);
      const wait = at === Number.POSITIVE_INFINITY ? 0 : at - Date.now();
      if (wait > 0) await sleep(wait);
      if (this.#to.destroyed) return;
      this.#to.write(chunk);
      this.#queued -= chunk.length;
      if (this.#queued <= MAX_QUEUED_BYTES / 2 && this.fault.kind !== 'stall') this.#from.resume();
    });
  }

  #later(action: () => void): void {
    this.#chain = this.#chain.then(action);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A TCP proxy to 127.0.0.1:`targetPort` that injects network faults on command (for the chaos tests). */
export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  const connections = new Set<{ client: Socket; server: Socket; up: Pipe; down: Pipe }>();
  let forAll: { fault: Fault; direction: Direction } | undefined;
  const apply = (c: { up: Pipe; down: Pipe }, fault: Fault, direction: Direction): void => {
    if (direction !== 'down') c.up.set(fault);
    if (direction !== 'up') c.down.set(fault);
  };
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true });
    const entry = {
      client,
      server: upstream,
      up: new Pipe(client, upstream),
      down: new Pipe(upstream, client),
    };
    connections.add(entry);
    if (forAll !== undefined) apply(entry, forAll.fault, forAll.direction);
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
      connections.delete(entry);
    };
    client.on('error', teardown).on('close', teardown);
    upstream.on('error', teardown).on('close', teardown);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const resetAll = (): void => {
    for (const c of connections) {
      c.client.resetAndDestroy();
      c.server.resetAndDestroy();
    }
    connections.clear();
  };
  return {
    port: (server.address() as { port: number }).port,
    get open() {
      return connections.size;
    },
    inject(fault, direction = 'both') {
      for (const c of connections) apply(c, fault, direction);
    },
    injectForAll(fault, direction = 'both') {
      forAll = { fault, direction };
      for (const c of connections) apply(c, fault, direction);
    },
    resetAll,
    close() {
      resetAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
