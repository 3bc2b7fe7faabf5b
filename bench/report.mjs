// How a bench run is shown: the same tables as aligned text on the console and as Markdown in
// docs/performance.md (`--report`), the aims as one line each, and an SVG chart drawn by plain
// code. Everything here is a pure function of the run's report (.bench/last.json) except
// `writeReport`, which replaces the marked section of the docs page and writes the chart.
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';

export const MARK_START = '<!-- bench:start -->';
export const MARK_END = '<!-- bench:end -->';

const fixed = (x, digits) => (x === null || x === undefined ? '—' : x.toFixed(digits));
const signed = (x, digits) => (x === null || x === undefined ? '—' : `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`);
const count = (x) => Math.round(x).toLocaleString('en-US');

/** A table: a title, a header row, rows of cells, and which columns are text (left-aligned). */
function figuresTable(results) {
  return {
    title: 'Figures (medians over the rounds)',
    header: ['scenario', 'conns', 'req/s', '±', 'p50 ms', 'p99 ms', 'p99.9 ms', 'cpu', 'µs/req', 'RSS MiB', 'errors'],
    text: [0],
    rows: results.map((s) => [
      s.name, String(s.connections), count(s.requestsPerSec), s.spread === null ? '—' : `${Math.round(s.spread * 50)}%`,
      fixed(s.latencyMs.p50, 3), fixed(s.latencyMs.p99, 3), fixed(s.latencyMs.p999, 3),
      s.serverCpu === null ? '—' : `${Math.round(s.serverCpu.utilisation * 100)}%`, fixed(s.serverCpu?.usPerRequest, 0),
      fixed(s.rssMiB, 1), String(s.errors),
    ]),
  };
}

/** Ratios of every scenario to one reference: its baseline, the field's floor, or nginx. */
function ratioTable(results, key, title) {
  const withBaseline = key === 'baseline';
  return {
    title,
    header: ['scenario', ...(withBaseline ? ['against'] : []), '×req/s', '×p50', '×p99', '×p99.9', '×µs/req', '×RSS', '+p50 ms'],
    text: withBaseline ? [0, 1] : [0],
    rows: results.map((s) => {
      const r = s.ratios[key];
      const against = r?.against ?? (withBaseline ? s.baseline : s.references?.[key]) ?? '—';
      return [
        s.name, ...(withBaseline ? [against] : []),
        fixed(r?.throughput, 2), fixed(r?.p50, 2), fixed(r?.p99, 2), fixed(r?.p999, 2), fixed(r?.cpuPerRequest, 2), fixed(r?.rss, 2),
        r === null || r === undefined || against === s.name ? '—' : signed(r.addedP50Ms, 3),
      ];
    }),
  };
}

/** The four tables of a run, in the order they are printed and written. */
export function tables(results) {
  return [
    figuresTable(results),
    ratioTable(results, 'stream', 'Ratios to the field\'s floor: bare-proxy-stream (the -c1 rows: bare-proxy-stream-c1)'),
    ratioTable(results, 'nginx', 'Ratios to nginx (the -c1 rows: nginx-c1)'),
    ratioTable(results, 'baseline', 'Ratios to each scenario\'s baseline'),
  ];
}

/** A table as aligned columns for a terminal. */
export function renderText(t) {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (t.text.includes(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [t.title, line(t.header), widths.map((w) => '-'.repeat(w)).join('  '), ...t.rows.map(line)].join('\n');
}

/** A table as GitHub-flavoured Markdown, numbers right-aligned. */
export function renderMarkdown(t) {
  const row = (cells) => `| ${cells.join(' | ')} |`;
  return [`**${t.title}**`, '', row(t.header), row(t.header.map((_, i) => (t.text.includes(i) ? '---' : '---:'))), ...t.rows.map(row)].join('\n');
}

/** One line per aim: its value, its bound, met or missed and by how much, the per-round values. */
export function aimLine(a) {
  const bound = a.min !== null ? `minimum ${a.min.toFixed(2)}${a.goal === null ? '' : `, goal ${a.goal.toFixed(2)}`}`
    : a.metric === 'addedP50Ms' ? `< ${a.max} ms` : `maximum ${a.max.toFixed(2)}`;
  const head = `aim ${a.scenario}: ${a.label}`;
  if (a.pass === null) return `${head} (${bound}) — not measured: ${a.against} did not run`;
  const by = (x) => Math.abs(x).toFixed(3);
  const verdict = {
    'meets goal': () => `meets goal by ${by(a.value - a.goal)}`,
    'meets minimum': () => `meets minimum by ${by(a.margin)}${a.goal === null ? '' : `, ${by(a.goal - a.value)} short of the goal`}`,
    'meets aim': () => `meets aim by ${by(a.margin)}`,
  }[a.status]?.() ?? `${a.status}: missed by ${by(a.margin)}`;
  const rounds = a.perRound.length > 1 ? `; per round ${a.perRound.map((v) => (v === null ? '—' : v)).join(' ')}` : '';
  return `${head} = ${a.value} (${bound}) — ${verdict}${rounds}`;
}

// ---------------------------------------------------------------------------------------------
// The chart: two panels of horizontal bars per scenario, drawn as SVG text.

const escapeXml = (s) => String(s).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]);

const ROW = 22;
const LABEL_W = 210;
const PANEL_W = 300;
const GAP = 60;
const TOP = 96;

/** Bars for one panel; `value` per scenario may be null (drawn as "—"). */
function panel({ x, title, results, value, format, scaleMax, rules }) {
  const scale = (v) => (v / scaleMax) * PANEL_W;
  const parts = [`<text x="${x}" y="${TOP - 10}" class="h">${escapeXml(title)}</text>`];
  results.forEach((s, i) => {
    const y = TOP + i * ROW;
    const v = value(s);
    const cls = s.target.startsWith('gateway') ? 'ours' : 'field';
    if (v === null) parts.push(`<text x="${x + 4}" y="${y + 15}" class="v">—</text>`);
    else {
      const w = Math.max(1, scale(Math.min(v, scaleMax)));
      parts.push(`<rect x="${x}" y="${y + 4}" width="${w.toFixed(1)}" height="${ROW - 8}" class="${cls}"/>`,
        `<text x="${(x + w + 4).toFixed(1)}" y="${y + 15}" class="v">${escapeXml(format(v))}</text>`);
    }
  });
  const bottom = TOP + results.length * ROW;
  for (const { at, label } of rules) {
    if (at > scaleMax) continue;
    const rx = (x + scale(at)).toFixed(1);
    parts.push(`<line x1="${rx}" y1="${TOP}" x2="${rx}" y2="${bottom}" class="rule"/>`,
      `<text x="${rx}" y="${bottom + 14}" class="r" text-anchor="middle">${escapeXml(label)}</text>`);
  }
  return parts.join('\n');
}

/** A thin line across the chart where the connection count changes (the -c1 group). */
function separators(results, width) {
  return results.flatMap((r, i) => (i > 0 && r.connections !== results[i - 1].connections
    ? [`<line x1="10" y1="${TOP + i * ROW}" x2="${width - 10}" y2="${TOP + i * ROW}" class="sep"/>`] : []));
}

/**
 * The chart of a run: per scenario, requests/s as a ratio to the field's floor (bare-proxy-stream,
 * or its one-connection run for the -c1 rows) and the server's CPU µs per request. Gateway bars
 * and field bars have different colours; a line marks 1.0 and the floor's CPU per request.
 */
export function chartSvg(report, { short }) {
  const results = report.scenarios;
  const ratios = results.map((s) => s.ratios.stream?.throughput ?? null).filter((v) => v !== null);
  const cpu = results.map((s) => s.serverCpu?.usPerRequest ?? null).filter((v) => v !== null);
  const ratioMax = Math.max(1.2, ...ratios) * 1.15;
  const cpuMax = Math.max(1, ...cpu) * 1.15;
  const floorCpu = results.find((s) => s.name === 'bare-proxy-stream')?.serverCpu?.usPerRequest ?? null;
  const width = LABEL_W + 2 * PANEL_W + GAP + 70;
  const height = TOP + results.length * ROW + 40;
  const s = report.settings;
  const subtitle = `${report.date.slice(0, 16).replace('T', ' ')} UTC · ${report.git.commit ?? 'no commit'} · ${report.machine.cpus} CPU · node ${report.node} · ` +
    `${report.loadGenerator.name} · ${s.rounds} round(s) × ${s.durationSec} s · ${s.connections} connections${short ? ' · a short run: indicative only' : ''}`;
  const labels = results.map((r, i) => `<text x="${LABEL_W - 8}" y="${TOP + i * ROW + 15}" text-anchor="end" class="l">${escapeXml(r.name)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">
<style>
.t { font-size: 15px; font-weight: bold; } .s { fill: #555; } .h { font-weight: bold; } .l { fill: #222; } .v { fill: #333; font-size: 11px; }
.r { fill: #666; font-size: 10px; } .rule { stroke: #999; stroke-dasharray: 4 3; } .sep { stroke: #ddd; } .ours { fill: #2f6db5; } .field { fill: #9aa5b1; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="22" class="t">Portcullis bench: the gateway against the field</text>
<text x="10" y="40" class="s">${escapeXml(subtitle)}</text>
<rect x="10" y="52" width="10" height="10" class="ours"/><text x="24" y="61" class="s">Portcullis</text>
<rect x="100" y="52" width="10" height="10" class="field"/><text x="114" y="61" class="s">the field: upstream, nginx, bare proxies, fast-gateway</text>
<text x="${LABEL_W + 2 * PANEL_W + GAP + 60}" y="61" text-anchor="end" class="s">-c1 rows: one connection, ratios to bare-proxy-stream-c1</text>
${separators(results, width).join('\n')}
${labels.join('\n')}
${panel({ x: LABEL_W, title: 'requests/s ÷ bare-proxy-stream (higher is better)', results, value: (r) => r.ratios.stream?.throughput ?? null,
    format: (v) => v.toFixed(2), scaleMax: ratioMax, rules: [{ at: 1, label: '1.0' }] })}
${panel({ x: LABEL_W + PANEL_W + GAP, title: 'CPU µs per request (lower is better)', results, value: (r) => r.serverCpu?.usPerRequest ?? null,
    format: (v) => v.toFixed(0), scaleMax: cpuMax, rules: floorCpu === null ? [] : [{ at: floorCpu, label: 'bare-proxy-stream' }] })}
</svg>
`;
}

// ---------------------------------------------------------------------------------------------
// The docs section

/** True when the run used fewer rounds or seconds than the defaults: its figures are indicative only. */
function isShortRun(settings, defaults) {
  return settings.rounds < defaults.rounds || settings.durationSec < defaults.durationSec || settings.warmupSec < defaults.warmupSec;
}

/** The Markdown that goes between the markers: what ran where, the chart, the tables, the aims. */
export function markdownSection(report, { defaults, svgName }) {
  const s = report.settings;
  const m = report.machine;
  const lines = [
    MARK_START,
    '<!-- Written by `npm run bench -- --report`; everything between these markers is replaced on the next run. -->',
    '',
    `Run of ${report.date.slice(0, 16).replace('T', ' ')} UTC on commit \`${report.git.commit ?? 'unknown'}\`${report.git.srcDirty ? ' (with uncommitted changes in src/)' : ''}: ` +
      `${m.cpus} × ${m.cpuModel ?? 'unknown CPU'}, ${m.memoryGiB} GiB, Linux ${m.release}; Node ${report.node}; ` +
      `${report.loadGenerator.name} ${report.loadGenerator.version}${report.nginx === null ? '' : `; nginx ${report.nginx}`}. ` +
      `${s.rounds} round(s) × ${s.durationSec} s measured (warmup ${s.warmupSec} s in round 1, ${s.rewarmSec} s after), ` +
      `${s.connections} connections; load average at the start ${m.loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')}.`,
    '',
    `Layout: ${report.layout.description}.`,
  ];
  if (isShortRun(s, defaults)) {
    lines.push('', `**A short run** (the defaults are ${defaults.rounds} rounds × ${defaults.durationSec} s with ${defaults.warmupSec} s warmup): its figures are indicative only.`);
  }
  for (const note of report.notes) lines.push('', note);
  lines.push('', `![Requests/s as a ratio to bare-proxy-stream, and CPU µs per request, per scenario](${svgName})`);
  for (const t of tables(report.scenarios)) lines.push('', renderMarkdown(t));
  if (report.aims.length > 0) lines.push('', '**Aims**', '', ...report.aims.map((a) => `- ${aimLine(a).replace(/^aim /, '')}`));
  lines.push('', MARK_END);
  return lines.join('\n');
}

/** Fails when `docFile` has no marked section, so a --report run stops before measuring, not after. */
export function assertReportable(docFile) {
  sectionBounds(readFileSync(docFile, 'utf8'), docFile);
}

function sectionBounds(page, docFile) {
  const start = page.indexOf(MARK_START);
  const end = page.indexOf(MARK_END);
  if (start < 0 || end < start) throw new Error(`${docFile} has no "${MARK_START}" … "${MARK_END}" section to replace`);
  return { start, end: end + MARK_END.length };
}

/**
 * Replaces the marked section of `docFile` with this run's tables and writes the chart to
 * `svgFile` (linked from the section by its file name). Fails, writing nothing, when the page
 * lacks the markers.
 */
export function writeReport(report, { docFile, svgFile, defaults }) {
  const page = readFileSync(docFile, 'utf8');
  const { start, end } = sectionBounds(page, docFile);
  const section = markdownSection(report, { defaults, svgName: basename(svgFile) });
  writeFileSync(svgFile, chartSvg(report, { short: isShortRun(report.settings, defaults) }));
  writeFileSync(docFile, page.slice(0, start) + section + page.slice(end));
}
