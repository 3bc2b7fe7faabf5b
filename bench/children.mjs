// The child processes of a bench run (`npm run bench`, `npm run soak`): every one is tracked and
// ended, with the processes it started, on exit, on error and on Ctrl+C; so is the run's scratch
// directory. One run per process: the set of children and the scratch directory are module state.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { processTree } from './proc-stats.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

const children = new Set();
let scratch = null;

export function hasCommand(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Creates the run's scratch directory (removed by `cleanup()` and on exit) and returns its path. */
export function makeScratchDir(prefix) {
  scratch = mkdtempSync(join(tmpdir(), prefix));
  return scratch;
}

/** The run's scratch directory; `makeScratchDir` must have been called. */
export function scratchDir() {
  if (scratch === null) throw new Error('no scratch directory: call makeScratchDir() first');
  return scratch;
}

/**
 * Starts a child, pinned to `cpus` (a taskset CPU list) when the layout is pinned; keeps its last
 * output lines for errors. Children inherit this runner's affinity (the load generator's core),
 * so a child that should run elsewhere is always given its CPUs.
 */
export function launch(name, cmd, argv, { cpus: cpuList = null, layout, env = process.env } = {}) {
  const pinned = layout.pinned && cpuList !== null;
  const child = spawn(pinned ? 'taskset' : cmd, pinned ? ['-c', String(cpuList), cmd, ...argv] : argv, {
    cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.benchName = name;
  child.tail = [];
  child.tree = [child.pid];
  const keep = (line) => { child.tail.push(line); if (child.tail.length > 40) child.tail.shift(); };
  child.lines = createInterface({ input: child.stdout });
  child.lines.on('line', keep);
  createInterface({ input: child.stderr }).on('line', (line) => keep(`[stderr] ${line}`));
  // 'close', not 'exit': the last stdout lines (a report) may still be in the pipe at 'exit'.
  child.exited = new Promise((done) => child.once('close', (code, signal) => { children.delete(child); done({ code, signal }); }));
  child.once('error', (err) => keep(`[spawn] ${err.message}`));
  children.add(child);
  return child;
}

export function failure(child, message) {
  return new Error(`${child.benchName}: ${message}\n  last output:\n    ${child.tail.join('\n    ') || '(none)'}`);
}

/** Resolves with the first stdout line for which `pick` returns a value; fails if the child exits first. */
export function waitForLine(child, pick, timeoutMs = READY_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (fn, value) => { if (done) return; done = true; clearTimeout(timer); child.lines.off('line', onLine); fn(value); };
    const onLine = (line) => {
      let value;
      try { value = pick(line); } catch { value = undefined; }
      if (value !== undefined) finish(resolve, value);
    };
    const timer = setTimeout(() => finish(reject, failure(child, `not ready after ${timeoutMs} ms`)), timeoutMs);
    child.lines.on('line', onLine);
    child.exited.then(({ code, signal }) => finish(reject, failure(child, `exited early (code ${code}, signal ${signal})`)));
  });
}

/** Whether the child has exited (or was killed). */
export function hasExited(child) {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Records the child's process tree (nginx's worker, the gateway's workers) once it is ready. */
export function recordTree(child) {
  child.tree = processTree(child.pid);
}

/** Kills what is left of a child's tree: a worker whose parent was killed outright is not stopped by it. */
function killTree(child) {
  for (const pid of new Set([...processTree(child.pid), ...child.tree])) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

export async function stopChild(child) {
  if (hasExited(child)) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => killTree(child), STOP_TIMEOUT_MS);
  await child.exited;
  clearTimeout(timer);
}

/** Stops every child (SIGTERM, then SIGKILL to its tree after 5 s) and removes the scratch directory. */
export async function cleanup() {
  await Promise.all([...children].map(stopChild));
  if (scratch !== null) { rmSync(scratch, { recursive: true, force: true }); scratch = null; }
}

/**
 * Kills every child on exit and stops them on SIGINT, SIGTERM and SIGHUP (exit 130; a second
 * signal exits at once). Returns a function that says whether a signal arrived.
 */
export function stopChildrenOnExit() {
  process.on('exit', () => {
    for (const child of children) killTree(child);
    if (scratch !== null) rmSync(scratch, { recursive: true, force: true });
  });
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      if (interrupted) process.exit(130);
      interrupted = true;
      process.stderr.write(`\n${signal}: stopping child processes…\n`);
      cleanup().finally(() => process.exit(130));
    });
  }
  return () => interrupted;
}
