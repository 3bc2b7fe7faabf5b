import { isIP } from 'node:net';
import { ipKey, normaliseIp } from '../../lib/ip.js';
import type { Alert, ObservedRecord } from './types.js';

/** The most characters of a record's text a detector keeps as a key: a hostile stream cannot make one entry large. */
export const MAX_KEY_CHARS = 300;

const clip = (text: string): string => (text.length > MAX_KEY_CHARS ? text.slice(0, MAX_KEY_CHARS) : text);
const str = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null);

/**
 * The client network a detector counts by: an IPv4 address's /24 (`203.0.113.0/24`), an IPv6
 * address's /48 (what one site is usually given), or null when the member is not an address.
 */
export function networkOf(address: unknown): string | null {
  if (typeof address !== 'string' || address.length > 64) return null;
  const ip = normaliseIp(address);
  const family = isIP(ip);
  if (family === 4) return `${ip.slice(0, ip.lastIndexOf('.'))}.0/24`;
  if (family === 6) return ipKey(ip, 48);
  return null;
}

/**
 * One record as the detectors read it: each fact worked out at most once, on first use, with the
 * type of every member checked (records from a file or the stream are untrusted).
 */
export class Observation {
  private networkMemo: string | null | undefined;
  private credentialMemo: string | null | undefined;
  private identityMemo: string | null | undefined;

  constructor(readonly record: ObservedRecord) {}

  get status(): number | null {
    const s = this.record.status;
    return typeof s === 'number' ? s : null;
  }

  get reason(): string | null {
    return str(this.record.reason);
  }

  get detail(): string | null {
    return str(this.record.detail);
  }

  /** The chain the record came from (`gw-1/main`), when its reader set it. */
  get chain(): string | null {
    const c = str(this.record.chain);
    return c === null ? null : clip(c);
  }

  get tenant(): string | null {
    const t = str(this.record.tenant);
    return t === null ? null : clip(t);
  }

  /** The client address as written, when it is an IP address. */
  get clientIp(): string | null {
    const ip = str(this.record.clientIp);
    return ip === null || ip.length > 64 ? null : normaliseIp(ip);
  }

  /** `203.0.113.0/24`, `2001:db8:1:0:0:0:0:0/48`, or null. */
  get network(): string | null {
    if (this.networkMemo === undefined) this.networkMemo = networkOf(this.record.clientIp);
    return this.networkMemo;
  }

  /**
   * The credential: `key:<id>` for an API key (also on the denials of a known key: revoked,
   * expired, wrong network), else `<authMethod>:<subject>` (`jwt:alice`); null when none is known.
   */
  get credential(): string | null {
    if (this.credentialMemo === undefined) {
      const id = this.record.identity;
      const keyId = id !== null && typeof id === 'object' ? str(id.keyId) : null;
      this.credentialMemo = keyId !== null ? `key:${clip(keyId)}` : this.identity;
    }
    return this.credentialMemo;
  }

  /** Who: `<authMethod>:<subject>` (`apiKey:billing-service`, `jwt:alice`), or null when unauthenticated. */
  get identity(): string | null {
    if (this.identityMemo === undefined) {
      const id = this.record.identity;
      const subject = id !== null && typeof id === 'object' ? str(id.subject) : null;
      const method = id !== null && typeof id === 'object' ? str(id.authMethod) : null;
      this.identityMemo = subject === null ? null : clip(`${method ?? 'unknown'}:${subject}`);
    }
    return this.identityMemo;
  }
}

/**
 * A detector as the engine runs it: fed each request and admin record once, as an Observation,
 * adding its alerts to `out` (no array per record on the hot path).
 */
export interface RecordDetector {
  readonly name: string;
  observe(o: Observation, now: number, out: Alert[]): void;
  /** Keys tracked now in each of the detector's tables (each at most maxTrackedKeys), by table. */
  readonly trackedKeys: Readonly<Record<string, number>>;
}
