// The options against slow clients and a busy upstream: defaults applied once at compile time,
// out-of-range values refused with file, line and option.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compileConfig, DEFAULTS } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { configProblems } from './harness/config.js';

const base = (upstream: string, limits = '', routeLimits = ''): string => `upstreams:
  svc:
    targets: [http://127.0.0.1:3001]
${upstream}${limits === '' ? '' : `limits:\n${limits}`}
routes:
  - name: r
    match: { path: /r/** }
    upstream: svc
    public: true
${routeLimits}`;

void describe('upstream queue and slow-client options', () => {
  void test('defaults are applied once, and routes inherit the gateway-wide timeouts', () => {
    const config = compileConfig(loadConfigText(base(''), 'gateway.yaml', {}));
    const spec = config.upstreams.get('svc');
    assert.equal(spec?.queueTimeoutMs, DEFAULTS.upstreamQueueTimeoutMs);
    assert.equal(spec?.maxQueued, DEFAULTS.upstreamMaxQueued);
    const route = config.routes[0];
    assert.equal(route?.bodyIdleTimeoutMs, DEFAULTS.bodyIdleTimeoutMs);
    assert.equal(route?.writeIdleTimeoutMs, DEFAULTS.writeIdleTimeoutMs);
    assert.equal(route?.minBodyBytesPerSecond, 0);
    assert.equal(route?.bufferBodyBytes, DEFAULTS.bufferBodyBytes);
  });

  void test('a route overrides the timeouts, and never buffers more than its maxBodyBytes', () => {
    const text = base('', '  bodyIdleTimeoutMs: 5000\n  bufferBodyBytes: 65536\n',
      '    limits: { bodyIdleTimeoutMs: 60000, writeIdleTimeoutMs: 120000, minBodyBytesPerSecond: 500, maxBodyBytes: 1000 }\n');
    const route = compileConfig(loadConfigText(text, 'gateway.yaml', {})).routes[0];
    assert.equal(route?.bodyIdleTimeoutMs, 60000);
    assert.equal(route?.writeIdleTimeoutMs, 120000);
    assert.equal(route?.minBodyBytesPerSecond, 500);
    assert.equal(route?.bufferBodyBytes, 1000);
  });

  void test('out-of-range values are refused with file, line and option', () => {
    assert.match(configProblems(base('    queueTimeoutMs: -1\n')).join('\n'), /^gateway\.yaml:4:\d+: upstreams\.svc\.queueTimeoutMs: /m);
    assert.match(configProblems(base('    maxQueued: 1.5\n')).join('\n'), /^gateway\.yaml:4:\d+: upstreams\.svc\.maxQueued: /m);
    assert.match(configProblems(base('', '  writeIdleTimeoutMs: 0\n')).join('\n'), /^gateway\.yaml:5:\d+: limits\.writeIdleTimeoutMs: /m);
  });
});
