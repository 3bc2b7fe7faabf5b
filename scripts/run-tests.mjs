// Runs every compiled test file with node's test runner (Node 20 takes explicit file lists).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('../dist/test/', import.meta.url).pathname;
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.test.js')) files.push(path);
  }
})(root);
const filter = process.argv[2];
const selected = filter === undefined ? files : files.filter((f) => f.includes(filter));
if (selected.length === 0) {
  console.error(`no test files found under ${root}${filter === undefined ? '' : ` matching "${filter}"`}`);
  process.exit(1);
}
const started = Date.now();
// A test (or suite) that hangs fails after four minutes, naming itself, instead of holding the run
// until CI's own limit; the slowest file takes about a minute and a quarter on two cores.
const TEST_TIMEOUT_MS = 240_000;
// Test files run two at a time (TEST_CONCURRENCY, default 2): most of a file's time is spent
// waiting on the gateways, servers and clients it starts, so two files share two cores with little
// waiting on each other. Nothing is shared between files: each starts its own servers on ports it
// checks are its own, and its own database.
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
if (!/^[1-9][0-9]?$/.test(concurrency)) {
  console.error(`TEST_CONCURRENCY must be a whole number from 1 to 99, not "${concurrency}"`);
  process.exit(2);
}
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', `--test-timeout=${TEST_TIMEOUT_MS}`, `--test-concurrency=${concurrency}`, ...selected], { stdio: 'inherit' });
// The runner's duration_ms is the test time; this is what the whole run took, start to end.
const seconds = Math.round((Date.now() - started) / 1000);
console.log(`suite wall time: ${Math.floor(seconds / 60)} min ${seconds % 60} s for ${selected.length} test files`);
process.exit(result.status ?? 1);
