/**
 * Every tunnel of a relay is a subdomain of one domain, and browsers (curl too) treat all of them as
 * one site: a target that sets `Domain=<relay domain>` (or a parent of it) would plant a cookie that
 * visitors then send to every other tunnel, where another agent reads it. So a `Set-Cookie` whose
 * Domain is not exactly the tunnel's own host loses its Domain attribute and becomes host-only.
 * (On a public relay, list the domain in the Public Suffix List as well: docs/security.md.)
 */

/**
 * The Set-Cookie values with any Domain that reaches beyond `host` removed, and how many were.
 * `host` undefined (a tunnel reached by path, on a host all such tunnels share): every Domain goes.
 */
export function scopeSetCookies(
  values: string | string[] | number,
  host: string | undefined,
): { values: string[]; rescoped: number } {
  let rescoped = 0;
  const out: string[] = [];
  for (const value of Array.isArray(values) ? values : [String(values)]) {
    // Cheap test first: most cookies name no Domain at all.
    if (!/;\s*domain\s*=/i.test(value)) {
      out.push(value);
      continue;
    }
    const kept = value.split(';').filter((attribute, index) => {
      if (index === 0) return true;
      const match = /^\s*domain\s*=\s*\.?(.*?)\s*$/i.exec(attribute);
      if (match === null || (match[1] as string).toLowerCase() === host) return true;
      rescoped++;
      return false;
    });
    out.push(kept.join(';'));
  }
  return { values: out, rescoped };
}
