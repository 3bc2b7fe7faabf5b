import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { CountryDatabase, MAX_COUNTRY_DATABASE_BYTES } from '../lib/country-database.js';
import type { ResourceCatalog } from '../lifecycle/resources.js';
import type { ConfigSource } from './config-source.js';
import type { ConfigProblem } from './errors.js';
import type { RawConfig } from './schema.js';

/** The gateway's one country database, compiled, and whether the config names one. */
export interface CompiledGeo {
  /** Null: none configured, or the named file is not a usable database (a problem says why). */
  readonly database: CountryDatabase | null;
  readonly configured: boolean;
}

/**
 * The country database of `geoDatabase`, which `ipRules.countries` and the impossibleTravel
 * detector share (one reader per gateway). `audit.anomalies.geoDatabase`, its older spelling,
 * names it when `geoDatabase` is absent; both naming different files is an error. The file is
 * read here like every file a config names (its digest is part of the config version, so a new
 * database reloads the config), and an equal running database is reused with its cache.
 */
export function compileGeo(raw: Pick<RawConfig, 'geoDatabase' | 'audit'>, loaded: ConfigSource, catalog: ResourceCatalog, problems: ConfigProblem[]): CompiledGeo {
  const top = raw.geoDatabase;
  const old = raw.audit?.anomalies?.geoDatabase;
  const named = top ?? old;
  if (named === undefined) return { database: null, configured: false };
  const absolute = (file: string): string => (isAbsolute(file) ? file : resolve(loaded.files.baseDir, file));
  const path = absolute(named);
  const at = top !== undefined ? ['geoDatabase'] : ['audit', 'anomalies', 'geoDatabase'];
  if (top !== undefined && old !== undefined && absolute(old) !== path) {
    problems.push(loaded.problem(['audit', 'anomalies', 'geoDatabase'], `names another file than geoDatabase (${top}): the gateway has one country database; remove this option (impossibleTravel uses geoDatabase)`));
    return { database: null, configured: true };
  }
  // audit.anomalies.geoDatabase is judged a file by the anomalies section already: one problem per mistake.
  if (top === undefined && !isFile(path)) return { database: null, configured: true };
  const read = loaded.files.readBytes(path, MAX_COUNTRY_DATABASE_BYTES);
  if (!read.ok) {
    problems.push(loaded.problem(at, `${read.message}: name a MaxMind-format country database (.mmdb), relative to the config file`));
    return { database: null, configured: true };
  }
  const digest = loaded.files.list().find((f) => f.path === path)?.digest ?? '';
  const key = `country-database:${path}:${digest}`;
  const running = catalog.find(key, CountryDatabase);
  if (running !== undefined) return { database: running, configured: true };
  try {
    return { database: new CountryDatabase(path, read.bytes, digest), configured: true };
  } catch (err) {
    problems.push(loaded.problem(at, `${named} is ${(err as Error).message}; download GeoLite2-Country.mmdb or dbip-country-lite.mmdb (see docs/operations.md)`));
    return { database: null, configured: true };
  }
}

function isFile(path: string): boolean {
  try { return statSync(path).isFile(); } catch { return false; }
}
