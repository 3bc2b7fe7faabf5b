// Checks that a kind's declared defaults are the ones its docs page and its schema state.
//
// The docs format: under a heading that contains the word "defaults" and names the kind as a code
// span (`type: jwt`, `apiKeys`, `gcra`, …), a table with one row per option, the option's path
// as a code span in the first column and its default as a code span in the second:
//
//   ### `type: jwt` defaults
//   | option | default | why |
//   | --- | --- | --- |
//   | `clockSkewMs` | `30000` | … |
//
// Or, without such a heading: a table row naming the kind and the option in backticks with the
// value in backticks in another cell (`| \`redis\` | \`timeoutMs\` | \`100\` | … |`), or a line
// naming the option in backticks with the phrase `Default <value>.`
//
// The schema: the option (a dot path, e.g. `jwks.timeoutMs`, followed through `properties`) must
// exist; its `default` keyword, if any, must equal the value, and its description must say
// "Default <value>" — or, for a member of an object, the object's description "<member> <value>".
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** What is checked: a kind's selector value, its defaults by option path, its docs page and schema. */
export interface KindLike {
  readonly type: string;
  readonly defaults: Readonly<Record<string, unknown>>;
  readonly docs: string;
  readonly schema: unknown;
}

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A default as the docs and descriptions write it. */
export function formatDefault(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The rows of the kind's defaults table: option path → the default cell's code span. */
export function documentedDefaults(markdown: string, type: string): Map<string, string> | null {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^#+ /.test(l) && /defaults/i.test(l) && (l.includes(`\`${type}\``) || l.includes(`\`type: ${type}\``)));
  if (start === -1) return null;
  const rows = new Map<string, string>();
  for (const line of lines.slice(start + 1)) {
    if (/^#+ /.test(line)) break;
    const cells = line.split('|').map((c) => c.trim());
    const option = /^`([^`]+)`$/.exec(cells[1] ?? '')?.[1];
    const value = /^`([^`]*)`$/.exec(cells[2] ?? '')?.[1];
    if (option !== undefined && value !== undefined) rows.set(option, value);
  }
  return rows;
}

/** A default documented without a defaults heading: a table row naming kind, option and value, or a `Default <value>.` line. */
function documentedInline(lines: readonly string[], type: string, option: string, value: string): boolean {
  const inTable = lines.some((line) => {
    const row = line.split('|').map((c) => c.trim());
    return line.trimStart().startsWith('|') && row.includes(`\`${type}\``) && row.includes(`\`${option}\``) && row.includes(`\`${value}\``);
  });
  return inTable || lines.some((line) => line.includes(`\`${option}\``) && line.includes(`Default ${value}.`));
}

interface SchemaNode { readonly properties?: Record<string, SchemaNode>; readonly description?: string; readonly default?: unknown }

/** Every disagreement between a kind's defaults, its docs page and its schema (empty when they agree). */
export function checkDefaultsDocumented(kind: KindLike): string[] {
  const problems: string[] = [];
  const markdown = readFileSync(ROOT + kind.docs, 'utf8');
  const rows = documentedDefaults(markdown, kind.type);
  const lines = markdown.split('\n');
  for (const [option, value] of Object.entries(kind.defaults)) {
    const want = formatDefault(value);
    if (rows !== null) {
      const documented = rows.get(option);
      if (documented === undefined) problems.push(`${kind.docs}: ${kind.type} defaults table has no row for \`${option}\``);
      else if (documented !== want) problems.push(`${kind.docs}: ${kind.type} \`${option}\` documented as \`${documented}\`, declared ${want}`);
    } else if (!documentedInline(lines, kind.type, option, String(value))) {
      problems.push(`${kind.type}.${option}: default ${String(value)} is not documented in ${kind.docs}`);
    }

    let parent: SchemaNode | null = null;
    let node: SchemaNode | undefined = kind.schema as SchemaNode;
    const path = option.split('.');
    for (const part of path) {
      parent = node ?? null;
      node = node?.properties?.[part];
    }
    if (node === undefined) { problems.push(`${kind.type} schema has no option ${option}`); continue; }
    if ('default' in node && JSON.stringify(node.default) !== JSON.stringify(value)) problems.push(`${kind.type} schema default of ${option} is ${JSON.stringify(node.default)}, declared ${want}`);
    const leaf = path[path.length - 1] ?? option;
    const described = (node.description ?? '').includes(`Default ${want}`) || (parent?.description ?? '').includes(`${leaf} ${want}`);
    if (!described) problems.push(`${kind.type} schema description of ${option} does not say "Default ${want}"`);
  }
  return problems;
}
