import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ConnectionString } from '../connection-string/index.js';
import { formatConnectionString } from '../connection-string/index.js';
import { ConnectError, OptionError, redactSecrets } from '../errors.js';
import { chooseProxy, connectThroughProxy } from './forward-proxy.js';
import { localhostLookup } from './localhost-lookup.js';
import { tlsVerifyOptions } from './tls-verify.js';

export interface DialOptions {
  /** Give up connecting (TCP and TLS handshake) after this long. Default 10 000 ms. */
  timeoutMs?: number;
  /** A forward proxy (`http://` or `socks5[h]://[user:password@]host:port`); '' for none. Default: the environment's. */
  proxy?: string | undefined;
}

export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

/** What the usual network failures mean, for people; the code stays for searching. */
const NETWORK_FAILURES: Record<string, string> = {
  ECONNREFUSED: 'connection refused, nothing listens there',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'the name could not be resolved now (DNS)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'the connection was reset',
  ENOENT: 'no socket at that path',
};

/** tcp_keepalive=true: the first probe after this much idle time, ms. */
const KEEPALIVE_DELAY_MS = 30_000;
/** Options already noticed, so a notice is one line per process and not one per connection. */
const noticed = new Set<string>();

/**
 * AMPS connection strings may carry socket buffer sizes, which Node cannot set on a TCP socket: they
 * are accepted (the string stays usable as is) and named once in a process warning.
 */
function noteIgnoredOptions(target: ConnectionString): void {
  for (const [name, value] of [
    ['tcp_sndbuf', target.tcpSndbuf],
    ['tcp_rcvbuf', target.tcpRcvbuf],
  ] as const) {
    if (value === undefined || noticed.has(name)) continue;
    noticed.add(name);
    process.emitWarning(
      `${name}=${value} ignored: Node cannot size a TCP socket's buffers; the kernel's defaults apply`,
      {
        code: 'POSTERN_IGNORED_OPTION',
      },
    );
  }
}

function inWords(code: string | undefined, message: string): string {
  if (code === undefined) return message;
  const words = NETWORK_FAILURES[code];
  return words === undefined ? `${code} (${message})` : `${words} (${code})`;
}

/**
 * Opens a byte stream to a tcp://, tcps:// or unix:// address (ws:// and wss:// dial like tcp://
 * and tcps://; the WebSocket handshake is the caller's). Resolves once the connection (and
 * the TLS handshake, with verification on) is complete; rejects with a ConnectError that names the
 * address and the reason.
 */
export async function dialSocket(target: ConnectionString, options: DialOptions = {}): Promise<Socket> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  const where = redactSecrets(formatConnectionString(target));
  const tls = target.transport === 'tcps' || target.transport === 'https' || target.transport === 'wss';
  const proxy =
    target.transport === 'unix' ? undefined : chooseProxy(target.host, tls, target.proxy ?? options.proxy);
  // Through a forward proxy, CONNECT first; TLS (for tcps://) then runs inside that tunnel.
  const tunnel =
    proxy === undefined ? undefined : await connectThroughProxy(proxy, target.host, target.port, timeoutMs);
  let socket: Socket;
  let readyEvent: string;
  const from =
    target.bind === undefined
      ? {}
      : {
          localAddress: target.bind.host,
          ...(target.bind.port === undefined ? {} : { localPort: target.bind.port }),
        };
  noteIgnoredOptions(target);
  switch (target.transport) {
    case 'tcp':
    case 'http':
    case 'ws':
      socket =
        tunnel ?? netConnect({ host: target.host, port: target.port, lookup: localhostLookup, ...from });
      readyEvent = 'connect';
      break;
    case 'unix':
      socket = netConnect({ path: target.socketPath as string });
      readyEvent = 'connect';
      break;
    case 'tcps':
    case 'https':
    case 'wss': {
      socket = tlsConnect({
        ...(tunnel === undefined
          ? { host: target.host, port: target.port, lookup: localhostLookup, ...from }
          : { socket: tunnel }),
        ...tlsVerifyOptions(target),
      });
      readyEvent = 'secureConnect';
      break;
    }
    default:
      throw new OptionError(`cannot dial ${where}: ${target.transport}:// is not a stream transport here`);
  }
  // A proxy tunnel is already connected; only TLS inside it still has to finish.
  if (tunnel !== undefined && readyEvent === 'connect') return tunnel;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    const fail = (error: Error): void => {
      cleanup();
      socket.destroy();
      const code = (error as NodeJS.ErrnoException).code;
      reject(
        new ConnectError(
          `cannot connect to ${where}: ${inWords(code, error.message)}${
            tls && isCertificateError(code) ? certificateContext(target) : ''
          }`,
          error,
        ),
      );
    };
    const ready = (): void => {
      cleanup();
      if (target.tcpNoDelay === false) socket.setNoDelay(false);
      if (target.tcpKeepAlive === true) socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
      resolve(socket);
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('error', fail);
      socket.off(readyEvent, ready);
    };
    socket.once('error', fail);
    socket.once(readyEvent, ready);
  });
}

/** OpenSSL's verification codes and Node's and Postern's own certificate checks. */
function isCertificateError(code: string | undefined): boolean {
  return (
    code !== undefined &&
    /^(UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|CERT_|ERR_TLS_CERT_ALTNAME|HOSTNAME_MISMATCH|POSTERN_PIN_)/.test(
      code,
    )
  );
}

/** Which name was checked against which CAs: what a user needs to fix a certificate error. */
function certificateContext(target: ConnectionString): string {
  const name = target.sni ?? target.host;
  const cas =
    target.ca === undefined
      ? "the system's CAs (give ca=<file> for a private CA)"
      : `the CAs in ${target.ca}`;
  return `; checked "${name}" against ${cas}`;
}
