import { isIPv4, isIPv6 } from 'node:net';

/**
 * The key an address is counted under by the per-address limits. An IPv6 host usually has a whole
 * /64 to itself (SLAAC, privacy addresses), so counting exact addresses would give one machine
 * 2^64 budgets: IPv6 addresses are counted per prefix of `ipv6PrefixBits`. IPv4 (and IPv4-mapped
 * IPv6) addresses are counted one by one.
 */
export function addressKey(address: string, ipv6PrefixBits: number): string {
  if (!isIPv6(address)) return address;
  const lower = address.toLowerCase();
  if (lower.startsWith('::ffff:') && isIPv4(lower.slice(7))) return lower.slice(7);
  const groups = ipv6Groups(lower);
  const kept: string[] = [];
  for (let i = 0; i < 8; i++) {
    const bits = Math.max(0, Math.min(16, ipv6PrefixBits - i * 16));
    const mask = bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff;
    kept.push(((groups[i] as number) & mask).toString(16));
  }
  return `${kept.join(':')}/${ipv6PrefixBits}`;
}

/** The eight 16-bit groups of a valid IPv6 address (zone dropped, embedded IPv4 included). */
function ipv6Groups(address: string): number[] {
  const text = address.split('%')[0] as string;
  const parse = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').flatMap((group) => {
      if (!group.includes('.')) return [Number.parseInt(group, 16)];
      const [a, b, c, d] = group.split('.').map(Number) as [number, number, number, number];
      return [(a << 8) | b, (c << 8) | d];
    });
  };
  const [head = '', tail] = text.split('::');
  const first = parse(head);
  if (tail === undefined) return first;
  const last = parse(tail);
  return [...first, ...Array<number>(8 - first.length - last.length).fill(0), ...last];
}
