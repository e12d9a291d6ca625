/**
 * Why a listener could not start, in the words of someone who typed the address: "port 8080 is
 * in use" rather than EADDRINUSE. `port` is undefined for a Unix socket.
 */
export function listenFailure(error: NodeJS.ErrnoException, where: { host?: string; port?: number }): string {
  const port = where.port === undefined ? 'the socket' : `port ${where.port}`;
  switch (error.code) {
    case 'EADDRINUSE':
      return `${port} is in use`;
    case 'EACCES':
      return where.port !== undefined && where.port < 1024
        ? `${port} needs root or the CAP_NET_BIND_SERVICE capability`
        : `permission denied (${error.code})`;
    case 'EADDRNOTAVAIL':
      return `${where.host ?? 'the address'} is not an address of this machine`;
    case 'ENOENT':
      return 'the folder for the socket does not exist';
    default:
      return error.code ?? error.message;
  }
}
