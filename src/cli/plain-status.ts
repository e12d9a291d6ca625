import { AGENT_PATH } from '../session/protocol.js';

/**
 * `postern expose` on a pipe or with --plain: one line per event a person needs. A relay that
 * never answered is "cannot reach", not "lost"; the sessions of one agent failing the same way
 * on the same attempt make one line, not one each.
 */
export class PlainStatus {
  readonly #write: (line: string) => void;
  /** Connections that had a session at least once. */
  readonly #everUp = new Set<number>();
  readonly #lost = new Map<number, { relay: string; reason: string }>();
  /** Lines said since the last session came up, so each is said once. */
  readonly #said = new Set<string>();

  constructor(write: (line: string) => void) {
    this.#write = write;
  }

  connected(connection: number): void {
    if (this.#everUp.has(connection) && this.#lost.has(connection))
      this.#write('connected to the relay again');
    this.#everUp.add(connection);
    this.#lost.delete(connection);
    this.#said.clear();
  }

  disconnected(event: { connection: number; relay: string; reason: string }): void {
    this.#lost.set(event.connection, { relay: event.relay, reason: event.reason });
  }

  reconnecting(event: { connection: number; attempt: number; delayMs: number }): void {
    const lost = this.#lost.get(event.connection);
    if (lost === undefined) return;
    const relay = relayForPeople(lost.relay);
    // dial.ts names the full address first; the line names the relay already.
    const reason = lost.reason.replace(`cannot connect to ${lost.relay}: `, '');
    const delay = event.delayMs < 1000 ? `${event.delayMs} ms` : `${(event.delayMs / 1000).toFixed(1)} s`;
    const retry = `${delay} (attempt ${event.attempt})`;
    const unreachable = lost.reason !== reason;
    const line = this.#everUp.has(event.connection)
      ? `lost the session to the relay at ${relay}: ${reason}; reconnecting in ${retry}`
      : unreachable
        ? `cannot reach the relay at ${relay}: ${reason}; retrying in ${retry}`
        : `${relay}: ${reason}; retrying in ${retry}`;
    const key = `${this.#everUp.has(event.connection)} ${relay} ${reason} ${event.attempt}`;
    if (this.#said.has(key)) return;
    this.#said.add(key);
    this.#write(line);
  }
}

/** The relay as the user wrote it: without the agent endpoint's path and the options we add. */
export function relayForPeople(relay: string): string {
  const bare = relay.replace(/\?.*$/, '');
  return bare.endsWith(AGENT_PATH) ? bare.slice(0, -AGENT_PATH.length) : bare;
}
