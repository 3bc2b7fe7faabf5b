import { Type, type Static } from '@sinclair/typebox';
import { ClaimPath as ClaimPathSchema, CLAIM_KEY_PATTERN, HEADER_NAME_PATTERN, PATTERN_MESSAGE, strict } from '../../config/schema-parts.js';
import type { AuthenticatorCompileContext } from '../authenticator-kind.js';
import { compileClaimPath, readClaim, type ClaimPath, type Claims } from './claim-path.js';
import type { ClaimMapping } from './claim-mapping.js';
import { MAX_LIST_VALUES, type ClaimSource } from './claim-source.js';

const ObjectSource = Type.Object({
  claim: ClaimPathSchema,
  take: Type.Unsafe<'keys' | 'values'>({ type: 'string', enum: ['keys', 'values'], description: 'keys: the object\'s keys. values: its values (an array\'s elements).' }),
  field: Type.Optional(ClaimPathSchema),
}, {
  additionalProperties: false,
  description: 'Names taken from an object claim: its keys, or its values, each value narrowed to `field` when set (take: values only).',
  [PATTERN_MESSAGE]: 'must be an object source { claim, take: keys or values, field }',
});

const Source = Type.Union([ClaimPathSchema, ObjectSource], { [PATTERN_MESSAGE]: 'must be claim paths (names, dotted paths or JSON pointers) or object sources { claim, take: keys or values, field }' });
const Sources = (description: string) => Type.Optional(Type.Union([
  ClaimPathSchema,
  ObjectSource,
  Type.Array(Source, { minItems: 1, maxItems: 8 }),
], { description }));

type Primitive = string | number | boolean;
const PRIMITIVE_TYPES = ['string', 'number', 'boolean'];
const RequiredValue = Type.Unsafe<Primitive | Primitive[]>({
  type: [...PRIMITIVE_TYPES, 'array'], maxLength: 1024, minItems: 1, maxItems: 32,
  items: { type: PRIMITIVE_TYPES, maxLength: 1024 },
  description: 'The value the claim must have, or a list of accepted values (string, number or boolean; compared exactly). An array claim must contain one.',
});

/**
 * The options of claim mapping and claim checks, shared by every authenticator whose credential
 * carries claims (`jwt`, `introspection`): spread into the kind's schema.
 */
export const CLAIM_RULE_FIELDS = {
  claims: Type.Optional(strict({
    subject: Sources('Where the subject is read; with several sources the first present wins. Must be a printable ASCII string.'),
    roles: Sources('Where roles are read; with several sources, their union.'),
    scopes: Sources('Where scopes are read (a space-separated string such as scope, or an array such as permissions); with several sources, their union.'),
    tenant: Sources('Where the tenant is read; with several sources the first present wins. An object source yielding several values is ambiguous and refused.'),
    tier: Sources('Where the rate-limit tier is read; the first source present wins.'),
  }, 'Where the identity is read from: a claim path (name, dotted path or JSON pointer), an object source { claim, take, field }, or a list of them. Defaults: subject sub, roles roles, scopes scope, no tenant, no tier (the rate-limit tier, see docs/rate-limits.md).')),
  forwardClaims: Type.Optional(Type.Record(Type.String({ pattern: HEADER_NAME_PATTERN }), ClaimPathSchema, { additionalProperties: false, description: 'Header name → claim path: claims sent upstream as headers.' })),
  requiredClaims: Type.Optional(Type.Array(ClaimPathSchema, { maxItems: 32, description: 'Claims that must be present and not null.' })),
  requiredClaimValues: Type.Optional(Type.Record(Type.String({ pattern: CLAIM_KEY_PATTERN }), RequiredValue, {
    additionalProperties: false, maxProperties: 32,
    description: 'Claim path → the value it must have, or a list of accepted values; an array claim must contain one. Strings, numbers and booleans, compared exactly.',
  })),
  authorizedParties: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 256 }), {
    minItems: 1, maxItems: 100, uniqueItems: true,
    description: 'Clients the token must have been issued to: its azp, else client_id, else cid, must be listed (absent: refused), and those present must name the same client.',
  })),
  singleAudience: Type.Optional(Type.Boolean({ description: 'Refuse tokens whose aud has more than one value. Default false.' })),
};

/** The claim options alone, as an object schema (a kind spreads CLAIM_RULE_FIELDS into its own). */
export const ClaimRulesSchema = Type.Object(CLAIM_RULE_FIELDS, { additionalProperties: false });

/** The claim options as the config wrote them (validated by the kind's schema). */
export type RawClaimRules = Static<typeof ClaimRulesSchema>;

/** Documented defaults of the claim options, spread into each kind's defaults table. */
export const CLAIM_RULE_DEFAULTS = Object.freeze({
  'claims.subject': 'sub',
  'claims.roles': 'roles',
  'claims.scopes': 'scope',
  singleAudience: false,
});

/** One `requiredClaimValues` entry: the claim and the values it may have. */
export interface RequiredClaimValue {
  readonly path: ClaimPath;
  readonly accepted: ReadonlySet<Primitive>;
}

/** Claim mapping and checks, compiled once per authenticator. */
export interface ClaimRules {
  readonly mapping: ClaimMapping;
  readonly requiredClaims: readonly ClaimPath[];
  readonly requiredValues: readonly RequiredClaimValue[];
  /** Clients tokens may have been issued to (azp, client_id, cid); null: any. */
  readonly authorizedParties: ReadonlySet<string> | null;
  readonly singleAudience: boolean;
}

/** What compiling claim rules reads of the authenticator's compile context. */
export type ClaimRulesContext = Pick<AuthenticatorCompileContext, 'at' | 'loaded' | 'problems' | 'reserved'>;

/**
 * Compiles the claim options of one authenticator, or returns null after adding the problems
 * found (a malformed JSON pointer, `field` with `take: keys`, a forwarded header the gateway
 * sets), each located at its option.
 */
export function compileClaimRules(raw: RawClaimRules, context: ClaimRulesContext): ClaimRules | null {
  const { at, loaded, problems } = context;
  const before = problems.length;
  const path = (text: string, where: (string | number)[]): ClaimPath => {
    const compiled = compileClaimPath(text);
    if (typeof compiled !== 'string') return compiled;
    problems.push(loaded.problem(where, compiled));
    return { text, pointer: null, dotted: [] };
  };
  const claims = raw.claims ?? {};
  const sources = (part: keyof typeof claims, fallback: string | null): ClaimSource[] => {
    const value = claims[part] ?? fallback;
    if (value === null) return [];
    const list = Array.isArray(value) ? value : [value];
    return list.map((source, i) => {
      const where = Array.isArray(value) ? at('claims', part, i) : at('claims', part);
      if (typeof source === 'string') return { path: path(source, where), take: 'value', field: null, text: source };
      if (source.field !== undefined && source.take === 'keys') problems.push(loaded.problem([...where, 'field'], 'applies to take: values only (a key has no fields); remove it, or take values'));
      const field = source.field === undefined ? null : path(source.field, [...where, 'field']);
      return {
        path: path(source.claim, [...where, 'claim']), take: source.take, field,
        text: `${source.claim} (${source.take}${field === null ? '' : `, field ${field.text}`})`,
      };
    });
  };
  const mapping: ClaimMapping = {
    subject: sources('subject', CLAIM_RULE_DEFAULTS['claims.subject']),
    roles: sources('roles', CLAIM_RULE_DEFAULTS['claims.roles']),
    scopes: sources('scopes', CLAIM_RULE_DEFAULTS['claims.scopes']),
    tenant: sources('tenant', null),
    tier: sources('tier', null),
    headers: forwardedHeaders(raw, context, path),
  };
  const requiredClaims = (raw.requiredClaims ?? []).map((text, i) => path(text, at('requiredClaims', i)));
  const requiredValues = Object.entries(raw.requiredClaimValues ?? {}).map(([text, value]): RequiredClaimValue => ({
    path: path(text, at('requiredClaimValues', text)),
    accepted: new Set(Array.isArray(value) ? value : [value]),
  }));
  if (problems.length > before) return null;
  return Object.freeze({
    mapping: Object.freeze(mapping),
    requiredClaims: Object.freeze(requiredClaims),
    requiredValues: Object.freeze(requiredValues),
    authorizedParties: raw.authorizedParties === undefined ? null : new Set(raw.authorizedParties),
    singleAudience: raw.singleAudience ?? CLAIM_RULE_DEFAULTS.singleAudience,
  });
}

function forwardedHeaders(raw: RawClaimRules, context: ClaimRulesContext, path: (text: string, where: (string | number)[]) => ClaimPath): (readonly [string, ClaimPath])[] {
  const { at, loaded, problems, reserved } = context;
  const headers: (readonly [string, ClaimPath])[] = [];
  for (const [header, text] of Object.entries(raw.forwardClaims ?? {})) {
    const lower = header.toLowerCase();
    if (reserved.has(lower) || lower.startsWith('x-client-cert-') || lower.startsWith('x-portcullis-')) {
      problems.push(loaded.problem(at('forwardClaims', header), `${header} is a header the gateway sets or relies on; forward the claim under another name`, true));
    } else headers.push([lower, path(text, at('forwardClaims', header))]);
  }
  return headers;
}

/**
 * The `aud` claim as a list: a string is one audience, an array its string elements; anything else
 * none. Authenticators check `aud` against their accepted audiences before checkClaimRules runs.
 */
export function audienceList(aud: unknown): readonly string[] {
  if (typeof aud === 'string') return [aud];
  return Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [];
}

/**
 * Why `claims` break the rules, as `<reason>: <detail>` for the audit record, or null when they
 * keep them. `audiences` is the token's audience list (see audienceList). Checks, in order:
 * - `singleAudience`: more than one audience → `audience_multiple`;
 * - several audiences and no `azp` (OpenID Connect Core §3.1.3.7), unless `authorizedParties`
 *   names the clients (then the check below decides) → `authorized_party_missing`;
 * - `authorizedParties`: `azp`, else `client_id`, else `cid` (the same fact in OpenID Connect,
 *   RFC 9068/RFC 7662 and Okta) must be a listed string, and the others, when present, the same
 *   → `authorized_party_missing` / `authorized_party_mismatch`;
 * - `requiredClaims` present and not null → `claim_missing`;
 * - `requiredClaimValues` → `claim_value_mismatch`.
 * Work is bounded: an array claim is compared over at most MAX_LIST_VALUES elements.
 */
export function checkClaimRules(claims: Claims, rules: ClaimRules, audiences: readonly string[]): string | null {
  if (audiences.length > 1) {
    if (rules.singleAudience) return `audience_multiple: aud has ${audiences.length} values; singleAudience accepts one`;
    if (rules.authorizedParties === null && (claims.azp === undefined || claims.azp === null)) {
      return `authorized_party_missing: aud has ${audiences.length} values and no azp names the client the token was issued to (OpenID Connect Core 3.1.3.7)`;
    }
  }
  if (rules.authorizedParties !== null) {
    const named = PARTY_CLAIMS.find((name) => claims[name] !== undefined && claims[name] !== null);
    if (named === undefined) return 'authorized_party_missing: no azp, client_id or cid claim';
    const party = claims[named];
    if (typeof party !== 'string') return `authorized_party_mismatch: ${named} is not a string`;
    if (!rules.authorizedParties.has(party)) return `authorized_party_mismatch: ${named} ${JSON.stringify(party.slice(0, 100))} is not in authorizedParties`;
    // Every other name of the client must agree: a listed azp beside the client_id of another
    // client (a claim mapper that hardcodes azp) does not say whose token it is.
    const other = PARTY_CLAIMS.find((name) => name !== named && claims[name] !== undefined && claims[name] !== null && claims[name] !== party);
    if (other !== undefined) return `authorized_party_mismatch: ${named} and ${other} name different clients`;
  }
  for (const path of rules.requiredClaims) {
    const value = readClaim(claims, path);
    if (value === undefined || value === null) return `claim_missing: ${path.text}`;
  }
  for (const { path, accepted } of rules.requiredValues) {
    const problem = valueProblem(readClaim(claims, path), accepted);
    if (problem !== null) return `claim_value_mismatch: ${path.text} ${problem}`;
  }
  return null;
}

/** The claims that name the client a token was issued to: OpenID Connect, RFC 9068 / RFC 7662, Okta. */
const PARTY_CLAIMS = ['azp', 'client_id', 'cid'] as const;

function valueProblem(value: unknown, accepted: ReadonlySet<Primitive>): string | null {
  if (value === undefined || value === null) return 'is absent';
  if (Array.isArray(value)) {
    if (value.length > MAX_LIST_VALUES) return `has more than ${MAX_LIST_VALUES} elements`;
    return value.some((v) => isPrimitive(v) && accepted.has(v)) ? null : 'contains no accepted value';
  }
  return isPrimitive(value) && accepted.has(value) ? null : 'is not an accepted value';
}

function isPrimitive(value: unknown): value is Primitive {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}
