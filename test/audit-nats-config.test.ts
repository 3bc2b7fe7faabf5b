// audit.nats and audit.http: defaults, and hostile values refused with the file, line and option —
// without quoting a URL that may carry a password. The credentials in a NATS URL are kept apart
// from the server address the logs and /readyz show.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createConfiguredSinks, spoolPathFor } from '../src/audit/sinks/configured.js';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { systemClock } from '../src/lib/clock.js';
import { createLogger } from '../src/observability/logger.js';
import { PassThrough } from 'node:stream';
import { configProblems } from './harness/config.js';

const BASE = `upstreams:
  orders: { targets: [http://127.0.0.1:3001] }
routes:
  - name: orders
    match: { path: "/orders/**" }
    upstream: orders
    public: true
`;

const compiled = (audit: string, env: NodeJS.ProcessEnv = {}) => compileConfig(loadConfigText(`${BASE}audit:\n${audit}`, 'gateway.yaml', env)).audit;

describe('audit.nats and audit.http options', () => {
  it('defaults', () => {
    const a = compiled('  nats: { url: "nats://127.0.0.1:4222" }\n  http: { url: "https://siem.example/ingest" }\n');
    assert.deepEqual(a.nats, {
      servers: 'nats://127.0.0.1:4222', stream: 'PORTCULLIS_AUDIT', subject: 'portcullis.audit', createStream: true, duplicateWindowMs: 120_000,
      spoolMaxBytes: 67_108_864, ackTimeoutMs: 5000, maxInFlight: 256, onFailure: 'failClosed',
    });
    assert.deepEqual(a.http, {
      url: 'https://siem.example/ingest', shownUrl: 'https://siem.example/ingest', headers: {}, batchRecords: 500, batchIntervalMs: 1000, timeoutMs: 10_000,
      maxQueueBytes: 16_777_216, retryInitialMs: 500, retryMaxMs: 60_000, onFailure: 'failClosed',
    });
    assert.equal(compiled('  file: audit/a.log\n').nats, null);
  });

  it('keeps the credentials of a NATS URL apart from the server it shows', () => {
    assert.deepEqual(Object.entries(compiled('  nats: { url: "nats://audit:${NATS_PASS}@nats.internal:4222" }\n', { NATS_PASS: 'p%40ss' }).nats ?? {}).filter(([k]) => ['servers', 'user', 'pass'].includes(k)),
      [['servers', 'nats://nats.internal:4222'], ['user', 'audit'], ['pass', 'p@ss']]);
    const t = compiled('  nats: { url: "tls://s3cr3t-token@nats.internal" }\n').nats;
    assert.equal(t?.servers, 'tls://nats.internal');
    assert.equal(t?.token, 's3cr3t-token');
  });

  it('takes every option', () => {
    const a = compiled(`  nats:
    url: nats://127.0.0.1:4222
    stream: AUDIT-EU_1
    subject: acme.audit.eu
    createStream: false
    duplicateWindow: 10m
    spool: { maxBytes: 1048576 }
    ackTimeoutMs: 2000
    maxInFlight: 32
    onFailure: failOpen
  http:
    url: http://collector:8088/services/collector
    headers: { Authorization: "Splunk \${HEC}" }
    batchRecords: 100
    batchIntervalMs: 250
    timeoutMs: 3000
    maxQueueBytes: 1048576
    retry: { initialMs: 100, maxMs: 5000 }
    onFailure: failOpen
`, { HEC: 'abc' });
    assert.equal(a.nats?.duplicateWindowMs, 600_000);
    assert.equal(a.nats?.createStream, false);
    assert.equal(a.nats?.onFailure, 'failOpen');
    assert.deepEqual(a.http?.headers, { Authorization: 'Splunk abc' });
    assert.equal(a.http?.retryMaxMs, 5000);
  });

  const CASES: [string, string, RegExp][] = [
    ['a URL that does not parse', '  nats: { url: "nats://user:pa ss@[::1" }\n', /audit\.nats\.url: must be a URL like nats:\/\/host:4222/],
    ['an http:// NATS URL', '  nats: { url: "http://127.0.0.1:4222" }\n', /audit\.nats\.url: must be a nats:\/\/ or tls:\/\/ URL, not http:\/\//],
    ['a NATS URL with a path', '  nats: { url: "nats://127.0.0.1:4222/x?token=1" }\n', /audit\.nats\.url: must be only nats:\/\//],
    ['a wildcard subject', '  nats: { url: "nats://h", subject: "audit.*" }\n', /audit\.nats\.subject: must be dot-separated tokens/],
    ['a tail wildcard subject', '  nats: { url: "nats://h", subject: "audit.>" }\n', /audit\.nats\.subject: must be dot-separated tokens/],
    ['a subject with a space', '  nats: { url: "nats://h", subject: "audit trail" }\n', /audit\.nats\.subject: must be dot-separated tokens/],
    ['a subject with an empty token', '  nats: { url: "nats://h", subject: "audit..x" }\n', /audit\.nats\.subject: must be dot-separated tokens/],
    ['a stream name with a dot', '  nats: { url: "nats://h", stream: "AUDIT.X" }\n', /audit\.nats\.stream: must be a stream name/],
    ['a stream name with a path separator', '  nats: { url: "nats://h", stream: "../AUDIT" }\n', /audit\.nats\.stream: must be a stream name/],
    ['an empty stream name', '  nats: { url: "nats://h", stream: "" }\n', /audit\.nats\.stream: must be a stream name/],
    ['a bad duplicate window', '  nats: { url: "nats://h", duplicateWindow: "2 minutes" }\n', /audit\.nats\.duplicateWindow: must be a duration/],
    ['no in-flight publishes', '  nats: { url: "nats://h", maxInFlight: 0 }\n', /audit\.nats\.maxInFlight/],
    ['an unknown failure mode', '  nats: { url: "nats://h", onFailure: ignore }\n', /audit\.nats\.onFailure/],
    ['an unknown option', '  nats: { url: "nats://h", password: x }\n', /audit\.nats/],
    ['a missing url', '  nats: { stream: X }\n', /audit\.nats/],
    ['an ftp collector', '  http: { url: "ftp://siem" }\n', /audit\.http\.url: must be an http:\/\/ or https:\/\/ URL/],
    ['a header the sink sets', '  http: { url: "https://siem", headers: { Content-Type: text/plain } }\n', /audit\.http\.headers\.Content-Type: Content-Type is set by the sink itself/],
    ['a forged batch id header', '  http: { url: "https://siem", headers: { X-Portcullis-Batch: x } }\n', /X-Portcullis-Batch is set by the sink itself/],
    ['a header value with a line break', '  http: { url: "https://siem", headers: { X-Token: "a\\r\\nX-Evil: 1" } }\n', /audit\.http\.headers\.X-Token: must not contain control characters/],
    ['a header name with a colon', '  http: { url: "https://siem", headers: { "X:Y": a } }\n', /audit\.http\.headers/],
    ['a back-off cap below its start', '  http: { url: "https://siem", retry: { initialMs: 5000, maxMs: 1000 } }\n', /audit\.http\.retry\.maxMs: must be at least retry\.initialMs \(5000\)/],
    ['an empty batch', '  http: { url: "https://siem", batchRecords: 0 }\n', /audit\.http\.batchRecords/],
    ['a tiny queue', '  http: { url: "https://siem", maxQueueBytes: 10 }\n', /audit\.http\.maxQueueBytes/],
  ];
  for (const [label, audit, pattern] of CASES) {
    it(`refuses ${label}`, () => {
      const problems = configProblems(`${BASE}audit:\n${audit}`);
      assert.ok(problems.some((p) => pattern.test(p)), problems.join('\n'));
      assert.ok(problems.every((p) => /^gateway\.yaml:\d+:\d+: /.test(p)), problems.join('\n'));
    });
  }

  it('never quotes the URL, whose userinfo may be a password, in a problem', () => {
    const problems = configProblems(`${BASE}audit:\n  nats: { url: "https://user:hunter2@h/x" }\n  http: { url: "gopher://user:hunter3@h/" }\n`);
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.ok(problems.every((p) => !/hunter/.test(p)), problems.join('\n'));
  });

  it('builds one sink per configured destination, the spool under dataDir by chain', () => {
    const a = compiled('  nats: { url: "nats://127.0.0.1:4222" }\n  http: { url: "https://siem.example/ingest" }\n');
    const sinks = createConfiguredSinks(a, { dataDir: '/var/lib/portcullis', chain: 'gw-1/main', logger: createLogger('silent', new PassThrough()), clock: systemClock });
    assert.deepEqual(sinks.map((s) => [s.name, s.onFailure, s.state]), [['nats', 'failClosed', 'ok'], ['http', 'failClosed', 'ok']]);
    assert.equal(spoolPathFor('/d', 'gw-1/main'), '/d/audit/spool/gw-1/main.log');
    assert.equal(spoolPathFor('/d', '../../etc/w1'), '/d/audit/spool/_/_/etc/w1.log');
    assert.equal(spoolPathFor('/d', 'a b*/..'), '/d/audit/spool/a_b_/_.log');
  });
});
