import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alertRecord, observedFromAuditRecord } from '../src/audit/anomaly/alert-record.js';
import { AnomalyEngine } from '../src/audit/anomaly/engine.js';
import type { Alert, ObservedRecord } from '../src/audit/anomaly/types.js';
import type { AuditRecord } from '../src/audit/audit-record.js';
import { anomaliesConfig, normalTraffic, request, type TrafficEvent } from './harness/anomalies.js';

const START = Date.UTC(2026, 0, 1, 0, 0, 0);
const MIN = 60_000;

/** Every alert of a replay, in order. */
function replay(engine: AnomalyEngine, events: Iterable<TrafficEvent>): Alert[] {
  const out: Alert[] = [];
  for (const { record, now } of events) out.push(...engine.observe(record, now));
  return out;
}

/** Normal traffic with `attack` events merged in by time. */
function* merged(normal: Iterable<TrafficEvent>, attack: readonly TrafficEvent[]): Generator<TrafficEvent> {
  let i = 0;
  for (const e of normal) {
    while (i < attack.length && (attack[i]?.now ?? Infinity) <= e.now) yield attack[i++] as TrafficEvent;
    yield e;
  }
  while (i < attack.length) yield attack[i++] as TrafficEvent;
}

const NORMAL = { seed: 7, start: START, seconds: 20 * 60, perSecond: 40, users: 300 } as const;
const everything = () => anomaliesConfig('{ adminFirstUse: { enabled: true } }');
const at = (now: number, fields: Parameters<typeof request>[0]): TrafficEvent => ({ now, record: request({ time: new Date(now).toISOString(), ...fields }) });
const spread = (n: number, from: number, overMs: number, make: (i: number, now: number) => TrafficEvent): TrafficEvent[] =>
  Array.from({ length: n }, (_, i) => make(i, from + Math.floor((i * overMs) / n)));
const by = (alerts: readonly Alert[], detector: string) => alerts.filter((a) => a.detector === detector);

describe('anomaly detectors on normal traffic', () => {
  it('stay quiet on 20 minutes of a busy, healthy gateway (48 000 records, 300 users, normal 401s, 403s and 429s)', () => {
    const engine = new AnomalyEngine(everything());
    const admin: TrafficEvent[] = [
      { now: START + 5 * MIN, record: { kind: 'admin', time: '', method: 'GET', path: '/keys', status: 200, clientIp: '10.9.9.9', identity: { subject: 'admin', authMethod: 'adminToken' } } },
      { now: START + 6 * MIN, record: { kind: 'admin', time: '', method: 'POST', path: '/keys', status: 201, clientIp: '10.9.9.10', identity: { subject: 'admin', authMethod: 'adminToken' } } },
    ];
    const alerts = replay(engine, merged(normalTraffic(NORMAL), admin));
    // The operator's network is new once, at its first admin operation; nothing else alerts.
    assert.deepEqual(alerts.map((a) => `${a.detector} ${a.subject}`), ['adminFirstUse network:10.9.9.0/24']);
  });
});

describe('anomaly detectors fire on synthetic attacks', () => {
  it('authFailureSpike: a credential-stuffing burst from one network alerts for the network and, past warm-up, globally', () => {
    const engine = new AnomalyEngine(everything());
    // 400 failures from one /24 (rotating hosts) in minute 12, after the baseline has learned.
    const attack = spread(400, START + 12 * MIN + 1000, 50_000, (i, now) => at(now, { clientIp: `203.0.113.${i % 250}`, status: 401, decision: 'deny', reason: 'invalid_credential', detail: 'partners: api_key_unknown: key zzzzzzzzzzzzzzzz' }));
    const alerts = by(replay(engine, merged(normalTraffic(NORMAL), attack)), 'authFailureSpike');
    assert.deepEqual(alerts.map((a) => a.subject).sort(), ['global', 'network:203.0.113.0/24']);
    const net = alerts.find((a) => a.subject === 'network:203.0.113.0/24');
    assert.equal(net?.evidence['count'], 20, 'fires at networkMinCount, once per window');
    assert.equal(net?.severity, 'medium');
    const global = alerts.find((a) => a.subject === 'global');
    assert.ok((global?.evidence['baseline'] as number) > 20, 'the global threshold came from the learned baseline');
    assert.ok((global?.evidence['threshold'] as number) >= 100);
  });

  it('authFailureSpike: failures against one API key (its id in identity) alert for the credential', () => {
    const engine = new AnomalyEngine(everything());
    const attack = spread(12, START + 3 * MIN, 30_000, (i, now) => at(now, { clientIp: `192.0.2.${i}`, status: 403, decision: 'deny', reason: 'ip_not_allowed', identity: { subject: 'partner-x', authMethod: 'apiKey', keyId: 'victimkey0000001' } }));
    const alerts = by(replay(engine, merged(normalTraffic({ ...NORMAL, seconds: 300 }), attack)), 'authFailureSpike');
    assert.deepEqual(alerts.map((a) => a.subject), ['key:victimkey0000001']);
    assert.equal(alerts[0]?.evidence['count'], 10);
  });

  it('authFailureSpike: learns a steady source of failures and stops alerting on it; warm-up keeps the global count quiet', () => {
    const engine = new AnomalyEngine(anomaliesConfig('{ authFailureSpike: { globalMinCount: 20, warmupWindows: 3 } }'));
    const alerts: Alert[] = [];
    for (let w = 0; w < 8; w++) {
      for (let i = 0; i < 30; i++) alerts.push(...engine.observe(request({ clientIp: '198.18.0.5', status: 401 }), START + w * MIN + i * 1000));
    }
    const windows = (subject: string) => alerts.filter((a) => a.subject === subject).map((a) => Math.floor((Date.parse(a.time) - START) / MIN));
    // No baseline: alerts in windows 0 and 1; then 3 × baseline passes 30 and the steady rate is normal.
    assert.deepEqual(windows('network:198.18.0.0/24'), [0, 1]);
    // Globally: quiet while warming up (windows 0-2), then the baseline already knows the rate.
    assert.deepEqual(windows('global'), []);
  });

  it('tenantFanOut: one identity touching a fourth tenant in a window alerts once, and again in the next window', () => {
    const engine = new AnomalyEngine(everything());
    const mallory = (tenant: string, now: number) => at(now, { clientIp: '10.1.1.1', identity: { subject: 'mallory', authMethod: 'jwt' }, tenant });
    const attack = [
      ...['t1', 't2', 't3', 't4', 't5', 't1'].map((t, i) => mallory(t, START + 2 * MIN + i * 1000)),
      ...['t6', 't7', 't8', 't9'].map((t, i) => mallory(t, START + 12 * MIN + i * 1000)),
    ];
    const alerts = by(replay(engine, merged(normalTraffic({ ...NORMAL, seconds: 900 }), attack)), 'tenantFanOut');
    assert.deepEqual(alerts.map((a) => [a.subject, a.evidence['tenants']]), [['jwt:mallory', ['t1', 't2', 't3', 't4']], ['jwt:mallory', ['t6', 't7', 't8', 't9']]]);
    assert.equal(alerts[0]?.severity, 'high');
  });

  it('credentialNetworks: one key from a sixth /24 in a window alerts; more hosts in one /24 do not', () => {
    const engine = new AnomalyEngine(everything());
    const key = { subject: 'partner', authMethod: 'apiKey', keyId: 'leakedkey0000001' };
    const sameNet = spread(50, START + MIN, 60_000, (i, now) => at(now, { clientIp: `10.200.0.${i}`, identity: key }));
    const many = spread(6, START + 5 * MIN, 60_000, (i, now) => at(now, { clientIp: `100.${64 + i}.7.7`, identity: key }));
    const v6 = spread(3, START + 7 * MIN, 10_000, (i, now) => at(now, { clientIp: `2001:db8:${i}::1`, identity: { ...key, keyId: 'otherkey00000001' } }));
    const alerts = by(replay(engine, merged(normalTraffic({ ...NORMAL, seconds: 600 }), [...sameNet, ...many, ...v6].sort((a, b) => a.now - b.now))), 'credentialNetworks');
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]?.subject, 'key:leakedkey0000001');
    assert.deepEqual(alerts[0]?.evidence['networks'], ['10.200.0.0/24', '100.64.7.0/24', '100.65.7.0/24', '100.66.7.0/24', '100.67.7.0/24', '100.68.7.0/24']);
  });

  it('limitStorm: a network hammering a rate limit alerts, and so does a storm spread over many networks', () => {
    const engine = new AnomalyEngine(everything());
    const one = spread(150, START + 4 * MIN, 50_000, (i, now) => at(now, { clientIp: '172.16.5.5', status: 429, decision: 'deny', reason: 'rate_limited', limit: 'perCaller' }));
    const many = spread(600, START + 8 * MIN, 50_000, (i, now) => at(now, { clientIp: `172.${17 + (i % 12)}.${i % 200}.1`, status: 429, decision: 'deny', reason: i % 2 === 0 ? 'too_many_failures' : 'quota_exceeded' }));
    const alerts = by(replay(engine, merged(normalTraffic({ ...NORMAL, seconds: 600 }), [...one, ...many])), 'limitStorm');
    assert.deepEqual(alerts.map((a) => [a.subject, a.evidence['count']]), [['network:172.16.5.0/24', 100], ['global', 500]]);
  });

  it('deadCredential: a revoked key, a superseded key and an expired token still tried alert; a few tries do not', () => {
    const engine = new AnomalyEngine(everything());
    const revoked = spread(6, START + MIN, 60_000, (i, now) => at(now, { clientIp: `10.3.${i}.1`, status: 401, decision: 'deny', reason: 'invalid_credential', detail: 'partners: api_key_revoked: key revokedkey000001', identity: { subject: 'old-partner', authMethod: 'apiKey', keyId: 'revokedkey000001' } }));
    // An older record shape without the identity: the key id comes from the detail.
    const superseded = spread(7, START + 2 * MIN, 60_000, (i, now) => at(now, { clientIp: '10.4.0.1', status: 401, decision: 'deny', reason: 'invalid_credential', detail: 'partners: api_key_superseded: key rotatedkey000001, replaced by newkey0000000001' }));
    const expired = spread(6, START + 3 * MIN, 60_000, (i, now) => at(now, { clientIp: '10.5.0.9', status: 401, decision: 'deny', reason: 'invalid_credential', detail: 'users: expired: exp 1767225600, now 1767229200, leeway 30s' }));
    const few = spread(5, START + 4 * MIN, 60_000, (i, now) => at(now, { clientIp: '10.6.0.1', status: 401, decision: 'deny', reason: 'invalid_credential', detail: 'partners: api_key_expired: key expiredkey000001' }));
    const alerts = by(replay(engine, merged(normalTraffic({ ...NORMAL, seconds: 600 }), [...revoked, ...superseded, ...expired, ...few].sort((a, b) => a.now - b.now))), 'deadCredential');
    assert.deepEqual(alerts.map((a) => [a.subject, a.evidence['reason'], a.evidence['count']]).sort(), [
      ['key:revokedkey000001', 'api_key_revoked', 6],
      ['key:rotatedkey000001', 'api_key_superseded', 6],
      ['network:10.5.0.0/24', 'token_expired', 6],
    ]);
    assert.equal(alerts[0]?.severity, 'low');
  });

  it('adminFirstUse: the first admin operation from an unknown network alerts once; off by default', () => {
    const admin = (ip: string, path: string): ObservedRecord => ({ kind: 'admin', time: '', method: 'DELETE', path, status: 204, clientIp: ip, identity: { subject: 'admin', authMethod: 'adminToken' } });
    const off = new AnomalyEngine(anomaliesConfig('{}'));
    assert.deepEqual(off.observe(admin('10.0.0.1', '/keys/a'), START), []);
    const engine = new AnomalyEngine(everything());
    const alerts = [admin('10.0.0.1', '/keys/a'), admin('10.0.0.2', '/keys/b'), admin('203.0.113.9', '/keys/c'), admin('203.0.113.9', '/keys/d')].flatMap((r, i) => engine.observe(r, START + i));
    assert.deepEqual(alerts.map((a) => [a.subject, a.evidence['method'], a.evidence['path']]), [['network:10.0.0.0/24', 'DELETE', '/keys/a'], ['network:203.0.113.0/24', 'DELETE', '/keys/c']]);
  });

  it('severities and enabled flags come from the config', () => {
    const engine = new AnomalyEngine(anomaliesConfig('{ limitStorm: { severity: critical, networkThreshold: 2 }, deadCredential: { enabled: false }, tenantFanOut: { enabled: false } }'));
    assert.ok(!engine.running.includes('deadCredential') && !engine.running.includes('tenantFanOut'));
    const alerts = [1, 2].flatMap((i) => engine.observe(request({ clientIp: '10.0.0.1', status: 429, reason: 'rate_limited' }), START + i));
    assert.equal(alerts[0]?.severity, 'critical');
    assert.deepEqual(new AnomalyEngine(anomaliesConfig('{ enabled: false }')).running, []);
  });

  it('look only at request and admin records: alerts, checkpoints, file, start and gap records never feed a detector', () => {
    const engine = new AnomalyEngine(anomaliesConfig('{ authFailureSpike: { networkMinCount: 1 }, limitStorm: { networkThreshold: 1 } }'));
    for (const kind of ['alert', 'checkpoint', 'file', 'start', 'gap', 'records_dropped', '']) {
      assert.deepEqual(engine.observe({ kind, time: '', status: 401, reason: 'rate_limited', clientIp: '10.0.0.1' }, START), [], kind);
    }
    assert.equal(engine.observe(request({ clientIp: '10.0.0.1', status: 401 }), START).length, 1);
  });

  it('turn hostile records into nothing rather than a crash: wrong types, huge strings, control characters', () => {
    const engine = new AnomalyEngine(anomaliesConfig('{ authFailureSpike: { networkMinCount: 1, credentialMinCount: 1 }, tenantFanOut: { maxTenants: 1 }, deadCredential: { maxAttempts: 0 }, adminFirstUse: { enabled: true } }'));
    const hostile: unknown[] = [
      null, 42, 'request', {}, { kind: 'request' },
      { kind: 'request', status: '401', clientIp: 12345, identity: 'root', tenant: ['a'] },
      { kind: 'request', status: 401, clientIp: 'x'.repeat(100_000), identity: { subject: 7, authMethod: null } },
      { kind: 'request', status: 401, clientIp: '10.0.0.1', detail: `api_key_revoked: key ${'a'.repeat(100_000)}` },
      { kind: 'admin', clientIp: '::ffff:10.0.0.1', method: { toString: 1 }, path: null },
    ];
    for (const r of hostile) assert.doesNotThrow(() => engine.observe(r as ObservedRecord, START));
    const evil = engine.observe(request({ clientIp: '10.7.0.1', status: 401, identity: { subject: `eve\u001b[2J\n{"kind":"request"}${'x'.repeat(5000)}`, authMethod: 'jwt' }, tenant: 'a' }), START);
    assert.ok(evil.length > 0);
    for (const a of evil) {
      const text = JSON.stringify(alertRecord(a));
      const decoded = (JSON.parse(text) as { subject: string }).subject;
      assert.ok(Array.from({ length: decoded.length }, (_, i) => decoded.charCodeAt(i)).every((c) => c >= 0x20), 'no control character survives into an alert, even decoded');
      assert.ok(a.subject.length <= 256);
      assert.ok(text.length < 4096);
    }
  });

  it('alertRecord gives the alert record members; observedFromAuditRecord takes the in-process record as it is', () => {
    const engine = new AnomalyEngine(anomaliesConfig('{ limitStorm: { networkThreshold: 1 } }'));
    const record: AuditRecord = {
      time: '2026-01-01T00:00:00.000Z', kind: 'request', requestId: 'r1', method: 'GET', path: '/x', route: 'x', stage: 'rateLimit', status: 429, latencyMs: 1,
      decision: 'deny', reason: 'rate_limited', detail: 'perCaller', identity: { subject: 'a', authMethod: 'apiKey', keyId: null }, tenant: null,
      clientIp: '10.0.0.1', userAgent: null, upstream: null, upstreamStatus: null, bytesIn: 0, bytesOut: 0, configVersion: 'v', limit: 'perCaller',
    };
    const [alert] = engine.observe(observedFromAuditRecord(record), START);
    assert.ok(alert !== undefined);
    assert.deepEqual(Object.keys(alertRecord(alert)).sort(), ['detector', 'evidence', 'kind', 'severity', 'subject', 'summary', 'time']);
    assert.deepEqual(alertRecord(alert), { kind: 'alert', detector: 'limitStorm', severity: 'medium', subject: 'network:10.0.0.0/24', summary: alert.summary, evidence: alert.evidence, time: '2026-01-01T00:00:00.000Z' });
  });
});
