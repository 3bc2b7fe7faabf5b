import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TSchema } from '@sinclair/typebox';

/** The repository root (this file is compiled to dist/test/harness/). */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface DefaultsToCheck {
  /** The kind's selector value (`gcra`, `redis`), as the docs name it. */
  readonly type: string;
  /** Every option's default, by option name. */
  readonly defaults: Readonly<Record<string, unknown>>;
  /** The docs page, relative to the repository root. */
  readonly docs: string;
  /** The kind's options schema (an object schema). */
  readonly schema: TSchema;
}

/**
 * Problems with a kind's documented defaults; empty when every default is documented with the same
 * value in its docs page and its schema. The docs page documents a default in either form:
 *
 * - a markdown table row naming the kind and the option in backticks, with the value in backticks
 *   in another cell: `| \`redis\` | \`timeoutMs\` | \`100\` | … |`;
 * - a line naming the option in backticks with the phrase `Default <value>.`
 *
 * The schema documents it as the option's `default` keyword or a `Default <value>.` phrase in its
 * description.
 */
export function checkDefaultsDocumented({ type, defaults, docs, schema }: DefaultsToCheck): string[] {
  const problems: string[] = [];
  const lines = readFileSync(`${ROOT}${docs}`, 'utf8').split('\n');
  const properties = (schema as { properties?: Record<string, { default?: unknown; description?: string }> }).properties ?? {};
  for (const [option, value] of Object.entries(defaults)) {
    const text = String(value);
    const cells = (line: string) => line.split('|').map((c) => c.trim());
    const inTable = lines.some((line) => {
      const row = cells(line);
      return line.trimStart().startsWith('|') && row.includes(`\`${type}\``) && row.includes(`\`${option}\``) && row.includes(`\`${text}\``);
    });
    const inProse = lines.some((line) => line.includes(`\`${option}\``) && line.includes(`Default ${text}.`));
    if (!inTable && !inProse) problems.push(`${type}.${option}: default ${text} is not documented in ${docs}`);
    const property = properties[option];
    if (property === undefined) { problems.push(`${type}.${option}: not in the kind's schema`); continue; }
    const inSchema = property.default !== undefined ? JSON.stringify(property.default) === JSON.stringify(value) : (property.description ?? '').includes(`Default ${text}.`);
    if (!inSchema) problems.push(`${type}.${option}: the schema does not give the default ${text}`);
  }
  return problems;
}
