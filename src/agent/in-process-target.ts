import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type RequestListener, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** An http.Server (or a request handler: express, fastify's `routing`, a plain function) as a target. */
export type InProcessHandler = Server | RequestListener;

export interface InProcessTarget {
  /** The target the agent forwards to. */
  target: string;
  /** Starts it taking connections (nothing to do for a server already listening). */
  start(): Promise<void>;
  /** Stops what was started for the agent (nothing, for a server that was already listening). */
  close(): Promise<void>;
}

/**
 * Publishes an application without a port, as `ngrok.listen(server)` does. A server already
 * listening is reached where it listens; otherwise it (or a server made for the handler) listens
 * on a Unix socket in a private folder (mode 0700) that nothing but this process uses, and the
 * agent closes it again.
 */
export function inProcessTarget(handler: InProcessHandler): InProcessTarget {
  if (handler instanceof Server && handler.listening) {
    const address = handler.address();
    return { target: targetOf(address), start: async () => {}, close: async () => {} };
  }
  const server = handler instanceof Server ? handler : createServer(handler);
  const dir = mkdtempSync(join(tmpdir(), 'postern-app-'));
  const path = join(dir, 'http.sock');
  return {
    target: `unix://localhost:0?path=${path}`,
    start: () =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      }),
    close: async () => {
      if (server.listening) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function targetOf(address: string | AddressInfo | null): string {
  if (address === null) throw new Error('the server has no address');
  if (typeof address === 'string') return `unix://localhost:0?path=${address}`;
  const host =
    address.address === '0.0.0.0'
      ? '127.0.0.1'
      : address.address === '::'
        ? '[::1]'
        : address.family === 'IPv6'
          ? `[${address.address}]`
          : address.address;
  return `http://${host}:${address.port}`;
}
