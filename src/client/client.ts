import type { Duplex } from 'node:stream';
import type { ConnectionString } from '../connection-string/index.js';
import { type ConnectOptions, connect } from '../transport/connect.js';
import { normalizePreflightHeader } from '../transport/preflight-headers.js';

/**
 * A small client that remembers preflight headers, in the style of AMPS clients:
 * `addHttpPreflightHeader("Cookie: a=1")`, `addHttpPreflightHeader("Token", "value")`.
 */
export class Client {
  readonly #headers: [string, string][] = [];

  /** Adds a header as a raw line, or as a name and a value. Throws BadHeaderError at once if invalid. */
  addHttpPreflightHeader(lineOrName: string, value?: string): this {
    this.#headers.push(normalizePreflightHeader(value === undefined ? lineOrName : [lineOrName, value]));
    return this;
  }

  clearHttpPreflightHeaders(): this {
    this.#headers.length = 0;
    return this;
  }

  get httpPreflightHeaders(): readonly (readonly [string, string])[] {
    return this.#headers;
  }

  connect(
    connectionString: string | ConnectionString,
    options: Omit<ConnectOptions, 'headers'> = {},
  ): Promise<Duplex> {
    return connect(connectionString, { ...options, headers: this.#headers });
  }
}
