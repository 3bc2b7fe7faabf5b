// `npm pack` makes a package that installs and runs: packed from a copy of this checkout (so its
// prepack builds from scratch without touching the dist the other tests run from), installed
// globally into a temp prefix from the npm cache, and its `portcullis` run. Also: `npx
// portcullis` in a checkout links it without rebuilding it.
//
// better-sqlite3 is native: a fresh install would compile it for minutes. The install here takes
// the binary this checkout's own install built, offered as a prebuild-install "local prebuild"
// (the mechanism its install script already uses), so the package is installed as a user would,
// scripts and all, without a compiler or a download.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';

const exec = promisify(execFile);
const CHECKOUT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGE = JSON.parse(readFileSync(join(CHECKOUT, 'package.json'), 'utf8')) as { name: string; version: string };
/** What a build needs besides node_modules; tests, benchmarks and the built dist stay behind. */
const LEFT_OUT = new Set(['node_modules', 'dist', '.git', 'test', 'bench', '.bench', 'data', 'npm-shrinkwrap.json']);
const NPM_QUIET = ['--no-audit', '--no-fund', '--loglevel=warn'];

interface Run { code: number; stdout: string; stderr: string }

async function run(file: string, args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Run> {
  try {
    const { stdout, stderr } = await exec(file, [...args], { cwd: options.cwd, env: options.env ?? process.env, timeout: 170_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
  }
}

/** Every file below `dir` with its modification time, relative to `dir`. */
function mtimes(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.set(relative(dir, path), statSync(path).mtimeMs);
    }
  };
  walk(dir);
  return out;
}

describe('the packed package', { timeout: 300_000 }, () => {
  let tmp: string;
  let source: string;
  let tarball: string;
  let packed: string[];
  // Each child npm gets the environment of a user's shell, not of an `npm test` it may run under.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'portcullis-pack-'));
    source = join(tmp, 'checkout');
    cpSync(CHECKOUT, source, { recursive: true, filter: (path) => !LEFT_OUT.has(relative(CHECKOUT, path)) });
    symlinkSync(join(CHECKOUT, 'node_modules'), join(source, 'node_modules'), 'dir');
    const out = join(tmp, 'out');
    mkdirSync(out);
    const pack = await run('npm', ['pack', '--json', '--pack-destination', out, ...NPM_QUIET], { cwd: source, env });
    assert.equal(pack.code, 0, pack.stderr);
    // Lifecycle scripts print before the JSON.
    const json = pack.stdout.slice(pack.stdout.search(/^\[/m));
    const [info] = JSON.parse(json) as { filename: string; files: { path: string; mode: number }[] }[];
    assert.ok(info !== undefined);
    tarball = join(out, info.filename);
    packed = info.files.map((f) => f.path);
  });
  after(() => { rmSync(tmp, { recursive: true, force: true }); });

  it('holds the built CLI, the lockfile of its dependencies, schema, docs and the quickstart, and nothing of the build', () => {
    for (const file of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'npm-shrinkwrap.json', 'dist/src/cli/main.js', 'dist/src/workers/worker-main.js',
      'schema/gateway.schema.json', 'examples/quickstart/gateway.yaml', 'docs/configuration.md']) {
      assert.ok(packed.includes(file), `packs ${file}`);
    }
    const stray = packed.filter((f) => /\.(ts|map|tsbuildinfo)$/.test(f) || /^(src|test|bench|scripts|dist\/test)\//.test(f) || f === 'package-lock.json');
    assert.deepEqual(stray, [], 'no sources, tests, source maps or build state');
    assert.ok(existsSync(tarball));
    assert.ok(!existsSync(join(source, 'npm-shrinkwrap.json')), 'postpack removed the shrinkwrap from the checkout');
    assert.match(readFileSync(join(source, 'dist/src/cli/main.js'), 'utf8'), /^#!\/usr\/bin\/env node\n/, 'the bin starts with a shebang');
  });

  it('installs globally from the npm cache, and `portcullis` runs: --version, --help, check, and keys on the native SQLite store', async () => {
    // better-sqlite3's install script (prebuild-install) looks for a "local prebuild" named as its
    // download would be, configured here through an rc file it finds above its install directory.
    const sqlite = join(CHECKOUT, 'node_modules/better-sqlite3');
    const { version } = JSON.parse(readFileSync(join(sqlite, 'package.json'), 'utf8')) as { version: string };
    const stage = join(tmp, 'stage');
    mkdirSync(join(stage, 'build/Release'), { recursive: true });
    cpSync(join(sqlite, 'build/Release/better_sqlite3.node'), join(stage, 'build/Release/better_sqlite3.node'));
    const prebuilds = join(tmp, 'prebuilds');
    mkdirSync(prebuilds);
    const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
    const tar = await run('tar', ['czf', join(prebuilds, name), '-C', stage, 'build'], { cwd: tmp });
    assert.equal(tar.code, 0, tar.stderr);
    writeFileSync(join(tmp, '.prebuild-installrc'), `local-prebuilds=${prebuilds}\n`);

    const prefix = join(tmp, 'prefix');
    // The shrinkwrap names every tarball, which the checkout's own install left in the npm cache:
    // nothing is fetched unless that cache was emptied since.
    const install = await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', ...NPM_QUIET, tarball], { cwd: tmp, env });
    assert.equal(install.code, 0, `npm install -g failed:\n${install.stderr}`);
    const bin = join(prefix, 'bin', 'portcullis');
    assert.ok(statSync(bin).mode & 0o111, 'the bin is executable');

    const cli = (args: string[]) => run(bin, args, { cwd: tmp, env });
    assert.deepEqual(await cli(['--version']), { code: 0, stdout: `${PACKAGE.version}\n`, stderr: '' });
    const help = await cli(['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage:\n {2}portcullis <command>/m);
    const demoHelp = await cli(['demo', '--help']);
    assert.match(demoHelp.stdout, /--admin-port N/);

    const config = join(tmp, 'gateway.yaml');
    writeFileSync(config, [
      `dataDir: ${JSON.stringify(join(tmp, 'data'))}`,
      'apiKeys: { environment: test }',
      'upstreams: { echo: { targets: ["http://127.0.0.1:9"] } }',
      'authenticators: { machines: { type: apiKey } }',
      'routes:',
      '  - { name: orders, match: { path: /orders }, upstream: echo, authenticate: [machines] }',
      '',
    ].join('\n'));
    const check = await cli(['check', '-c', config]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /OK \(version [0-9a-f]{16}, 1 routes, 1 upstreams\)/);
    const created = await cli(['keys', 'create', '-c', config, '--name', 'packed', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const { id } = JSON.parse(created.stdout) as { id: string };
    const list = await cli(['keys', 'list', '-c', config, '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual((JSON.parse(list.stdout) as { id: string }[]).map((k) => k.id), [id]);
  });

  it('`npx portcullis` in a checkout that is built runs it at once: linking it rebuilds nothing', async () => {
    // npx installs the checkout into its cache as a link, which runs the prepare script: the build
    // must then find nothing to do (it used to be a full compile on every first call).
    const before = mtimes(join(source, 'dist'));
    const npx = await run('npx', ['--offline', '--cache', join(tmp, 'npm-cache'), '--yes', 'portcullis', '--version'], { cwd: source, env });
    assert.equal(npx.code, 0, npx.stderr);
    assert.equal(npx.stdout.trim().split('\n').at(-1), PACKAGE.version);
    assert.deepEqual(mtimes(join(source, 'dist')), before, 'no file of dist was written');
  });
});
