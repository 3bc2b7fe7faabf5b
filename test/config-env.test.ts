// Environment references fail clearly: an unquoted ${VAR} in a flow collection is one error that
// says how to write it, a whole ${VAR} takes the type its option needs, and every failure names the
// variable, the option and what would be right.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { configProblems } from './harness/config.js';
import { CLI } from './harness/gateway.js';

const REST = `upstreams:
  orders: { targets: [http://127.0.0.1:3001] }
routes:
  - { name: health, match: { path: /health }, upstream: orders, public: true }
`;

const compiled = (text: string, env: NodeJS.ProcessEnv) => compileConfig(loadConfigText(text, 'gateway.yaml', env));

describe('an unquoted reference in a flow collection', () => {
  const CASES: [string, string, RegExp][] = [
    ['in a flow mapping', 'listen: { http: { port: ${PORT} } }\n',
      /^gateway\.yaml:1:25: \$\{PORT\} inside a flow collection \(\{ … \} or \[ … \]\) must be quoted: write "\$\{PORT\}" \(a quoted reference still becomes the number or boolean the option needs\), or write the collection in block style/],
    ['in a flow sequence', 'trustedProxies: [${PROXY}]\n', /^gateway\.yaml:1:18: \$\{PROXY\} inside a flow collection .* write "\$\{PROXY\}"/],
    ['with a default', 'listen: { http: { port: ${PORT:-8080} } }\n', /^gateway\.yaml:1:25: \$\{PORT:-8080\} inside a flow collection .* write "\$\{PORT:-8080\}"/],
    ['inside longer text', 'upstreams2: { url: http://${HOST}:8080 }\n', /^gateway\.yaml:1:27: \$\{HOST\} inside a flow collection .* write "http:\/\/\$\{HOST\}"/],
    ['as an escaped literal', 'dataDir2: { d: $${HOME} }\n', /^gateway\.yaml:1:17: \$\{HOME\} inside a flow collection .* write "\$\$\{HOME\}"/],
  ];
  for (const [name, line, expected] of CASES) {
    it(`is one error that says how to write it, ${name}`, () => {
      const found = configProblems(line + REST, { PORT: '8081', PROXY: '10.0.0.0/8', HOST: 'h' });
      assert.equal(found.length, 1, found.join('\n'));
      assert.match(found[0] ?? '', expected);
    });
  }

  it('reports each such reference, and a YAML error before them, but not what they break after', () => {
    const text = 'a: [1\nlisten: { http: { port: ${PORT}, host: ${HOST} } }\n' + REST;
    const found = configProblems(text);
    assert.ok(found.length <= 4, found.join('\n'));
    assert.ok(found.some((p) => /^gateway\.yaml:2:25: \$\{PORT\} inside a flow collection/.test(p)), found.join('\n'));
    assert.ok(found.some((p) => /^gateway\.yaml:2:40: \$\{HOST\} inside a flow collection/.test(p)), found.join('\n'));
  });

  it('quoted, it is accepted and typed for its option', () => {
    const config = compiled('listen: { http: { port: "${PORT}", host: "${HOST}" } }\n' + REST, { PORT: '8081', HOST: '127.0.0.1' });
    assert.equal(config.listen.http.port, 8081);
    assert.equal(config.listen.http.host, '127.0.0.1');
  });

  it('the CLI prints one line for the five-line file of the report', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-env-'));
    try {
      const file = join(dir, 'gateway.yaml');
      writeFileSync(file, 'listen: { http: { port: ${PORT} } }\n' + REST);
      const run = spawnSync(process.execPath, [CLI, 'check', '-c', file], { encoding: 'utf8', env: { ...process.env, PORT: '8081' } });
      assert.equal(run.status, 1);
      assert.equal(run.stderr, `${file}:1:25: \${PORT} inside a flow collection ({ … } or [ … ]) must be quoted: write "\${PORT}" (a quoted reference still becomes the number or boolean the option needs), or write the collection in block style, one entry per line\n1 problem in config\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a whole reference takes the type its option needs', () => {
  const block = (value: string) => `listen:\n  http:\n    port: ${value}\n` + REST;

  for (const [style, value] of [['plain', '${PORT}'], ['double-quoted', '"${PORT}"'], ['single-quoted', "'${PORT}'"], ['with a default', '${PORT:-1}']] as const) {
    it(`an integer option, ${style}`, () => {
      assert.equal(compiled(block(value), { PORT: '9090' }).listen.http.port, 9090);
    });
  }

  it('a boolean option', () => {
    const text = REST + 'paths:\n  mergeSlashes: ${MERGE}\n  allowSemicolon: "${SEMI}"\n';
    const config = compiled(text, { MERGE: 'false', SEMI: 'true' });
    assert.equal(config.target.mergeSlashes, false);
    assert.equal(config.target.allowSemicolon, true);
  });

  it('an integer inside a list and a named map', () => {
    const text = REST.replace('targets: [http://127.0.0.1:3001] }', 'targets: [http://127.0.0.1:3001], timeoutMs: "${T}" }');
    assert.equal(compiled(text, { T: '1500' }).upstreams.get('orders')?.timeoutMs, 1500);
  });

  it('a text option keeps text that looks like a number or boolean', () => {
    const text = REST + 'authenticators:\n  u: { type: jwt, issuer: "${ISS}", secret: "${SECRET}", audience: "${AUD}", algorithms: [HS256] }\ndataDir: ${DIR}\n';
    const loaded = loadConfigText(text, 'gateway.yaml', { ISS: '42', SECRET: '12345678901234567890123456789012', AUD: 'true', DIR: '2024' });
    const u = loaded.raw.authenticators?.u as { issuer: unknown; secret: unknown; audience: unknown };
    assert.deepEqual([u.issuer, u.secret, u.audience, loaded.raw.dataDir], ['42', '12345678901234567890123456789012', 'true', '2024']);
  });

  it('a reference inside longer text stays text', () => {
    const text = REST.replace('[http://127.0.0.1:3001]', '["http://${HOST}:3001"]');
    assert.deepEqual(compiled(text, { HOST: '10.0.0.7' }).upstreams.get('orders')?.targets, ['http://10.0.0.7:3001']);
    const found = configProblems(block('"80${N}"'), { N: '80' });
    assert.deepEqual(found, ['gateway.yaml:3:11: listen.http.port: must be a whole number from 0 to 65535, not text']);
  });

  const BAD: [string, string, string][] = [
    ['8x', 'integer', 'a whole number from 0 to 65535'],
    [' 80', 'integer', 'a whole number from 0 to 65535'],
    ['80 ', 'integer', 'a whole number from 0 to 65535'],
    ['+80', 'integer', 'a whole number from 0 to 65535'],
    ['080', 'integer', 'a whole number from 0 to 65535'],
    ['1e3', 'integer', 'a whole number from 0 to 65535'],
    ['80.0', 'integer', 'a whole number from 0 to 65535'],
    ['', 'integer', 'a whole number from 0 to 65535'],
    ['99999999999999999999', 'integer', 'a whole number from 0 to 65535'],
  ];
  for (const [value, , expected] of BAD) {
    it(`"${value}" for an integer is an error naming the variable, the option and the type`, () => {
      assert.deepEqual(configProblems(block('${PORT}'), { PORT: value }), [`gateway.yaml:3:11: listen.http.port: \${PORT} must be ${expected}: set PORT to such a value`]);
    });
  }

  for (const value of ['yes', 'TRUE', '1', ' true']) {
    it(`"${value}" for a boolean is an error naming the variable`, () => {
      assert.deepEqual(configProblems(REST + 'paths:\n  mergeSlashes: ${MERGE}\n', { MERGE: value }), ['gateway.yaml:6:17: paths.mergeSlashes: ${MERGE} must be true or false: set MERGE to such a value']);
    });
  }

  it('a list or a mapping is written in YAML, not in one variable', () => {
    assert.deepEqual(configProblems(REST + 'trustedProxies: ${PROXIES}\n', { PROXIES: '10.0.0.0/8' }), [
      'gateway.yaml:5:17: trustedProxies: must be a list of text, which one variable cannot hold: write it in YAML, with a reference for each value that varies ("${PROXIES}" stands for text)',
    ]);
    assert.match(configProblems(REST + 'paths: ${P}\n', { P: 'x' })[0] ?? '', /^gateway\.yaml:5:8: paths: must be a mapping \(key: value\), which one variable cannot hold/);
  });

  it('a converted value out of range is reported as such', () => {
    assert.deepEqual(configProblems(block('${PORT}'), { PORT: '70000' }), ['gateway.yaml:3:11: listen.http.port: must be a whole number from 0 to 65535']);
  });

  it('a bad variable and another mistake are both reported', () => {
    const found = configProblems(block('${PORT}') + 'bogus: 1\n', { PORT: 'x' });
    assert.equal(found.length, 2, found.join('\n'));
  });
});

describe('unset and malformed references', () => {
  it('an unset variable names the variable, file, line and option', () => {
    assert.deepEqual(configProblems(REST + 'dataDir: ${DATA_DIR}\n', {}, 'conf/gw.yaml'),
      ['conf/gw.yaml:5:10: dataDir: environment variable DATA_DIR is not set (set it, or give a default: ${DATA_DIR:-default})']);
  });

  it('every unset variable of one value is named', () => {
    const text = REST.replace('[http://127.0.0.1:3001]', '["${SCHEME}://${HOST}:${PORT}"]');
    assert.deepEqual(configProblems(text, { HOST: 'h' }),
      ['gateway.yaml:2:23: upstreams.orders.targets[0]: environment variables SCHEME, PORT are not set (set them, or give a default: ${SCHEME:-default})']);
  });

  it('an empty variable with a default takes the default', () => {
    assert.equal(compiled(`listen:\n  http:\n    port: \${PORT:-8088}\n` + REST, { PORT: '' }).listen.http.port, 8088);
  });

  for (const text of ['${PORT', '${1PORT}', '${PORT:8080}', '${PORT-8080}', '${}', 'x${A-B}y']) {
    it(`"${text}" is not a reference and says how to write one`, () => {
      const found = configProblems(REST + `dataDir: "${text}"\n`, { PORT: '1', A: 'a' });
      assert.equal(found.length, 1, found.join('\n'));
      assert.match(found[0] ?? '', /^gateway\.yaml:5:10: dataDir: ".*" is not an environment reference: write \$\{NAME\} or \$\{NAME:-default\} .* or \$\$\{ for a literal \$\{$/);
    });
  }

  it('a value containing ${ is substituted as it is, never read as a reference or as YAML', () => {
    const loaded = loadConfigText(REST + 'dataDir: ${D}\n', 'gateway.yaml', { D: '${OTHER} { a: [1' });
    assert.equal(loaded.raw.dataDir, '${OTHER} { a: [1');
  });
});

describe('a default that holds another reference', () => {
  // `${A:-${B}}` would end the default at the first `}`: the value would be the text `${B}`, which a
  // free-text option (an issuer, a header value) takes without complaint.
  for (const env of [{}, { B: 'https://idp.example' }, { A: 'https://idp.example' }] as NodeJS.ProcessEnv[]) {
    it(`is one error naming the variable whatever is set (${Object.keys(env).join(', ') || 'nothing'})`, () => {
      const found = configProblems(`authenticators:\n  users: { type: jwt, issuer: "\${A:-\${B}}", jwksUri: https://idp.example/jwks }\n${REST}`, env);
      assert.equal(found.length, 1, found.join('\n'));
      assert.match(found[0] ?? '', /^gateway\.yaml:2:31: authenticators\.users\.issuer: the default of \$\{A\} holds another reference, which is not substituted: write the default out \(\$\{A:-value\}\)$/);
    });
  }
  it('a plain default is unaffected', () => {
    const config = compiled(`log: { level: "\${LEVEL:-info}" }\n${REST}`, {});
    assert.equal(config.routes.length, 1);
  });
});
