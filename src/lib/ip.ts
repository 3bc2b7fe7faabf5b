import { BlockList, isIP } from 'node:net';

/** Strips the IPv4-mapped IPv6 prefix so `::ffff:10.0.0.1` and `10.0.0.1` are one address. */
export function normaliseIp(address: string): string {
  if (address.length > 7 && address.startsWith('::ffff:') && isIP(address.slice(7)) === 4) return address.slice(7);
  return address;
}

/** A set of CIDR ranges, checked in constant work per lookup (node's BlockList). */
export interface IpSet {
  readonly size: number;
  has(address: string): boolean;
}

/**
 * Builds an IpSet from CIDR strings (`10.0.0.0/8`, `::1/128`, or a bare address). Throws an Error
 * naming the offending entry; config compilation turns that into a located config error.
 */
export function ipSet(cidrs: readonly string[]): IpSet {
  const list = new BlockList();
  for (const entry of cidrs) {
    const [addr = '', bits] = entry.split('/', 2);
    const family = isIP(addr);
    if (family === 0) throw new Error(`"${entry}" is not an IP address or CIDR range`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    const max = family === 4 ? 32 : 128;
    const prefix = bits === undefined ? max : Number(bits);
    if (!/^\d{1,3}$/.test(bits ?? String(max)) || prefix > max) throw new Error(`"${entry}" has an invalid prefix length`);
    list.addSubnet(addr, prefix, type);
  }
  const size = cidrs.length;
  return {
    size,
    has(address: string): boolean {
      if (size === 0) return false;
      const family = isIP(address);
      if (family === 0) return false;
      return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}
