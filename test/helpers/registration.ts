import { request } from 'node:http';
import type { AgentKey } from '../../src/keys/key-file.js';
import {
  AGENT_PATH,
  Header,
  type RequestedService,
  SESSION_UPGRADE_TOKEN,
} from '../../src/session/protocol.js';
import { signRegistration } from '../../src/session/registration.js';

/** Registration headers for `GET /_postern/agent` to `host`, as an agent would sign them. */
export function signedRegistration(
  key: AgentKey,
  host: string,
  options: { services?: RequestedService[]; now?: number; access?: string } = {},
): Record<string, string> {
  return signRegistration({
    privateKey: key.privateKey,
    publicKey: key.publicKey,
    services: options.services ?? [{ name: 'default', kind: 'http' }],
    method: 'GET',
    path: AGENT_PATH,
    host,
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.access === undefined ? {} : { access: options.access }),
  });
}

export interface Answer {
  status: number;
  code: string | undefined;
  body: string;
}

/** Sends one registration upgrade request with exactly `headers`; destroys the socket on 101. */
export function register(port: number, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: AGENT_PATH,
      headers: { connection: 'Upgrade', upgrade: SESSION_UPGRADE_TOKEN, ...headers },
    });
    req.once('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, code: undefined, body: '' });
    });
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, code: res.headers[Header.error] as string | undefined, body }),
      );
    });
    req.once('error', reject);
    req.end();
  });
}
