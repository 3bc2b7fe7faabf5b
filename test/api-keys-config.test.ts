// The apiKeys options added for look-up bounds and staleness: defaults, and errors that name the
// file, line and option.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { configProblems } from './harness/config.js';

const BASE = `upstreams:
  orders: { targets: [http://127.0.0.1:3001] }
authenticators:
  machines: { type: apiKey }
routes:
  - name: orders
    match: { path: "/orders/**" }
    upstream: orders
    authenticate: [machines]
`;

describe('apiKeys look-up and staleness options', () => {
  it('defaults to 16 look-ups in flight, 10000 unknown ids and a 5 s staleness bound', async () => {
    const config = compileConfig(loadConfigText(BASE, 'gateway.yaml', {}));
    const s = config.apiKeys?.settings;
    assert.deepEqual([s?.maxConcurrentLookups, s?.negativeCacheMaxEntries, s?.maxStalenessMs], [16, 10_000, 5000]);
    await config.apiKeys?.stop();
  });

  it('stretches the default staleness bound to twice a long poll interval', async () => {
    const config = compileConfig(loadConfigText(BASE + 'apiKeys:\n  pollIntervalMs: 3000\n', 'gateway.yaml', {}));
    assert.equal(config.apiKeys?.settings.maxStalenessMs, 6000);
    await config.apiKeys?.stop();
  });

  const CASES: [string, string, RegExp][] = [
    ['a staleness bound shorter than two polls', BASE + 'apiKeys:\n  pollIntervalMs: 500\n  maxStalenessMs: 900\n',
      /^gateway\.yaml:12:19: apiKeys\.maxStalenessMs: maxStalenessMs \(900\) must be at least twice pollIntervalMs \(500\)/],
    ['no look-ups at all', BASE + 'apiKeys:\n  maxConcurrentLookups: 0\n', /apiKeys\.maxConcurrentLookups: must be a whole number from 1 to 10000$/],
    ['an empty unknown-id cache', BASE + 'apiKeys:\n  negativeCacheMaxEntries: 0\n', /apiKeys\.negativeCacheMaxEntries: must be a whole number from 1 to 10000000$/],
  ];
  for (const [label, text, pattern] of CASES) {
    it(`refuses ${label}`, () => {
      const problems = configProblems(text);
      assert.ok(problems.some((p) => pattern.test(p)), problems.join('\n'));
    });
  }
});
