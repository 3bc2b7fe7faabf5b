import { isObject, readClaim, type ClaimPath, type Claims } from './claim-path.js';

/**
 * One place an identity part is read from: the claim's value itself (`take: value`), or the keys
 * or the values of an object claim (Keycloak 26 `organization: {"acme": {"id": "…"}}`), each value
 * optionally narrowed to one of its fields.
 */
export interface ClaimSource {
  readonly path: ClaimPath;
  readonly take: 'value' | 'keys' | 'values';
  /** With `take: values`: the path read in each value (values without it are skipped). */
  readonly field: ClaimPath | null;
  /** The source as the config wrote it, for reasons: `organization (keys)`. */
  readonly text: string;
}

/** Most keys or values taken from one object claim: more refuses the token (bounded work, never a silent cut). */
export const MAX_TAKEN = 256;
/** Most roles or scopes one identity part may hold after the union of its sources. */
export const MAX_LIST_VALUES = 1024;

/** What one source yields: `absent`, the values found (each a claim value), or why the claim cannot be used. */
export type Taken = { readonly present: false } | { readonly present: true; readonly values: readonly unknown[] } | { readonly problem: string };

const ABSENT: Taken = Object.freeze({ present: false });

/**
 * The values `source` yields from `claims`. A claim that is absent or null is absent; `keys` of
 * anything but an object, or `values` of anything but an object or array, is a problem (the
 * claim is there, in a shape the config did not expect). Iteration stops after MAX_TAKEN + 1
 * entries, so a huge object costs no more than that.
 */
export function takeFrom(claims: Claims, source: ClaimSource): Taken {
  const value = readClaim(claims, source.path);
  if (value === undefined || value === null) return ABSENT;
  if (source.take === 'value') return { present: true, values: [value] };
  if (source.take === 'keys' && !isObject(value)) return { problem: `${source.text}: the claim is not an object` };
  if (source.take === 'values' && !isObject(value) && !Array.isArray(value)) return { problem: `${source.text}: the claim is not an object or array` };
  const entries: unknown[] = [];
  if (Array.isArray(value)) {
    if (value.length > MAX_TAKEN) return { problem: `${source.text}: more than ${MAX_TAKEN} elements` };
    entries.push(...(value as unknown[]));
  } else {
    const object = value as Record<string, unknown>;
    // The object is no larger than the token or response it came from; the cap bounds what is taken from it.
    for (const key in object) {
      if (!Object.hasOwn(object, key)) continue;
      if (entries.length === MAX_TAKEN) return { problem: `${source.text}: more than ${MAX_TAKEN} keys` };
      entries.push(source.take === 'keys' ? key : object[key]);
    }
  }
  if (source.field === null) return { present: true, values: entries };
  const field = source.field;
  const values: unknown[] = [];
  for (const entry of entries) {
    const inner = readClaim(entry, field);
    if (inner !== undefined && inner !== null) values.push(inner);
  }
  return { present: true, values };
}

/**
 * A single-valued part (subject, tenant, tier): the first source present wins. A source that
 * yields several distinct values (an object with two keys where one tenant is expected) is
 * ambiguous and refused rather than guessed; one yielding none (an empty object) counts as absent.
 */
export function singleValue(claims: Claims, sources: readonly ClaimSource[]): { readonly value: unknown; readonly source: ClaimSource } | { readonly problem: string } | null {
  for (const source of sources) {
    const taken = takeFrom(claims, source);
    if ('problem' in taken) return taken;
    if (!taken.present) continue;
    const distinct = [...new Set(taken.values)];
    if (distinct.length === 0) continue;
    if (distinct.length > 1) return { problem: `${source.text}: ${distinct.length} values where one is expected (ambiguous)` };
    return { value: distinct[0], source };
  }
  return null;
}

/**
 * A list part (roles, scopes): the union of every source, first occurrence first. The claim's own
 * value is a space-separated string (OAuth `scope`, RFC 8693 §4.2) or an array of strings
 * (`permissions`, `groups`); a value taken from an object is one name, or an array of names
 * (`resource_access` values' `roles`). Elements that are not strings, and empty strings, are not
 * names and are ignored. Every element is kept as it is (Okta's `"Order Clerks"`): authorization
 * compares real values.
 */
export function listValues(claims: Claims, sources: readonly ClaimSource[]): readonly string[] | { readonly problem: string } {
  const out = new Set<string>();
  const add = (name: unknown, source: ClaimSource): string | null => {
    if (typeof name !== 'string' || name === '') return null;
    out.add(name);
    return out.size > MAX_LIST_VALUES ? `${source.text}: more than ${MAX_LIST_VALUES} values` : null;
  };
  const addAll = (items: readonly unknown[], source: ClaimSource): string | null => {
    if (items.length > MAX_LIST_VALUES) return `${source.text}: more than ${MAX_LIST_VALUES} values`;
    for (const item of items) {
      const problem = add(item, source);
      if (problem !== null) return problem;
    }
    return null;
  };
  for (const source of sources) {
    const taken = takeFrom(claims, source);
    if ('problem' in taken) return taken;
    if (!taken.present) continue;
    for (const value of taken.values) {
      let problem: string | null = null;
      if (typeof value === 'string') {
        problem = source.take === 'value' ? addAll(value.split(' ').filter((s) => s !== ''), source) : add(value, source);
      } else if (Array.isArray(value)) problem = addAll(value, source);
      // Another type (an object where names are expected) yields no names.
      if (problem !== null) return { problem };
    }
  }
  return Object.freeze([...out]);
}
