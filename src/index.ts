export { type Agent, createAgent } from './agent/agent.js';
export type { AgentEvents, AgentRequestEvent } from './agent/agent-events.js';
export { type AgentOptions, DEFAULT_AGENT_OPTIONS, type ServiceOptions } from './agent/options.js';
export type { ReplayRequest } from './agent/replay.js';
export type { ExchangeRecord, ObservedExchange, TrafficObserver } from './agent/traffic-observer.js';
export { Client } from './client/client.js';
export {
  type ConnectionString,
  formatConnectionString,
  parseConnectionString,
  type Transport,
} from './connection-string/index.js';
export {
  ConnectError,
  ConnectionStringError,
  ERROR_CATALOGUE,
  KeyFileError,
  OptionError,
  PosternError,
  type PosternErrorCode,
  RegistrationRejectedError,
  type WireErrorCode,
} from './errors.js';
export {
  type Capture,
  type CaptureLimits,
  CaptureStore,
  DEFAULT_CAPTURE_LIMITS,
} from './inspector/capture-store.js';
export { type Inspector, type InspectorOptions, startInspector } from './inspector/inspector-server.js';
export { type AgentKey, generateAgentKey, loadKeyFile, writeKeyFile } from './keys/key-file.js';
export { keyLabel, serviceLabel } from './keys/label.js';
export type { Logger } from './log.js';
export { DEFAULT_RELAY_OPTIONS, type RelayOptions } from './relay/options.js';
export { createRelay, type Relay, type RelayEvents, type TunnelInfo } from './relay/relay.js';
export type { AssignedService } from './session/protocol.js';
export { type ConnectOptions, connect } from './transport/connect.js';
export { PreflightFailedError, PreflightRefusedError } from './transport/preflight-handshake.js';
export { BadHeaderError, type PreflightHeader } from './transport/preflight-headers.js';
