import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { CountryDatabase, MAX_COUNTRY_DATABASE_BYTES, type GeoLookup } from '../../lib/country-database.js';

export type { GeoLookup };

/**
 * Opens a MaxMind-format country database (.mmdb) for `audit watch`, which compiles no gateway
 * config; a gateway shares the database its config compiled (`geoDatabase`) instead. A file that
 * is not such a database is an error here, at start.
 */
export async function openGeoDatabase(path: string): Promise<GeoLookup> {
  const size = (await stat(path)).size;
  if (size > MAX_COUNTRY_DATABASE_BYTES) throw new Error(`${path} is larger than ${MAX_COUNTRY_DATABASE_BYTES} bytes`);
  const bytes = await readFile(path);
  return new CountryDatabase(path, bytes, createHash('sha256').update(bytes).digest('hex'));
}
