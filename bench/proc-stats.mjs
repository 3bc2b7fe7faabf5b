// CPU time and memory of a server under test, read from /proc. A server can be a process tree —
// nginx's master and worker, the gateway's primary and its workers — so every figure is summed
// over the tree. Where there is no /proc (not Linux), the readers answer null and the bench shows
// "—" for CPU and RSS.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { clearInterval, setInterval } from 'node:timers';

const RSS_SAMPLE_MS = 250;
let clockTicks = null;

/** The process and its descendants, parents first; [pid] alone where /proc lists no children. */
export function processTree(pid) {
  const tree = [];
  const visit = (p) => {
    tree.push(p);
    for (const child of childPids(p)) visit(child);
  };
  visit(pid);
  return tree;
}

/** Children of every thread of `pid` (/proc/PID/task/TID/children, Linux ≥ 3.5). */
function childPids(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter((s) => s !== '').map(Number));
  } catch {
    return [];
  }
}

/** user + system CPU time of one process (all its threads) in µs; null when it cannot be read. */
function cpuTimeOf(pid) {
  try {
    clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / clockTicks; // utime, stime
  } catch {
    return null;
  }
}

/** CPU time of a set of processes in µs, summed; null when any of them cannot be read. */
export function cpuTimeUs(pids) {
  let total = 0;
  for (const pid of pids) {
    const us = cpuTimeOf(pid);
    if (us === null) return null;
    total += us;
  }
  return total;
}

/** Resident memory of a set of processes in KiB (VmRSS), summed; null when any cannot be read. */
export function rssKiB(pids) {
  let total = 0;
  for (const pid of pids) {
    try {
      const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      if (kib === undefined) return null;
      total += Number(kib);
    } catch {
      return null;
    }
  }
  return total;
}

/**
 * Samples the summed RSS of `pids` every 250 ms until `stop()`, which answers the largest sample
 * in KiB (null when /proc could not be read). The runner is idle while the load generator runs,
 * so the sampling costs its core next to nothing.
 */
export function sampleMaxRss(pids) {
  let max = rssKiB(pids);
  const timer = setInterval(() => {
    const now = rssKiB(pids);
    max = now === null || max === null ? null : Math.max(max, now);
  }, RSS_SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      const now = rssKiB(pids);
      return now === null || max === null ? null : Math.max(max, now);
    },
  };
}
