// Creating the data directories: every level is tried once, so a path the file system will not
// create fails at once instead of looping (Node 20's recursive mkdir spins for ever under /proc).
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDirectory } from '../src/lib/make-directory.js';

describe('makeDirectory', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'portcullis-mkdir-')); });
  after(() => rm(dir, { recursive: true, force: true }));

  it('creates every missing level with the mode asked for, and accepts a directory that exists', () => {
    const deep = join(dir, 'a', 'b', 'c');
    makeDirectory(deep, 0o700);
    assert.ok(statSync(deep).isDirectory());
    assert.equal(statSync(join(dir, 'a')).mode & 0o077, 0, 'no access for group or others');
    makeDirectory(deep, 0o700);
    makeDirectory(dir, 0o700);
  });

  it('refuses a path through a file with ENOTDIR, creating nothing', async () => {
    await writeFile(join(dir, 'file'), '');
    assert.throws(() => makeDirectory(join(dir, 'file', 'x', 'y'), 0o700), { code: 'ENOTDIR' });
    assert.throws(() => makeDirectory(join(dir, 'file'), 0o700), { code: 'ENOTDIR' });
    assert.equal(existsSync(join(dir, 'file', 'x')), false);
  });

  it('fails at once where the file system will not create a directory whose parent exists (/proc)', (t) => {
    if (!existsSync('/proc/self')) { t.skip('no /proc on this machine'); return; }
    assert.throws(() => makeDirectory('/proc/portcullis-test/keys', 0o700), { code: 'ENOENT' });
  });
});
