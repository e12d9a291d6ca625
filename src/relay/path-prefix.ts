import type { OutgoingHttpHeaders } from 'node:http';

/**
 * A tunnel reached by path (`/<label>/…`) sees requests without that prefix, so what it answers
 * about its own paths would leave the tunnel: a redirect to `/login`, a cookie for `Path=/`. These
 * put the prefix back, as nginx's `proxy_redirect` and `proxy_cookie_path` do for a location.
 */
export function keepUnderPrefix(
  headers: OutgoingHttpHeaders,
  prefix: string,
  visitorHost: string | undefined,
): void {
  const location = headers.location;
  if (typeof location === 'string') headers.location = prefixedLocation(location, prefix, visitorHost);
  const cookies = headers['set-cookie'];
  if (cookies !== undefined)
    headers['set-cookie'] = (Array.isArray(cookies) ? cookies : [String(cookies)]).map((cookie) =>
      prefixedCookiePath(cookie, prefix),
    );
}

/**
 * `/x` → `<prefix>/x`; an absolute URL on the visitor's own host (a target that builds URLs from
 * the Host it was given) the same way. Other hosts, and paths already under the prefix, stay.
 */
export function prefixedLocation(location: string, prefix: string, visitorHost: string | undefined): string {
  const under = (path: string): boolean =>
    path === prefix || path.startsWith(`${prefix}/`) || path.startsWith(`${prefix}?`);
  if (location.startsWith('/') && !location.startsWith('//'))
    return under(location) ? location : `${prefix}${location}`;
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    return location;
  }
  if (visitorHost === undefined || url.host !== visitorHost.toLowerCase() || under(url.pathname))
    return location;
  url.pathname = `${prefix}${url.pathname}`;
  return url.href;
}

/** `Path=/` → `Path=<prefix>/`, `Path=/x` → `Path=<prefix>/x`; a cookie without Path keeps the default. */
export function prefixedCookiePath(cookie: string, prefix: string): string {
  return cookie.replace(/(;\s*path\s*=\s*)(\/[^;]*)/i, (whole, name: string, path: string) =>
    path === prefix || path.startsWith(`${prefix}/`) ? whole : `${name}${prefix}${path}`,
  );
}
