// `postern/agent`: publishing local services through a relay, and the agent's keys.
export { type Agent, createAgent } from '../agent/agent.js';
export type { AgentEvents, AgentRequestEvent } from '../agent/agent-events.js';
export { type AgentOptions, DEFAULT_AGENT_OPTIONS, type ServiceOptions } from '../agent/options.js';
export type { ReplayRequest } from '../agent/replay.js';
export {
  type ExchangeRecord,
  type ObservedExchange,
  type PackedHeaders,
  type TrafficObserver,
  unpackHeaders,
} from '../agent/traffic-observer.js';
export { KeyFileError, RegistrationRejectedError } from '../errors.js';
export { type AgentKey, generateAgentKey, loadKeyFile, writeKeyFile } from '../keys/key-file.js';
export { keyLabel, serviceLabel } from '../keys/label.js';
export type { AssignedService } from '../session/protocol.js';
