import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * `net.connect`'s lookup that resolves `localhost` and `*.localhost` to loopback itself (RFC 6761),
 * as curl and browsers do; glibc's resolver does not, and `<label>.localhost` is how local tunnels
 * are addressed. Every other name goes to the system resolver.
 */
export function localhostLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  const name = hostname.toLowerCase().replace(/\.$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) {
    const family = options.family === 6 ? 6 : 4;
    const address = family === 6 ? '::1' : '127.0.0.1';
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
    return;
  }
  // dns.lookup's overloads split on `all`; this one signature covers both, as net.connect calls it.
  (dnsLookup as unknown as (h: string, o: LookupOptions, cb: LookupCallback) => void)(
    hostname,
    options,
    callback,
  );
}
