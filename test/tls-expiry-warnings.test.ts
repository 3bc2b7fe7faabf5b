// Certificates close to expiry are warned about: a log line and one audit alert per certificate per
// day, at start, after reloads and daily (on the injected clock), remembering only certificates in use.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger } from '../src/observability/logger.js';
import { ExpiryWarnings } from '../src/tls/expiry-warnings.js';
import type { CertificateInUse } from '../src/tls/certificate-expiry.js';
import { issueCertificate } from '../src/tls/issue-certificates.js';
import { ManualClock } from './harness/manual-clock.js';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { testPki, writeCertificate } from './harness/tls.js';

const DAY = 86_400_000;

function subject(clock: ManualClock): { warnings: ExpiryWarnings; alerts: Record<string, unknown>[]; lines: string[] } {
  const alerts: Record<string, unknown>[] = [];
  const lines: string[] = [];
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => lines.push(...c.toString('utf8').split('\n').filter((l) => l !== '')));
  const warnings = new ExpiryWarnings({ clock, logger: createLogger('warn', sink), append: (r) => alerts.push(r) });
  return { warnings, alerts, lines };
}

const cert = (name: string, notAfter: number, fingerprint = name): CertificateInUse => ({ use: 'server', name, subject: `CN=${name}`, notAfter: new Date(notAfter), fingerprint256: fingerprint });

describe('certificate expiry warnings', () => {
  it('warns once a day about each certificate within the window or expired, and not about the others', async () => {
    const clock = new ManualClock();
    const { warnings, alerts, lines } = subject(clock);
    const now = clock.now();
    const list = [cert('soon', now + 10 * DAY), cert('later', now + 30 * DAY), cert('gone', now - DAY), cert('edge', now + 14 * DAY)];
    warnings.check(list, 14);
    assert.deepEqual(alerts.map((a) => a.subject), ['server:soon', 'server:gone', 'server:edge']);
    const soon = alerts[0] ?? {};
    assert.equal(soon.kind, 'alert');
    assert.equal(soon.detector, 'certificateExpiry');
    assert.equal(soon.severity, 'medium');
    assert.match(String(soon.summary), /expires on .* in 10 days/);
    assert.equal((soon.evidence as Record<string, unknown>).daysLeft, 10);
    assert.equal(alerts[1]?.severity, 'critical');
    assert.equal(lines.length, 3);
    assert.match(lines[1] ?? '', /"level":"?(warn|40)"?.*certificate expired/);

    warnings.check(list, 14);
    assert.equal(alerts.length, 3, 'a reload the same day repeats nothing');
    clock.advance(DAY);
    await Promise.resolve();
    assert.deepEqual(alerts.slice(3).map((a) => a.subject), ['server:soon', 'server:gone', 'server:edge'], 'the daily check');
    assert.equal(alerts[3]?.time, new Date(now + DAY).toISOString());
    warnings.stop();
    clock.advance(3 * DAY);
    assert.equal(alerts.length, 6, 'stopped: no more checks');
  });

  it('warns about a renewed certificate (a new fingerprint) the same day, and forgets certificates no longer in use', () => {
    const clock = new ManualClock();
    const { warnings, alerts } = subject(clock);
    const now = clock.now();
    warnings.check([cert('a', now + DAY, 'f1')], 14);
    warnings.check([cert('a', now + 2 * DAY, 'f2')], 14);
    assert.equal(alerts.length, 2);
    warnings.check([], 14);
    warnings.check([cert('a', now + 2 * DAY, 'f2')], 14);
    assert.equal(alerts.length, 3, 'forgotten once out of use, so warned again when back');
    warnings.stop();
  });

  it('with 0 days warns about expired certificates only', () => {
    const clock = new ManualClock();
    const { warnings, alerts } = subject(clock);
    warnings.check([cert('tomorrow', clock.now() + DAY), cert('gone', clock.now() - 1)], 0);
    assert.deepEqual(alerts.map((a) => a.subject), ['server:gone']);
    warnings.stop();
  });
});

describe('certificate expiry warnings in a running gateway', () => {
  let upstream: EchoUpstream;
  let gw: TestGateway;
  before(async () => {
    upstream = await startEchoUpstream();
    const pki = await testPki();
    const short = await issueCertificate({ commonName: 'localhost', dns: ['localhost'], notAfter: new Date(Date.now() + 5 * DAY), extendedKeyUsage: ['serverAuth'] }, pki.ca);
    gw = await startGateway({
      listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key' } },
      upstreams: { echo: { targets: [upstream.url] } },
      routes: [{ name: 'open', match: { path: '/open/**' }, upstream: 'echo', public: true }],
    }, { beforeStart: async (dir) => { await mkdir(join(dir, 'tls')); await writeCertificate(join(dir, 'tls'), 'server', short); } });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('writes one alert record and one warning at start for a certificate that expires in 5 days', async () => {
    await gw.auditBarrier();
    const trail = await readFile(join(gw.gateway.config.dataDir, gw.gateway.config.audit.file), 'utf8');
    const alerts = trail.split('\n').filter((l) => l.includes('"detector":"certificateExpiry"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(alerts.length, 1, trail);
    assert.equal(alerts[0]?.kind, 'alert');
    assert.equal(alerts[0]?.subject, 'server:listen.https');
    assert.equal(gw.logs.filter((l) => l.includes('certificate expires soon')).length, 1);
  });
});
