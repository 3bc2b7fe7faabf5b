import { isIP } from 'node:net';
import { Reader } from 'maxmind';
import type { Resource } from '../lifecycle/resources.js';
import { normaliseIp } from './ip.js';

/** A country for an IP address: ISO 3166-1 alpha-2 (`DE`), or null when the database does not know it (private ranges). */
export interface GeoLookup {
  country(ip: string): string | null;
}

/**
 * A GeoLookup that also says which addresses it cannot judge at all: an address of a family its
 * database does not hold (IPv6 in a database of IPv4 addresses only) is not "in no country" as a
 * private address is; it is unknown to the rules, which must not let it pass a deny list.
 */
export interface CountryLookup extends GeoLookup {
  /** False when the database holds no address of this one's family, so `country` says nothing about it. */
  answers(ip: string): boolean;
}

/**
 * Decoded records the reader keeps (least recently used first out). The reader caches records by
 * their place in the database, not by address: a country database holds a few hundred, so every
 * lookup after warm-up decodes nothing; a city database holds millions, and the bound holds.
 */
export const COUNTRY_CACHE_ENTRIES = 10_000;

/** A least-recently-used map of at most `max` entries (a Map keeps insertion order: the first key is the oldest). */
class BoundedCache {
  private readonly entries = new Map<string | number, unknown>();

  constructor(private readonly max: number) {}

  get(key: string | number): unknown {
    if (!this.entries.has(key)) return undefined;
    const value = this.entries.get(key);
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }

  set(key: string | number, value: unknown): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.max) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Largest country database read: GeoIP2 City is about 130 MB; a bigger file is a mistake. */
export const MAX_COUNTRY_DATABASE_BYTES = 512 * 1024 * 1024;

const COUNTRY = /^[A-Z]{2}$/;

/** `databaseType` of MaxMind-format databases that place addresses in no country. */
const OTHER_KINDS = /(?:^|[-_ ])(?:ASN|ISP|Domain|Connection-Type|Anonymous-IP|Anonymous-Plus|IP-Risk|User-Count)(?:$|[-_ ])/i;

/**
 * A MaxMind-format database (.mmdb) of countries held in memory: GeoIP2/GeoLite2 Country and City
 * (`country.iso_code`) and the DB-IP / ip-location-db country databases (`country_code`). Built
 * from the file's bytes, read by config compilation like every other file a config names, so a
 * changed file is a new config version (and a reload picks it up) and `check` judges the file.
 *
 * A resource only so an equal database (same file, same bytes) is reused across reloads with its
 * cache warm: it holds no handle, so start and stop have nothing to do.
 */
export class CountryDatabase implements Resource, CountryLookup {
  readonly key: string;
  private readonly reader: Reader<Record<string, unknown>>;
  private readonly cache = new BoundedCache(COUNTRY_CACHE_ENTRIES);
  /** 4 for a database of IPv4 addresses only: it must not be asked about IPv6 (it would answer from the wrong part of its tree). */
  private readonly ipVersion: number;

  /** Throws an Error saying why the bytes are not a MaxMind-format database. */
  constructor(readonly path: string, bytes: Buffer, digest: string) {
    let reader: Reader<Record<string, unknown>>;
    try {
      reader = new Reader<Record<string, unknown>>(bytes, { cache: this.cache });
    } catch (err) {
      throw new Error(`not a MaxMind-format database (.mmdb): ${(err as Error).message}`);
    }
    const meta = reader.metadata;
    if ((meta.ipVersion !== 4 && meta.ipVersion !== 6) || !Number.isInteger(meta.nodeCount) || meta.nodeCount <= 0) {
      throw new Error('not a MaxMind-format database (.mmdb): its metadata names no IPv4 or IPv6 search tree');
    }
    // A database of another kind (MaxMind's ASN, ISP, Domain, Connection-Type, Anonymous IP) has no
    // country in any record: every address would be in no country, and a deny list would never match.
    const type = meta.databaseType;
    if (OTHER_KINDS.test(type)) throw new Error(`a ${type} database, not one of countries: use a Country or City database`);
    this.reader = reader;
    this.ipVersion = meta.ipVersion;
    this.key = `country-database:${path}:${digest}`;
  }

  /** Records decoded and kept now (at most COUNTRY_CACHE_ENTRIES). */
  get cachedRecords(): number {
    return this.cache.size;
  }

  /**
   * The country of an address, or null when the database does not know it (private, loopback and
   * unrouted ranges, an IPv6 address in an IPv4-only database) or the address is not one.
   * IPv4-mapped and NAT64 forms are looked up as the IPv4 address they carry.
   */
  country(ip: string): string | null {
    const address = normaliseIp(ip);
    const family = isIP(address);
    if (family === 0 || (family === 6 && this.ipVersion === 4)) return null;
    let found: Record<string, unknown> | null;
    try {
      found = this.reader.get(address);
    } catch {
      return null;
    }
    return countryOf(found);
  }

  answers(ip: string): boolean {
    return !(this.ipVersion === 4 && isIP(normaliseIp(ip)) === 6);
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}

function countryOf(entry: Record<string, unknown> | null): string | null {
  if (entry === null || typeof entry !== 'object') return null;
  const flat = entry['country_code'];
  if (typeof flat === 'string' && COUNTRY.test(flat)) return flat;
  const nested = entry['country'];
  if (nested !== null && typeof nested === 'object') {
    const iso = (nested as Record<string, unknown>)['iso_code'];
    if (typeof iso === 'string' && COUNTRY.test(iso)) return iso;
  }
  return null;
}
