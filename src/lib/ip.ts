import { BlockList, isIP, SocketAddress } from 'node:net';

/**
 * One spelling per address, so the same client is the same string in rules, limits, blocks and
 * audit records: IPv6 in its canonical text (RFC 5952: lower case, shortest, zone dropped), and
 * an IPv4 client seen through IPv6 as its IPv4 address, whether IPv4-mapped (`::ffff:10.0.0.1`,
 * `0:0:0:0:0:ffff:a00:1`) or translated by NAT64 with the well-known prefix (`64:ff9b::a00:1`,
 * RFC 6052: an IPv6-only network's view of an IPv4 client). Anything else is returned unchanged.
 */
export function normaliseIp(address: string): string {
  if (isIP(address) !== 6) return address;
  let canonical: string;
  try {
    canonical = new SocketAddress({ address, family: 'ipv6' }).address;
  } catch {
    return address;
  }
  return embeddedIpv4(canonical) ?? canonical;
}

/** The IPv4 address a canonical IPv6 text carries as IPv4-mapped or NAT64 well-known prefix, or null. */
function embeddedIpv4(canonical: string): string | null {
  const prefix = canonical.startsWith('::ffff:') ? 7 : canonical.startsWith('64:ff9b::') ? 9 : 0;
  if (prefix === 0) return null;
  const rest = canonical.slice(prefix);
  if (isIP(rest) === 4) return rest;
  const hex = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(rest) ?? (prefix === 9 ? /^()([0-9a-f]{1,4})$/.exec(rest) : null);
  if (hex === null) return null;
  const high = Number.parseInt(hex[1] === '' ? '0' : hex[1] ?? '0', 16);
  const low = Number.parseInt(hex[2] ?? '0', 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/**
 * Whether an IPv6 address (canonical text) is in the deprecated IPv4-compatible range `::/96`
 * (RFC 4291 §2.5.5.1), other than `::1`: no client has one, and `::10.1.2.3` reads as an IPv4
 * address it is not, so a hop naming one is not believed.
 */
export function isIpv4Compatible(canonical: string): boolean {
  if (!canonical.startsWith('::') || canonical === '::1') return false;
  const rest = canonical.slice(2);
  return rest === '' || isIP(rest) === 4 || /^(?:[0-9a-f]{1,4}:)?[0-9a-f]{1,4}$/.test(rest);
}

/** A set of CIDR ranges, checked in constant work per lookup (node's BlockList). */
export interface IpSet {
  readonly size: number;
  has(address: string): boolean;
}

/**
 * What is wrong with a CIDR entry a config or an operator wrote (`10.0.0.0/8`, `2001:db8::/32`, a
 * bare address), or null: the syntax ipSet refuses, and an IPv4-mapped (`::ffff:a.b.c.d`, any
 * spelling) or NAT64 well-known prefix (`64:ff9b::/96`) form. Client addresses in those forms are
 * read as the IPv4 address they carry (normaliseIp), so such an entry would match differently
 * than it reads, or never. Every list of addresses (trusted proxies, IP rules, API key ranges,
 * rule literals) is checked with this one function, so one spelling means one thing everywhere.
 */
export function cidrProblem(entry: string): string | null {
  try {
    ipSet([entry]);
  } catch (err) {
    return (err as Error).message;
  }
  const addr = entry.split('/', 1)[0] ?? '';
  if (isIP(addr) === 6 && isIP(normaliseIp(addr)) === 4) {
    return `"${entry}" is an IPv4-mapped or NAT64 (64:ff9b::/96) IPv6 form: write the IPv4 address or range itself (clients connecting as ::ffff:a.b.c.d or 64:ff9b::a.b.c.d are matched as a.b.c.d)`;
  }
  return null;
}

/**
 * Builds an IpSet from CIDR strings (`10.0.0.0/8`, `::1/128`, or a bare address). Throws an Error
 * naming the offending entry; config compilation turns that into a located config error.
 */
export function ipSet(cidrs: readonly string[]): IpSet {
  const list = new BlockList();
  for (const entry of cidrs) {
    const parts = entry.split('/');
    // `10.0.0.0/8/16` is no range: read as /8, it would say something its writer did not.
    if (parts.length > 2) throw new Error(`"${entry}" has more than one "/"`);
    const [addr = '', bits] = parts;
    const family = isIP(addr);
    if (family === 0) throw new Error(`"${entry}" is not an IP address or CIDR range`);
    // A zone id names an interface of one host (`fe80::1%eth0`), never a range of client addresses.
    if (addr.includes('%')) throw new Error(`"${entry}" has a zone id (%…), which names a network interface, not addresses`);
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

/**
 * The part of a client address a rate limit keys on: an IPv4 address whole, an IPv6 address cut to
 * its first `v6PrefixBits` bits (a /64 is what one subscriber usually holds, so keying on the whole
 * address would let a caller rotate through 2^64 buckets). Returns `addr/bits` in canonical form.
 */
export function ipKey(address: string, v6PrefixBits: number): string {
  if (!address.includes(':') || isIP(address) !== 6) return address;
  const groups = expandIpv6(address);
  if (groups === null) return address;
  const out: string[] = [];
  for (let i = 0; i < 8; i++) {
    const keep = Math.max(0, Math.min(16, v6PrefixBits - i * 16));
    const mask = keep === 0 ? 0 : (0xffff << (16 - keep)) & 0xffff;
    out.push(((groups[i] ?? 0) & mask).toString(16));
  }
  return `${out.join(':')}/${v6PrefixBits}`;
}

/** The eight 16-bit groups of an IPv6 address (`::` expanded, an embedded IPv4 tail converted, a zone dropped). */
function expandIpv6(address: string): number[] | null {
  const zone = address.indexOf('%');
  let text = zone === -1 ? address : address.slice(0, zone);
  let v4: [number, number] | null = null;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const o = tail.split('.').map(Number);
    v4 = [((o[0] ?? 0) << 8) | (o[1] ?? 0), ((o[2] ?? 0) << 8) | (o[3] ?? 0)];
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = '', rest] = text.split('::', 2);
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const groups = rest === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return null;
  if (v4 !== null) { groups[6] = v4[0]; groups[7] = v4[1]; }
  return groups;
}
