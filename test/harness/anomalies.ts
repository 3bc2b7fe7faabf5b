import { compileConfig } from '../../src/config/compile.js';
import type { AnomalyOptions } from '../../src/config/compile-anomalies.js';
import { loadConfigText } from '../../src/config/load.js';
import type { ObservedRecord } from '../../src/audit/anomaly/types.js';

/** A minimal valid gateway.yaml, for configs that only add an `audit` section. */
export const BASE_CONFIG = `upstreams:
  orders:
    targets: [http://127.0.0.1:3001]
routes:
  - name: health
    match: { methods: [GET], path: /health }
    upstream: orders
    public: true
`;

/** `audit.anomalies` compiled from YAML (a flow mapping or indented block), through the real loader. */
export function anomaliesConfig(section: string, env: NodeJS.ProcessEnv = {}): AnomalyOptions {
  const body = section.trim().startsWith('{') ? ` ${section.trim()}` : `\n${section.split('\n').filter((l) => l.trim() !== '').map((l) => `    ${l.trim()}`).join('\n')}`;
  const compiled = compileConfig(loadConfigText(`${BASE_CONFIG}audit:\n  anomalies:${body}\n`, 'gateway.yaml', env));
  const options = compiled.audit.anomalies;
  if (options === null) throw new Error('audit.anomalies did not compile');
  return options;
}

/** A request record with the members detectors read; the rest as a plain allowed GET. */
export function request(fields: Partial<Record<keyof ObservedRecord, unknown>> & { clientIp: string }): ObservedRecord {
  return { kind: 'request', time: '2026-01-01T00:00:00.000Z', status: 200, decision: 'allow', method: 'GET', path: '/api/orders', route: 'orders', ...fields } as ObservedRecord;
}

/** A small deterministic generator (mulberry32): the same seed, the same traffic. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface TrafficEvent {
  readonly record: ObservedRecord;
  readonly now: number;
}

/**
 * Normal traffic, deterministic: `users` users, each with an API key or a JWT, one home network
 * (and sometimes a second: a phone), one tenant each (a few of them two); `perSecond` requests a
 * second for `seconds` seconds; about 1 in 60 answered 401 (a typo'd key, an expired session
 * renewed at once), 1 in 400 a 403, 1 in 300 a 429. The shape a busy, healthy gateway sees.
 */
export function* normalTraffic(options: { seed: number; start: number; seconds: number; perSecond: number; users: number }): Generator<TrafficEvent> {
  const rnd = random(options.seed);
  const tenants = ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'stark'];
  const users = Array.from({ length: options.users }, (_, i) => ({
    subject: `user-${i}`,
    keyId: i % 2 === 0 ? `k${String(i).padStart(15, '0')}` : null,
    tenant: tenants[i % tenants.length] ?? 'acme',
    secondTenant: i % 10 === 0 ? tenants[(i + 1) % tenants.length] ?? 'acme' : null,
    home: `10.${(i >> 8) & 255}.${i & 255}.${1 + (i % 200)}`,
    phone: i % 5 === 0 ? `198.51.${i & 255}.7` : null,
  }));
  const gap = 1000 / options.perSecond;
  const total = options.seconds * options.perSecond;
  for (let n = 0; n < total; n++) {
    const now = options.start + Math.floor(n * gap);
    const u = users[Math.floor(rnd() * users.length)] ?? users[0];
    if (u === undefined) return;
    const clientIp = u.phone !== null && rnd() < 0.3 ? u.phone : u.home;
    const tenant = u.secondTenant !== null && rnd() < 0.5 ? u.secondTenant : u.tenant;
    const identity = { subject: u.subject, authMethod: u.keyId === null ? 'jwt' : 'apiKey', ...(u.keyId === null ? {} : { keyId: u.keyId }) };
    const roll = rnd();
    const time = new Date(now).toISOString();
    let record: ObservedRecord;
    if (roll < 1 / 60) record = request({ time, clientIp, status: 401, decision: 'deny', reason: 'invalid_credential', detail: u.keyId === null ? 'users: signature_invalid' : `partners: api_key_secret_mismatch: key ${u.keyId}` });
    else if (roll < 1 / 60 + 1 / 400) record = request({ time, clientIp, status: 403, decision: 'deny', reason: 'insufficient_scope', identity, tenant });
    else if (roll < 1 / 60 + 1 / 400 + 1 / 300) record = request({ time, clientIp, status: 429, decision: 'deny', reason: 'rate_limited', identity, tenant, limit: 'perCaller' });
    else record = request({ time, clientIp, identity, tenant });
    yield { record, now };
  }
}
