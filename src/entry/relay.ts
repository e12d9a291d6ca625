// `postern/relay`: the public relay (Redis is loaded only in cluster mode).
export { DEFAULT_RELAY_OPTIONS, type RelayOptions } from '../relay/options.js';
export {
  createRelay,
  type Relay,
  type RelayEvents,
  type RelayReload,
  type RelayReloadFiles,
  type TunnelInfo,
} from '../relay/relay.js';
