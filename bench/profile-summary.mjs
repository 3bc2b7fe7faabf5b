// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by function, with dist/ frames
// mapped back to src/*.ts through the compiler's source maps, and self time by package.
// Usage: node bench/profile-summary.mjs FILE.cpuprofile [TOP]
import { readFileSync, existsSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';
import { relative, resolve } from 'node:path';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const maps = new Map();
function sourceMapFor(file) {
  if (!maps.has(file)) {
    let map = null;
    const mapFile = `${file}.map`;
    if (existsSync(mapFile)) {
      try { map = new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8'))); } catch { map = null; }
    }
    maps.set(file, map);
  }
  return maps.get(file);
}

/** Where a frame lives: `src/x.ts:line` for the gateway's own code, else a shortened location. */
function locate(callFrame) {
  const { url, lineNumber, columnNumber } = callFrame;
  if (url === '') return { where: '(native)', group: callFrame.functionName.startsWith('(') ? callFrame.functionName : '(native)' };
  if (url.startsWith('node:')) return { where: `${url}:${lineNumber + 1}`, group: 'node core' };
  const file = url.startsWith('file://') ? fileURLToPath(url) : url;
  const rel = relative(ROOT, file);
  if (rel.startsWith('dist/src/')) {
    const entry = sourceMapFor(file)?.findEntry(lineNumber, columnNumber);
    if (entry !== undefined && entry !== null && entry.originalSource !== undefined) {
      const source = entry.originalSource.startsWith('file://') ? fileURLToPath(entry.originalSource) : resolve(file, '..', entry.originalSource);
      return { where: `${relative(ROOT, source)}:${entry.originalLine + 1}`, group: 'gateway src' };
    }
    return { where: `${rel}:${lineNumber + 1}`, group: 'gateway src' };
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(rel);
  if (pkg !== null) return { where: `${rel.slice(rel.lastIndexOf('node_modules/') + 13)}:${lineNumber + 1}`, group: pkg[1] };
  return { where: `${rel}:${lineNumber + 1}`, group: 'other' };
}

/**
 * Self time (and total time, callees included) per function and self time per group (package),
 * in milliseconds, largest first; for each listed function, the callers its self time came from.
 */
export function summariseProfile(file, top = 25) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const info = new Map();
  const frame = (id) => {
    let f = info.get(id);
    if (f === undefined) {
      const cf = byId.get(id).callFrame;
      const { where, group } = locate(cf);
      const name = cf.functionName || '(anonymous)';
      f = { key: `${name} ${where}`, name, where, group };
      info.set(id, f);
    }
    return f;
  };
  const selfUs = new Map();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const totalUs = profile.endTime - profile.startTime;
  const functions = new Map();
  const groups = new Map();
  for (const [id, us] of selfUs) {
    if (!byId.has(id)) continue;
    const { key, name, where, group } = frame(id);
    const f = functions.get(key) ?? { function: name, where, group, selfMs: 0, totalMs: 0, callers: new Map() };
    f.selfMs += us / 1000;
    const p = parent.get(id);
    if (p !== undefined) { const c = frame(p).key; f.callers.set(c, (f.callers.get(c) ?? 0) + us / 1000); }
    functions.set(key, f);
    groups.set(group, (groups.get(group) ?? 0) + us / 1000);
    // Total time: every distinct function on the stack gets this sample once (recursion counted once).
    const seen = new Set();
    for (let n = id; n !== undefined; n = parent.get(n)) {
      const k = frame(n).key;
      if (seen.has(k)) continue;
      seen.add(k);
      const g = functions.get(k) ?? { function: frame(n).name, where: frame(n).where, group: frame(n).group, selfMs: 0, totalMs: 0, callers: new Map() };
      g.totalMs += us / 1000;
      functions.set(k, g);
    }
  }
  // Percentages are of busy time (wall time minus the profiler's idle samples), so a process that
  // sat idle while other scenarios ran still shows where its working time went.
  const idleMs = groups.get('(idle)') ?? 0;
  const busyUs = Math.max(1, totalUs - idleMs * 1000);
  const pct = (ms) => Math.round((ms * 1000 / busyUs) * 1000) / 10;
  const sorted = [...functions.values()].sort((a, b) => b.selfMs - a.selfMs);
  const rows = (list) => list.slice(0, top).map((f) => ({
    ...f, selfMs: Math.round(f.selfMs), selfPct: pct(f.selfMs), totalMs: Math.round(f.totalMs), totalPct: pct(f.totalMs),
    callers: [...f.callers].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([caller, ms]) => ({ caller, selfMs: Math.round(ms) })),
  }));
  return {
    file,
    totalMs: Math.round(totalUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    groups: [...groups].filter(([group]) => group !== '(idle)').sort((a, b) => b[1] - a[1]).map(([group, ms]) => ({ group, selfMs: Math.round(ms), selfPct: pct(ms) })),
    top: rows(sorted.filter((f) => f.group !== '(idle)')),
    gatewaySrc: rows(sorted.filter((f) => f.group === 'gateway src')),
    gatewaySrcTotal: rows([...functions.values()].filter((f) => f.group === 'gateway src').sort((a, b) => b.totalMs - a.totalMs)),
  };
}

export function formatSummary(summary) {
  const lines = [`CPU profile ${relative(ROOT, summary.file)}: ${summary.totalMs} ms wall, ${summary.busyMs} ms busy; % of busy time`, '', 'self time by package:'];
  for (const g of summary.groups.slice(0, 12)) lines.push(`  ${String(g.selfPct).padStart(5)} %  ${String(g.selfMs).padStart(6)} ms  ${g.group}`);
  const table = (title, list, { total = false, callers = 0 } = {}) => {
    lines.push('', title);
    for (const f of list) {
      const [p, ms] = total ? [f.totalPct, f.totalMs] : [f.selfPct, f.selfMs];
      lines.push(`  ${String(p).padStart(5)} %  ${String(ms).padStart(6)} ms  ${f.function}  ${f.where}`);
      if (f.callers.length > 0 && callers > 0) lines.push(`            ← ${f.callers.slice(0, callers).map((c) => `${c.caller} (${c.selfMs} ms)`).join('; ')}`);
    }
  };
  table('top self time (all), with the callers it came from:', summary.top, { callers: 2 });
  table('top self time in src/:', summary.gatewaySrc);
  table('top total time (callees included) in src/:', summary.gatewaySrcTotal, { total: true });
  return lines.join('\n');
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node bench/profile-summary.mjs FILE.cpuprofile [TOP]\n');
    process.exit(2);
  }
  process.stdout.write(formatSummary(summariseProfile(resolve(file), Number(process.argv[3] ?? 25))) + '\n');
}
