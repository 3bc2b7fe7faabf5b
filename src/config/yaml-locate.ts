import { isMap, isScalar, isSeq, type Document, type LineCounter, type Node as YamlNode } from 'yaml';
import type { ConfigPath } from './config-source.js';
import { optionPath, type ConfigProblem } from './errors.js';

/**
 * Builds located problems for a parsed YAML document: at the value of an option path, or at its key
 * with `atKey` (an unknown option), or at the nearest existing parent when the option is absent.
 * The config loader and the policy test files point at their mistakes through it.
 */
export function yamlLocator(doc: Document, lines: LineCounter, file: string): (path: ConfigPath, message: string, atKey?: boolean) => ConfigProblem {
  const locate = (path: ConfigPath): { node: YamlNode | null; key: YamlNode | null } => {
    let current: unknown = doc.contents;
    let key: YamlNode | null = null;
    for (const part of path) {
      if (isMap(current)) {
        const pair = current.items.find((p) => isScalar(p.key) && String(p.key.value) === String(part));
        if (pair === undefined) break;
        key = pair.key as YamlNode;
        current = pair.value;
      } else if (isSeq(current) && typeof part === 'number' && current.items[part] !== undefined) {
        key = null;
        current = current.items[part];
      } else break;
    }
    return { node: (current ?? null) as YamlNode | null, key };
  };
  return (path, message, atKey = false) => {
    const { node, key } = locate(path);
    const range = (atKey ? key?.range : null) ?? node?.range ?? key?.range;
    const pos = range === undefined || range === null ? { line: 1, col: 1 } : lines.linePos(range[0]);
    return { file, line: pos.line, column: pos.col, option: optionPath(path), message };
  };
}
