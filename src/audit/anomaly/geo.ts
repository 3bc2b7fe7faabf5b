import { isIP } from 'node:net';
import maxmind from 'maxmind';

/** A country for an IP address: ISO 3166-1 alpha-2 (`DE`), or null when the database does not know it (private ranges). */
export interface GeoLookup {
  country(ip: string): string | null;
}

/** Lookups the reader caches (least recently used): a flood of addresses cannot grow it. */
const GEO_CACHE_ENTRIES = 10_000;

const COUNTRY = /^[A-Z]{2}$/;

/**
 * Opens a MaxMind-format database (.mmdb) of countries: GeoIP2/GeoLite2 Country and City
 * (`country.iso_code`) and the DB-IP / ip-location-db country databases (`country_code`). The
 * file is read once, into memory; a file that is not such a database is an error here, at start.
 */
export async function openGeoDatabase(path: string): Promise<GeoLookup> {
  const reader = await maxmind.open<Record<string, unknown>>(path, { cache: { max: GEO_CACHE_ENTRIES } });
  return {
    country(ip: string): string | null {
      if (isIP(ip) === 0) return null;
      let found: Record<string, unknown> | null;
      try {
        found = reader.get(ip);
      } catch {
        return null;
      }
      return countryOf(found);
    },
  };
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
