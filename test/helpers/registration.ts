import type { AgentKey } from '../../src/keys/key-file.js';
import { AGENT_PATH, type RequestedService } from '../../src/session/protocol.js';
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
