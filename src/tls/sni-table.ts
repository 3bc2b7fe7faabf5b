import type { SecureContext } from 'node:tls';

/**
 * Which certificate a server name (SNI) gets: exact names first, then a wildcard of the name's
 * parent (`*.example.com` covers `a.example.com`, never `example.com` nor `a.b.example.com`, as
 * RFC 6125 §6.4.3 has clients match). Built once per config; a reload builds a new table and the
 * listener reads the current one per handshake. Null: the default certificate.
 */
export class SniTable {
  private readonly exact = new Map<string, SecureContext>();
  /** By the parent domain a `*.` name covers. */
  private readonly wildcard = new Map<string, SecureContext>();

  /** The number of names the table holds. */
  get size(): number {
    return this.exact.size + this.wildcard.size;
  }

  /** Adds a normalised name (see normaliseServerName); false when the table holds it already. */
  add(name: string, context: SecureContext): boolean {
    const [map, key] = name.startsWith('*.') ? [this.wildcard, name.slice(2)] : [this.exact, name];
    if (map.has(key)) return false;
    map.set(key, context);
    return true;
  }

  /** The context for the name a client sent, or null for the default. */
  lookup(servername: string | undefined): SecureContext | null {
    if (servername === undefined || servername === '') return null;
    const name = normaliseServerName(servername);
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    return dot > 0 ? this.wildcard.get(name.slice(dot + 1)) ?? null : null;
  }
}

/** Server names compare lower-cased, without a trailing dot (RFC 6066 §3 sends no trailing dot; some clients do). */
export function normaliseServerName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

const LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
const SERVER_NAME = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`);

/** Whether a normalised name is a DNS name or `*.` and a DNS name of at least two labels. */
export function isServerName(name: string): boolean {
  if (name.length > 253 || !SERVER_NAME.test(name)) return false;
  return !name.startsWith('*.') || name.slice(2).includes('.');
}
