/**
 * The types an attribute rule's expression is checked against at load: CEL's value types, lists
 * and maps of them, `dyn` (known only when evaluated: claim values), and the objects the gateway
 * declares (`request`, `client`, `identity`), each with its fields.
 */
export type RuleType =
  | { readonly kind: 'bool' | 'int' | 'uint' | 'double' | 'string' | 'bytes' | 'null' | 'timestamp' | 'duration' | 'dyn' | 'type' }
  | { readonly kind: 'list'; readonly element: RuleType }
  | { readonly kind: 'map'; readonly key: RuleType; readonly value: RuleType }
  | { readonly kind: 'object'; readonly name: string; readonly fields: ReadonlyMap<string, RuleType> };

export const BOOL: RuleType = { kind: 'bool' };
export const INT: RuleType = { kind: 'int' };
export const UINT: RuleType = { kind: 'uint' };
export const DOUBLE: RuleType = { kind: 'double' };
export const STRING: RuleType = { kind: 'string' };
export const BYTES: RuleType = { kind: 'bytes' };
export const NULL: RuleType = { kind: 'null' };
export const TIMESTAMP: RuleType = { kind: 'timestamp' };
export const DURATION: RuleType = { kind: 'duration' };
export const DYN: RuleType = { kind: 'dyn' };
export const TYPE: RuleType = { kind: 'type' };

export const listOf = (element: RuleType): RuleType => ({ kind: 'list', element });
export const mapOf = (key: RuleType, value: RuleType): RuleType => ({ kind: 'map', key, value });
export const objectOf = (name: string, fields: Record<string, RuleType>): RuleType => ({ kind: 'object', name, fields: new Map(Object.entries(fields)) });

/** How a type reads in a message: `list(string)`, `map(string, dyn)`, `request`. */
export function typeName(t: RuleType): string {
  switch (t.kind) {
    case 'list': return `list(${typeName(t.element)})`;
    case 'map': return `map(${typeName(t.key)}, ${typeName(t.value)})`;
    case 'object': return t.name;
    default: return t.kind;
  }
}

export function isNumeric(t: RuleType): boolean {
  return t.kind === 'int' || t.kind === 'uint' || t.kind === 'double';
}

/** Whether a value of type `a` may stand where `b` is expected (dyn on either side is unknown until evaluated). */
export function assignable(a: RuleType, b: RuleType): boolean {
  if (a.kind === 'dyn' || b.kind === 'dyn') return true;
  if (a.kind === 'list' && b.kind === 'list') return assignable(a.element, b.element);
  if (a.kind === 'map' && b.kind === 'map') return assignable(a.key, b.key) && assignable(a.value, b.value);
  if (a.kind === 'object' && b.kind === 'object') return a.name === b.name;
  return a.kind === b.kind;
}

/** The common type of two (a list's elements, a conditional's branches): the type itself when they agree, else dyn. */
export function join(a: RuleType, b: RuleType): RuleType {
  if (a.kind === 'dyn') return b.kind === 'dyn' ? a : DYN;
  if (b.kind === 'dyn') return DYN;
  if (a.kind === 'list' && b.kind === 'list') return listOf(join(a.element, b.element));
  if (a.kind === 'map' && b.kind === 'map') return mapOf(join(a.key, b.key), join(a.value, b.value));
  return assignable(a, b) ? a : DYN;
}
