// Where a bench run's processes run. With taskset and at least two allowed CPUs, the server under
// test gets the second CPU to itself; the load generator, the upstream and the runner share the
// first. See docs/performance.md#layout.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { hasCommand } from './children.mjs';

/** CPUs this process may run on, from `taskset -pc` (e.g. "0,1" or "0-3"). */
function allowedCpus() {
  const out = spawnSync('taskset', ['-pc', String(process.pid)], { encoding: 'utf8' });
  const list = /list:\s*(\S+)/.exec(out.stdout ?? '')?.[1];
  if (out.status !== 0 || list === undefined) return [];
  const result = [];
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    for (let c = a; c <= (b ?? a); c++) result.push(c);
  }
  return result;
}

/**
 * Pins this runner to the load generator's core and answers the layout: `{ pinned: true, loadCore,
 * serverCore, allCpus, cpus }`, or `{ pinned: false, reason, cpus }`.
 */
export function detectLayout() {
  if (!hasCommand('taskset')) return { pinned: false, reason: 'taskset not found', cpus: availableParallelism() };
  const allowed = allowedCpus();
  if (allowed.length < 2) return { pinned: false, reason: `only ${allowed.length || availableParallelism()} CPU allowed`, cpus: allowed.length };
  const [loadCore, serverCore] = allowed;
  // This runner joins the load generator's core so it never competes with the server under test.
  spawnSync('taskset', ['-a', '-pc', String(loadCore), String(process.pid)], { stdio: 'ignore' });
  return { pinned: true, loadCore, serverCore, allCpus: allowed.join(','), cpus: allowed.length };
}
