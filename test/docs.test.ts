import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ADMIN_ERRORS } from '../src/admin/admin-errors.js';
import { DENIALS } from '../src/pipeline/denials.js';
import type { ProblemEntry } from '../src/pipeline/problem.js';
import { jsonSchema } from '../src/config/schema.js';

const read = (path: string): string => readFileSync(fileURLToPath(new URL(`../../${path}`, import.meta.url)), 'utf8');

describe('docs stay in sync with the code', () => {
  it('docs/errors.md lists exactly the codes of the denial catalogue, with their statuses and titles', () => {
    assertTableMatches(errorTables().get('') ?? new Map(), DENIALS);
  });

  it('docs/errors.md lists exactly the codes of the admin API catalogue in its own section, with their statuses and titles', () => {
    assertTableMatches(errorTables().get('Admin API errors') ?? new Map(), ADMIN_ERRORS);
  });

  it('docs/configuration.md documents every option of the schema', () => {
    const doc = read('docs/configuration.md');
    const missing = optionPaths(jsonSchema(), '').filter((path) => !doc.includes('`' + path + '`'));
    assert.deepEqual(missing, [], 'options missing from docs/configuration.md');
  });

  it('the README quick start is the two commands', () => {
    const readme = read('README.md');
    assert.ok(readme.includes('npm install && npm start'));
    assert.ok(readme.includes('npm test'));
  });
});

type Row = { status: number; title: string };

/** The code rows of docs/errors.md, by the `## ` section they are in ('' before the first). */
function errorTables(): Map<string, Map<string, Row>> {
  const sections = new Map<string, Map<string, Row>>();
  let section = '';
  for (const line of read('docs/errors.md').split('\n')) {
    if (line.startsWith('## ')) section = line.slice(3).trim();
    const m = /^\| `([a-z_]+)` \| (\d{3}) \| ([^|]+) \|/.exec(line);
    if (m?.[1] === undefined) continue;
    const rows = sections.get(section) ?? new Map<string, Row>();
    rows.set(m[1], { status: Number(m[2]), title: (m[3] ?? '').trim() });
    sections.set(section, rows);
  }
  return sections;
}

function assertTableMatches(rows: ReadonlyMap<string, Row>, catalogue: Readonly<Record<string, ProblemEntry>>): void {
  assert.deepEqual([...rows.keys()].sort(), Object.keys(catalogue).sort());
  for (const [code, entry] of Object.entries(catalogue)) {
    assert.deepEqual(rows.get(code), { status: entry.status, title: entry.title }, code);
  }
}

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  patternProperties?: Record<string, SchemaNode>;
  /** Type-selected variants (authenticators): `if: {type}`, `then: <that type's schema>`. */
  allOf?: { then?: SchemaNode }[];
}

/** Every option path a user can write, as docs spell it: `routes[].match.path`, `upstreams.<name>.timeoutMs`. */
function optionPaths(node: SchemaNode, prefix: string): string[] {
  const out = new Set<string>();
  const variants = [node, ...(node.allOf ?? []).flatMap((v) => (v.then === undefined ? [] : [v.then]))];
  for (const variant of variants) {
    for (const [key, child] of Object.entries(variant.properties ?? {})) {
      if (key === '$schema') continue;
      const path = prefix === '' ? key : `${prefix}.${key}`;
      for (const p of childPaths(child, path)) out.add(p);
    }
  }
  return [...out];
}

function childPaths(child: SchemaNode, path: string): string[] {
  if (child.properties !== undefined || child.allOf !== undefined) return optionPaths(child, path);
  if (child.patternProperties !== undefined) {
    const [inner] = Object.values(child.patternProperties);
    return inner === undefined ? [path] : childPaths(inner, `${path}.<name>`);
  }
  if (child.items?.properties !== undefined) return optionPaths(child.items, `${path}[]`);
  return [path];
}
