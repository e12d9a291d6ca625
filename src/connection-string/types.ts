/** The transports a connection string can name (docs/client.md, "Connection strings"). */
export const TRANSPORTS = ['tcp', 'tcps', 'unix', 'ws', 'wss', 'http', 'https'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/**
 * A parsed connection string: `transport://[user[:password]@]host:port[/path][?param=value&…]`.
 * Optional fields are absent (never `undefined`) when the string does not set them.
 */
export interface ConnectionString {
  transport: Transport;
  username?: string;
  password?: string;
  /** Host name (lowercased), IPv4 address, or IPv6 address without brackets. */
  host: string;
  /** 0–65535; filled in from the scheme's default for ws/wss/http/https when the string omits it. */
  port: number;
  /** The URL path as written (percent-encoding kept), '' when absent. */
  path: string;
  /** `http_preflight=true`: send an HTTP/1.1 Upgrade request before the stream starts (tcp, tcps, unix). */
  httpPreflight?: boolean;
  /** `path=`: the Unix socket file (unix only, required there). */
  socketPath?: string;
  /** `ca=`: a PEM file of CA certificates to trust instead of the system's (tcps, wss, https). */
  ca?: string;
  /** `sni=`: the TLS server name to send and verify, when it differs from the host (tcps, wss, https). */
  sni?: string;
  /**
   * `pin=sha256/<base64>[,…]`: the relay's public key must hash to one of these (SHA-256 of the
   * DER SubjectPublicKeyInfo), on top of the usual certificate checks (tcps, wss, https).
   */
  pin?: string[];
  /** `proxy=`: a forward proxy to tunnel through, `http://` or `socks5[h]://[user:password@]host:port` (tcp, tcps, ws, wss, http, https). */
  proxy?: string;
  /** AMPS's `tcp_nodelay=false`: Nagle's algorithm on (Postern sets no-delay otherwise) (tcp, tcps). */
  tcpNoDelay?: boolean;
  /** AMPS's `tcp_keepalive=true`: TCP keepalive probes on the connection (tcp, tcps). */
  tcpKeepAlive?: boolean;
  /** AMPS's `bind=<ip>[:<port>]`: the local address (and port) to connect from (tcp, tcps). */
  bind?: { host: string; port?: number };
  /** AMPS's `tcp_sndbuf` / `tcp_rcvbuf`, bytes: kept, not applied (Node cannot set them); a notice says so. */
  tcpSndbuf?: number;
  tcpRcvbuf?: number;
}

/** Transports that run over TLS. */
export function isTls(transport: Transport): boolean {
  return transport === 'tcps' || transport === 'wss' || transport === 'https';
}
