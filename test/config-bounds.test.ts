import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_PROBLEMS } from '../src/config/errors.js';
import { configProblems } from './harness/config.js';
import { CLI } from './harness/gateway.js';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-config-bounds-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const check = (file: string): SpawnSyncReturns<string> =>
  spawnSync(process.execPath, [CLI, 'check', '-c', file], { encoding: 'utf8', timeout: 30_000 });

/** A config with `n` routes, each with three mistakes. */
function broken(n: number): string {
  const lines = ['upstreams:', '  u:', '    targets: [http://127.0.0.1:3001]', 'routes:'];
  for (let i = 0; i < n; i++) lines.push(`  - name: r${i}`, `    match: { path: /r${i}, methods: [BOGUS] }`, '    upstreem: u', '    public: maybe');
  return lines.join('\n') + '\n';
}

describe('reading the config stays bounded', () => {
  it('refuses a source that never ends (/dev/zero) at the size limit, without reading it all', () => {
    const run = check('/dev/zero');
    assert.equal(run.error, undefined, 'check must end by itself');
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /^\/dev\/zero: cannot read config: larger than \d+ bytes\n1 problem in config\n$/);
  });
  it('reads a config from a pipe (-c /dev/stdin, as with <(envsubst < gateway.tmpl))', () => {
    const file = join(dir, 'piped.yaml');
    writeFileSync(file, 'upstreams:\n  u:\n    targets: [http://127.0.0.1:3001]\nroutes:\n  - name: r\n    match: { path: /r }\n    upstream: u\n    public: true\n');
    // Through the shell, so stdin is a pipe (node's own stdio pipes are sockets, which /dev/stdin cannot open).
    const run = spawnSync('sh', ['-c', 'cat "$1" | "$2" "$3" check -c /dev/stdin', 'sh', file, process.execPath, CLI], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /OK \(version [0-9a-f]{16}, 1 routes/);
  });
  it('refuses a directory in one line', () => {
    const run = check(dir);
    assert.equal(run.status, 1);
    assert.equal(run.stderr.trimEnd().split('\n').length, 2, run.stderr);
    assert.match(run.stderr, /cannot read config: EISDIR/);
  });
});

describe('a config broken everywhere gets an answer of bounded size', () => {
  it(`check prints the first ${MAX_PROBLEMS} problems, how many more there are, and the total`, () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, broken(400));
    const run = check(file);
    assert.equal(run.status, 1);
    const lines = run.stderr.trimEnd().split('\n');
    assert.equal(lines.length, MAX_PROBLEMS + 2, lines.slice(-3).join('\n'));
    assert.match(lines[MAX_PROBLEMS] ?? '', new RegExp(`^${file}: \\d+ more problems not shown: fix the ones above and check again$`));
    const total = Number(/^(\d+) problems in config$/.exec(lines[MAX_PROBLEMS + 1] ?? '')?.[1]);
    assert.ok(total >= 800, `total ${total}`);
    assert.match(lines[MAX_PROBLEMS] ?? '', new RegExp(`: ${total - MAX_PROBLEMS} more problems`));
  });
  it('the problems a reload answer or log carries are bounded the same way', () => {
    const problems = configProblems(broken(400));
    assert.equal(problems.length, MAX_PROBLEMS + 1);
    assert.match(problems[MAX_PROBLEMS] ?? '', /more problems not shown/);
  });
  it(`exactly ${MAX_PROBLEMS} problems are all shown, with no "more" line`, () => {
    const problems = configProblems(`upstreams: {}\nroutes: [${Array.from({ length: MAX_PROBLEMS - 1 }, (_, i) => `{ bogus${i}: 1, name: r${i}, upstream: u, match: { path: /x } }`).join(', ')}]\n`);
    assert.ok(problems.length <= MAX_PROBLEMS, String(problems.length));
    assert.ok(!problems.some((p) => p.includes('not shown')));
  });
});

describe('a config cannot write to the terminal through its error messages', () => {
  it('control characters in a key are escaped: no ANSI sequence, no forged line', () => {
    const file = join(dir, 'escape.yaml');
    writeFileSync(file, 'upstreams:\n  u:\n    targets: [http://127.0.0.1:3001]\nroutes:\n  - name: r\n    match: { path: /r }\n    upstream: u\n    public: true\n"\\e[2Jx\\nforged.yaml:1:1: ok": 1\n');
    const run = check(file);
    assert.equal(run.status, 1);
    // eslint-disable-next-line no-control-regex -- looking for control characters is the point
    assert.doesNotMatch(run.stderr, /\u001b/);
    assert.equal(run.stderr, `${file}:9:1: \\u001b[2Jx\\u000aforged.yaml:1:1: ok: is not a known option (see docs/configuration.md for the options here)\n1 problem in config\n`);
  });
  it('control characters in the config path are escaped too', () => {
    const run = check(join(dir, 'a\u001b[31mb\nc.yaml'));
    assert.equal(run.status, 1);
    // eslint-disable-next-line no-control-regex -- looking for control characters is the point
    assert.doesNotMatch(run.stderr, /\u001b/);
    assert.equal(run.stderr.trimEnd().split('\n').length, 2, run.stderr);
  });
});
