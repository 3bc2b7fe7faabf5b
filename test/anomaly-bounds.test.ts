import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AnomalyEngine } from '../src/audit/anomaly/engine.js';
import type { GeoLookup } from '../src/audit/anomaly/geo.js';
import type { Alert } from '../src/audit/anomaly/types.js';
import { anomaliesConfig, request } from './harness/anomalies.js';

const START = Date.UTC(2026, 0, 1, 0, 0, 0);
const CAP = 100;

/** Every table of every detector at most CAP keys, checked after every record. */
function assertBounded(engine: AnomalyEngine): void {
  for (const [table, n] of Object.entries(engine.trackedKeys())) assert.ok(n <= CAP, `${table} tracks ${n} keys, more than ${CAP}`);
}

/** A country for every address, from its first octet: a fake database so the flood exercises impossibleTravel too (the real one is in anomaly-geo.test.ts). */
const geo: GeoLookup = { country: (ip) => (Number(ip.split('.')[0]) % 2 === 0 ? 'DE' : 'US') };

const all = () => anomaliesConfig(`{ maxTrackedKeys: ${CAP}, adminFirstUse: { enabled: true }, impossibleTravel: { minTravelTime: 1h } }`);

describe('anomaly detectors are bounded whatever the traffic', () => {
  it('a flood of distinct networks, credentials, identities and tenants never grows a table past maxTrackedKeys', () => {
    const engine = new AnomalyEngine({ ...all(), geoDatabase: '/unused', impossibleTravel: { ...all().impossibleTravel, enabled: true } }, { geo });
    assert.ok(engine.running.includes('impossibleTravel'));
    const alerts: Alert[] = [];
    for (let i = 0; i < 20_000; i++) {
      const ip = `${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}.1`;
      const identity = { subject: `s${i}`, authMethod: 'apiKey', keyId: `k${i}` };
      const now = START + i * 10;
      alerts.push(...engine.observe(request({ clientIp: ip, status: i % 2 === 0 ? 401 : 429, reason: i % 2 === 0 ? 'invalid_credential' : 'rate_limited', detail: `p: api_key_revoked: key k${i}`, identity, tenant: `t${i}` }), now));
      alerts.push(...engine.observe({ kind: 'admin', time: '', method: 'GET', path: '/keys', status: 401, clientIp: ip }, now));
      if (i % 97 === 0) assertBounded(engine);
    }
    assertBounded(engine);
    for (const [table, n] of Object.entries(engine.trackedKeys())) assert.equal(n, CAP, `${table} is full`);
    // One saturation alert per detector per window, never one per refused key.
    const saturated = alerts.filter((a) => a.detector === 'detectorSaturated');
    const perWindow = new Map<string, number>();
    for (const a of saturated) {
      const key = `${a.subject} ${a.time.slice(0, 16)}`;
      perWindow.set(key, (perWindow.get(key) ?? 0) + 1);
    }
    assert.ok(saturated.length > 0 && saturated.length < 40, `${saturated.length} saturation alerts`);
    assert.ok([...perWindow.values()].every((n) => n === 1));
    assert.ok(saturated.every((a) => a.severity === 'info' && a.evidence['maxTrackedKeys'] === CAP));
  });

  it('a flood of new keys cannot reset the count of a credential being watched', () => {
    const engine = new AnomalyEngine(anomaliesConfig(`{ maxTrackedKeys: ${CAP} }`));
    const victim = { subject: 'partner', authMethod: 'apiKey', keyId: 'victim0000000001' };
    const alerts: Alert[] = [];
    const fail = (identity: object, ip: string, now: number) => alerts.push(...engine.observe(request({ clientIp: ip, status: 401, identity }), now));
    for (let i = 0; i < 8; i++) fail(victim, `10.0.${i}.1`, START + i);
    // The attacker now fails with 5 000 other key ids from 5 000 networks, within the same window.
    for (let i = 0; i < 5000; i++) fail({ subject: `x${i}`, authMethod: 'apiKey', keyId: `flood${i}` }, `11.${i >> 8}.${i & 255}.1`, START + 100 + i);
    assert.equal(engine.trackedKeys()['authFailureSpike.credentials'], CAP);
    for (let i = 8; i < 10; i++) fail(victim, `10.0.${i}.1`, START + 6000 + i);
    const victimAlert = alerts.find((a) => a.detector === 'authFailureSpike' && a.subject === 'key:victim0000000001');
    assert.equal(victimAlert?.evidence['count'], 10, 'the tenth failure of the watched key still alerts');
  });

  it('a flood cannot push a watched credential out of credentialNetworks or tenantFanOut', () => {
    const engine = new AnomalyEngine(anomaliesConfig(`{ maxTrackedKeys: ${CAP} }`));
    const key = { subject: 'mallory', authMethod: 'apiKey', keyId: 'watched000000001' };
    const alerts: Alert[] = [];
    for (let i = 0; i < 5; i++) alerts.push(...engine.observe(request({ clientIp: `100.64.${i}.1`, identity: key, tenant: `t${i % 3}` }), START + i));
    for (let i = 0; i < 3000; i++) alerts.push(...engine.observe(request({ clientIp: `12.${i >> 8}.${i & 255}.1`, identity: { subject: `f${i}`, authMethod: 'apiKey', keyId: `f${i}` }, tenant: 'x' }), START + 10 + i));
    alerts.push(...engine.observe(request({ clientIp: '100.64.99.1', identity: key, tenant: 't3' }), START + 5000));
    assert.deepEqual(alerts.filter((a) => a.detector !== 'detectorSaturated').map((a) => `${a.detector} ${a.subject}`).sort(), ['credentialNetworks key:watched000000001', 'tenantFanOut apiKey:mallory']);
  });

  it('windows end: counts start again and tables empty, so the detectors track new keys again', () => {
    const engine = new AnomalyEngine(anomaliesConfig(`{ maxTrackedKeys: ${CAP} }`));
    for (let i = 0; i < 500; i++) engine.observe(request({ clientIp: `13.${i >> 8}.${i & 255}.1`, status: 401, identity: { subject: `u${i}`, authMethod: 'jwt' }, tenant: 'a' }), START + i);
    assert.equal(engine.trackedKeys()['tenantFanOut.identities'], CAP);
    assert.equal(engine.trackedKeys()['authFailureSpike.networks'], CAP);
    // One failure each: once a window has passed without them, their baselines no longer matter.
    engine.observe(request({ clientIp: '14.0.0.1' }), START + 11 * 60_000);
    assert.equal(engine.trackedKeys()['tenantFanOut.identities'], 0);
    engine.observe(request({ clientIp: '14.0.0.1', identity: { subject: 'new', authMethod: 'jwt' }, tenant: 'b' }), START + 25 * 60_000);
    assert.equal(engine.trackedKeys()['tenantFanOut.identities'], 1);
    assert.equal(engine.trackedKeys()['authFailureSpike.networks'], 0);
  });
});
