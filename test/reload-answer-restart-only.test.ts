// The restart-only table: which options wait for a restart, the config a running gateway puts in
// effect, and the version it reports for it. docs/operations.md lists the same options.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { compileConfig, type CompiledConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { inEffect, RESTART_ONLY_OPTIONS, restartOnlyValues, restartRequired } from '../src/lifecycle/restart-only.js';

const BASE = `
listen: { http: { host: 127.0.0.1, port: 8080 } }
admin: { port: 9901 }
upstreams: { app: { targets: ["http://127.0.0.1:3000"] } }
routes:
  - { name: a, match: { path: /a/** }, upstream: app, public: true }
`;

function compile(text: string): CompiledConfig {
  return compileConfig(loadConfigText(text, '/etc/portcullis/gateway.yaml', {}));
}

describe('restart-only options', () => {
  it('the same settings: nothing waits, and the file\'s config and version are the ones in effect', () => {
    const running = compile(BASE);
    const next = compile(BASE);
    const effect = inEffect(next, restartOnlyValues(running));
    assert.deepEqual(effect.restartRequired, []);
    assert.equal(effect.config, next);
    assert.equal(effect.config.version, next.version);
    assert.equal(inEffect(next, null).config, next, 'at start the file is wholly in effect');
  });

  it('lists each changed option by its own path, in gateway.yaml spelling, sorted', () => {
    const running = restartOnlyValues(compile(BASE));
    const cases: [string, string[]][] = [
      [BASE.replace('port: 8080', 'port: 8081'), ['listen.http.port']],
      [BASE.replace('host: 127.0.0.1, port: 8080', 'host: 0.0.0.0, port: 8081'), ['listen.http.host', 'listen.http.port']],
      [`${BASE}log: { level: debug }\n`, ['log.level']],
      [`${BASE}limits: { maxHeaderBytes: 32768, maxBodyBytes: 1024 }\n`, ['limits.maxHeaderBytes']],
      [`${BASE}audit: { file: other.log }\ndataDir: /var/lib/elsewhere\n`, ['audit.file', 'dataDir']],
      [BASE.replace('admin: { port: 9901 }', 'admin: { port: 9901, origins: [https://ops.example] }'), ['admin.origins']],
      [`${BASE}shutdown: { drainTimeoutMs: 1000 }\nlimits: { maxBodyBytes: 1024 }\n`, []],
    ];
    for (const [text, expected] of cases) assert.deepEqual(restartRequired(running, compile(text)), expected, text);
  });

  it('keeps the running values, applies the rest, and reports a version of its own that is neither file\'s', () => {
    const runningConfig = compile(BASE);
    const running = restartOnlyValues(runningConfig);
    const next = compile(`${BASE.replace('port: 8080', 'port: 8081')}limits: { maxHeaderBytes: 32768, maxBodyBytes: 1024 }\n`);
    const effect = inEffect(next, running);
    assert.deepEqual(effect.restartRequired, ['limits.maxHeaderBytes', 'listen.http.port']);
    assert.deepEqual(effect.config.listen, runningConfig.listen);
    assert.equal(effect.config.limits.maxHeaderBytes, runningConfig.limits.maxHeaderBytes);
    assert.equal(effect.config.limits.maxBodyBytes, 1024, 'live options apply');
    assert.equal(effect.config.routes, next.routes);
    assert.equal(effect.fileVersion, next.version);
    assert.match(effect.config.version, /^[0-9a-f]{16}$/);
    assert.notEqual(effect.config.version, next.version);
    assert.notEqual(effect.config.version, runningConfig.version);
    assert.equal(inEffect(next, running).config.version, effect.config.version, 'the same inputs give the same version (every worker computes it alike)');
    const otherRunning = restartOnlyValues(compile(BASE.replace('port: 8080', 'port: 8082')));
    assert.notEqual(inEffect(next, otherRunning).config.version, effect.config.version, 'other running values, another version');
    assert.ok(Object.isFrozen(effect.config));
  });

  it('restart-only values survive a trip through JSON (the primary hands them to its workers that way)', () => {
    const config = compile(`${BASE}admin: { port: 9901, hosts: [gw.example] }\n`.replace('admin: { port: 9901 }\n', ''));
    const values = restartOnlyValues(config);
    const tripped = JSON.parse(JSON.stringify(values)) as Record<string, unknown>;
    assert.deepEqual(restartRequired(tripped, config), []);
    assert.equal(inEffect(compile(BASE), tripped).config.version, inEffect(compile(BASE), values).config.version);
  });

  it('docs/operations.md names every restart-only option', () => {
    const doc = readFileSync(fileURLToPath(new URL('../../docs/operations.md', import.meta.url)), 'utf8');
    const section = doc.slice(doc.indexOf('### Options that apply on restart only'));
    for (const option of RESTART_ONLY_OPTIONS) {
      assert.ok(section.includes(`\`${option}\``) || section.includes(`\`${option}.*\``), `${option} is documented`);
    }
  });
});
