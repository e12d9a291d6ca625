import type { ClusterDirectory } from './directory.js';
import type { NodeLinks } from './node-links.js';

/** What the forwarding code needs of cluster mode. */
export interface ClusterContext {
  directory: ClusterDirectory;
  links: NodeLinks;
  /** Counts a stream forwarded to another node (metrics). */
  forwarded(kind: 'http' | 'websocket' | 'tcp'): void;
}
