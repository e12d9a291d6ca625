// `postern/client`: reaching a tunneled TCP service (connect(), Client) and connection strings,
// without the relay, the agent or the inspector behind them.
export { Client } from '../client/client.js';
export {
  type ConnectionString,
  formatConnectionString,
  parseConnectionString,
  type Transport,
} from '../connection-string/index.js';
export {
  ConnectError,
  ConnectionStringError,
  ERROR_CATALOGUE,
  OptionError,
  PosternError,
  type PosternErrorCode,
  type WireErrorCode,
} from '../errors.js';
export type { Logger } from '../log.js';
export { type ConnectOptions, connect } from '../transport/connect.js';
export { localhostLookup } from '../transport/localhost-lookup.js';
export { PreflightFailedError, PreflightRefusedError } from '../transport/preflight-handshake.js';
export { BadHeaderError, type PreflightHeader } from '../transport/preflight-headers.js';
