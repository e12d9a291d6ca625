// `postern`: everything. Applications that need one part import `postern/client`,
// `postern/agent` or `postern/relay` and load only that part.
export * from './entry/agent.js';
export * from './entry/client.js';
export * from './entry/relay.js';
export {
  type Capture,
  type CaptureLimits,
  CaptureStore,
  DEFAULT_CAPTURE_LIMITS,
} from './inspector/capture-store.js';
export { type Inspector, type InspectorOptions, startInspector } from './inspector/inspector-server.js';
