// The Grafana dashboard in examples/grafana cannot rot: it is valid JSON of a dashboard, and every
// PromQL expression in it (panels, variables, annotations) names only metrics a real gateway
// exposes on /metrics, with only the labels docs/operations.md documents for them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startEchoUpstream, type EchoUpstream } from './harness/echo.js';
import { startGateway, type TestGateway } from './harness/gateway.js';

const read = (path: string): string => readFileSync(fileURLToPath(new URL(`../../${path}`, import.meta.url)), 'utf8');

interface Panel {
  readonly type?: string;
  readonly title?: string;
  readonly panels?: readonly Panel[];
  readonly targets?: readonly { readonly expr?: unknown; readonly refId?: unknown }[];
  readonly gridPos?: { readonly h: number; readonly w: number; readonly x: number; readonly y: number };
}

/** Every PromQL expression in a dashboard: panel targets, template variable queries, annotations. */
function expressions(dashboard: Record<string, unknown>): string[] {
  const found: string[] = [];
  const walk = (value: unknown, key: string): void => {
    if (typeof value === 'string') {
      if (key === 'expr' || ((key === 'query' || key === 'definition') && value.includes('portcullis_'))) found.push(value);
      return;
    }
    if (Array.isArray(value)) { for (const v of value) walk(v, key); return; }
    if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) walk(v, k);
  };
  walk(dashboard, '');
  return found;
}

/** The `expr:` of every alerting rule the README suggests. */
function readmeExpressions(): string[] {
  return [...read('examples/grafana/README.md').matchAll(/^\s*expr: (.+)$/gm)].map((m) => m[1] ?? '');
}

/** Metric families of an exposition text, from its `# TYPE` lines, with the sample names each gives. */
function familiesOf(text: string): Map<string, string[]> {
  const families = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m === null) continue;
    const [, name = '', type] = m;
    families.set(name, type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`]
      : type === 'summary' ? [name, `${name}_sum`, `${name}_count`] : [name]);
  }
  return families;
}

/** The labels docs/operations.md gives each metric (its metrics table), by metric name. */
function documentedLabels(): Map<string, string[]> {
  const labels = new Map<string, string[]>();
  for (const line of read('docs/operations.md').split('\n')) {
    if (!line.startsWith('| `portcullis_')) continue;
    const cells = line.split('|').map((c) => c.trim());
    labels.set((cells[1] ?? '').replaceAll('`', ''), [...(cells[3] ?? '').matchAll(/`([a-z_]+)`/g)].map((m) => m[1] ?? ''));
  }
  return labels;
}

/** Labels every series has once scraped, and the histogram bucket bound. */
const SCRAPE_LABELS = ['instance', 'job', 'le'];

describe('the Grafana dashboard in examples/grafana', () => {
  let echo: EchoUpstream;
  let gw: TestGateway;
  let exposed: Map<string, string[]>;
  const dashboard = JSON.parse(read('examples/grafana/portcullis-dashboard.json')) as Record<string, unknown>;

  before(async () => {
    echo = await startEchoUpstream();
    gw = await startGateway({
      upstreams: { echo: { targets: [echo.url] } },
      routes: [{ name: 'open', match: { path: '/open' }, upstream: 'echo', public: true }],
    });
    await (await fetch(`${gw.url}/open`)).arrayBuffer();
    exposed = familiesOf(await (await fetch(`${gw.adminUrl}/metrics`)).text());
  });
  after(async () => {
    await gw.close();
    await echo.close();
  });

  it('is a dashboard: a title, a uid, panels with targets and positions, a Prometheus data source variable', () => {
    assert.equal(typeof dashboard.title, 'string');
    assert.match(String(dashboard.uid), /^[a-z0-9-]{1,40}$/);
    const templating = dashboard.templating as { list: { name: string; type: string; query: unknown }[] };
    assert.ok(templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource' && v.query === 'prometheus'));
    const panels = dashboard.panels as Panel[];
    const ids = new Set<unknown>();
    for (const panel of panels) {
      ids.add((panel as { id?: unknown }).id);
      assert.ok(panel.gridPos !== undefined && panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title}: position`);
      if (panel.type === 'row') continue;
      assert.ok((panel.targets ?? []).length > 0, `${panel.title}: no query`);
      for (const target of panel.targets ?? []) assert.equal(typeof target.refId, 'string', `${panel.title}: refId`);
    }
    assert.equal(ids.size, panels.length, 'panel ids are unique');
  });

  it('queries only metrics the gateway exposes, and so do the alerts its README suggests', () => {
    const samples = new Set([...exposed.values()].flat());
    const exprs = [...expressions(dashboard), ...readmeExpressions()];
    assert.ok(exprs.length >= 30, `${exprs.length} expressions`);
    const used = new Set<string>();
    for (const expr of exprs) {
      for (const [name] of expr.matchAll(/\bportcullis_[a-zA-Z0-9_:]+/g)) {
        used.add(name);
        assert.ok(samples.has(name), `${name} in ${expr} is not on /metrics`);
      }
    }
    // The metrics the issue asks an operator to alert on are all on the dashboard.
    for (const name of ['portcullis_denials_total', 'portcullis_authentications_total', 'portcullis_rate_limit_decisions_total',
      'portcullis_api_key_store_up', 'portcullis_jwks_up', 'portcullis_jwks_last_success_timestamp_seconds', 'portcullis_audit_dropped_total']) {
      assert.ok(used.has(name), `${name} is not on the dashboard`);
    }
  });

  it('filters and groups only by labels docs/operations.md documents for the metrics it queries', () => {
    const documented = documentedLabels();
    const familyOf = (sample: string): string => [...exposed].find(([, names]) => names.includes(sample))?.[0] ?? sample;
    const labelsOf = (sample: string): string[] => {
      const family = familyOf(sample);
      // The process and runtime metrics are documented as one row.
      const row = documented.get(family) ?? (/^portcullis_(process|nodejs)_/.test(family) ? [] : undefined);
      assert.ok(row !== undefined, `${family} has no row in the metrics table of docs/operations.md`);
      return [...row, ...SCRAPE_LABELS];
    };
    for (const expr of [...expressions(dashboard), ...readmeExpressions()]) {
      const inExpr = new Set<string>(SCRAPE_LABELS);
      for (const m of expr.matchAll(/\b(portcullis_[a-zA-Z0-9_:]+)(?:\{([^}]*)\})?/g)) {
        const labels = labelsOf(m[1] ?? '');
        for (const l of labels) inExpr.add(l);
        for (const [, label = ''] of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) {
          assert.ok(labels.includes(label), `${m[1]} has no label ${label}: ${expr}`);
        }
      }
      for (const m of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
        for (const label of (m[1] ?? '').split(',').map((l) => l.trim()).filter((l) => l !== '')) {
          assert.ok(inExpr.has(label), `no metric of this expression has the label ${label}: ${expr}`);
        }
      }
    }
  });

  it('is described in its README, panel by panel', () => {
    const readme = read('examples/grafana/README.md');
    assert.match(readme, /portcullis-dashboard\.json/);
    for (const panel of dashboard.panels as Panel[]) {
      if (panel.type !== 'row') assert.ok(readme.includes(String(panel.title)), `README does not mention the panel "${panel.title}"`);
    }
  });
});
