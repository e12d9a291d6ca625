import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { AgentKey } from '../../src/keys/key-file.js';
import { PROOF_ACCEPTED, signPossession } from '../../src/session/possession-proof.js';
import {
  AGENT_PATH,
  Header,
  type RequestedService,
  SESSION_UPGRADE_TOKEN,
} from '../../src/session/protocol.js';
import { signRegistration } from '../../src/session/registration.js';

/**
 * A modified agent for attack tests: it registers with a valid signature and then speaks raw
 * session frames it builds itself (src/mux/frames.ts), so it can send what the real multiplexer
 * would never let it send.
 */
export interface HostileSession {
  socket: Socket;
  label: string;
  /** Resolves with the next frame the relay sends of `type` (skipping others). */
  nextFrame(type: number): Promise<Frame>;
  write(bytes: Buffer): boolean;
  /** Resolves when the relay closed the connection. */
  closed: Promise<void>;
}

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** The session's frame types, plus 5 (HTTP/2's PUSH_PROMISE), which it does not have. */
export const FrameType = {
  data: 0,
  headers: 1,
  rstStream: 3,
  settings: 4,
  pushPromise: 5,
  ping: 6,
  goaway: 7,
  windowUpdate: 8,
} as const;

export const Flag = { endStream: 1, ack: 1 } as const;

export function frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** A header block as the session carries it: the JSON of an object, built here from pairs. */
export function headerBlock(headers: [string, string][]): Buffer {
  return Buffer.from(JSON.stringify(Object.fromEntries(headers)));
}

/** Registers `key` at the relay on 127.0.0.1:`port` and returns the raw session after the 101. */
export async function registerHostile(
  port: number,
  key: AgentKey,
  services: RequestedService[] = [{ name: 'default', kind: 'http' }],
): Promise<HostileSession> {
  const host = `127.0.0.1:${port}`;
  const headers = signRegistration({
    privateKey: key.privateKey,
    publicKey: key.publicKey,
    services,
    method: 'GET',
    path: AGENT_PATH,
    host,
  });
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  socket.write(
    `GET ${AGENT_PATH} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: ${SESSION_UPGRADE_TOKEN}\r\n${lines.join('')}\r\n`,
  );
  let buffered = Buffer.alloc(0);
  // Not once(): it would reject on the EPIPE a write gets when the relay hangs up.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  while (buffered.indexOf('\r\n\r\n') < 0) {
    const chunk = await Promise.race([once(socket, 'data').then(([c]) => c as Buffer), closed]);
    if (chunk === undefined) throw new Error('relay closed the connection during registration');
    buffered = Buffer.concat([buffered, chunk]);
  }
  const end = buffered.indexOf('\r\n\r\n');
  const head = buffered.subarray(0, end).toString('latin1');
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`registration refused: ${head.split('\r\n')[0]}`);
  const assigned = /postern-assigned: (.*)/i.exec(head)?.[1] ?? '[]';
  const label = (JSON.parse(assigned) as { label: string }[])[0]?.label as string;
  buffered = buffered.subarray(end + 4);
  // The proof of possession: this agent holds its key; what it sends afterwards is hostile.
  const challenge = /postern-challenge: (\S+)/i.exec(head)?.[1] ?? '';
  socket.write(signPossession(key.privateKey, challenge, headers[Header.signature] as string));
  while (buffered.length < PROOF_ACCEPTED.length) {
    const chunk = await Promise.race([once(socket, 'data').then(([c]) => c as Buffer), closed]);
    if (chunk === undefined) throw new Error('relay closed the connection instead of accepting the proof');
    buffered = Buffer.concat([buffered, chunk]);
  }
  if (!buffered.subarray(0, PROOF_ACCEPTED.length).equals(PROOF_ACCEPTED))
    throw new Error('relay did not answer the proof with PSOK');
  buffered = buffered.subarray(PROOF_ACCEPTED.length);

  // Parse the frames the relay sends. Waiters get frames of the type they want.
  const frames: Frame[] = [];
  const waiters = new Set<() => void>();
  const parse = (): void => {
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      frames.push({
        type: buffered[3] as number,
        flags: buffered[4] as number,
        streamId: buffered.readUInt32BE(5) & 0x7fffffff,
        payload: buffered.subarray(9, 9 + length),
      });
      buffered = buffered.subarray(9 + length);
    }
    for (const wake of waiters) wake();
  };
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    parse();
  });
  parse();
  // Our SETTINGS: a 1 MiB stream window, 100 streams at once.
  const settings = Buffer.alloc(8);
  settings.writeUInt32BE(1 << 20, 0);
  settings.writeUInt32BE(100, 4);
  socket.write(frame(FrameType.settings, 0, 0, settings));
  return {
    socket,
    label,
    closed,
    write: (bytes) => socket.write(bytes),
    nextFrame(type) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const index = frames.findIndex((f) => f.type === type);
          if (index >= 0) {
            waiters.delete(check);
            resolve(frames.splice(index, 1)[0] as Frame);
          }
        };
        waiters.add(check);
        void closed.then(() => {
          if (waiters.delete(check)) reject(new Error(`connection closed before a frame of type ${type}`));
        });
        check();
      });
    },
  };
}
