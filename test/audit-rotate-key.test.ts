import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from './harness/gateway.js';

describe('portcullis audit rotate-key', () => {
  it('writes a new signing key where the config keeps it and keeps every public key', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-rotkey-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const config = join(dir, 'gateway.yaml');
    await writeFile(config, 'dataDir: ./data\nupstreams:\n  u:\n    targets: ["http://127.0.0.1:1"]\nroutes:\n  - name: r\n    match: { path: /** }\n    upstream: u\n    public: true\n');
    const run = () => spawnSync(process.execPath, [CLI, 'audit', 'rotate-key', '-c', config, '--json'], { encoding: 'utf8' });
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    const one = JSON.parse(first.stdout) as { previous: string | null; current: string; path: string };
    assert.equal(one.previous, null, 'no key before: the first one is made');
    const second = run();
    assert.equal(second.status, 0, second.stderr);
    const two = JSON.parse(second.stdout) as { previous: string | null; current: string };
    assert.equal(two.previous, one.current);
    assert.notEqual(two.current, one.current);
    const keys = join(dir, 'data', 'audit', 'keys');
    assert.deepEqual((await readdir(keys)).sort(), [`${one.current}.pub.pem`, `${two.current}.pub.pem`, 'signing.pem'].sort());
    assert.equal((await stat(join(keys, 'signing.pem'))).mode & 0o777, 0o600);
    const plain = spawnSync(process.execPath, [CLI, 'audit', 'rotate-key', '-c', config], { encoding: 'utf8' });
    assert.equal(plain.status, 0);
    assert.match(plain.stdout, /^new audit signing key \S+ in .*signing\.pem\nprevious key \S+: its public key is kept beside it; the running gateway signs with the new key from its next reload \(SIGHUP, or at once when reload\.watchFiles is on\)\n$/);
  });

  it('fails with one line when the config does not compile', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-rotkey-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const config = join(dir, 'gateway.yaml');
    await writeFile(config, 'audit: { instance: "bad name" }\n');
    const run = spawnSync(process.execPath, [CLI, 'audit', 'rotate-key', '-c', config], { encoding: 'utf8' });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /audit\.instance/);
  });
});
