import type { AuthenticatorKind } from './authenticator-kind.js';
import { anonymousKind } from './anonymous/kind.js';
import { apiKeyKind } from './api-key/kind.js';
import { introspectionKind } from './introspection/kind.js';
import { jwtKind } from './jwt/kind.js';
import { mtlsKind } from './mtls/kind.js';
import { oidcKind } from './oidc/kind.js';

/**
 * Every authenticator kind, one row each. The config schema's `authenticators` entries, the
 * compilation of each named authenticator and the defaults check of the docs all read this
 * table: a new kind is its folder (schema, defaults, docs page, compile) and a row here.
 */
export const AUTHENTICATOR_KINDS = [
  jwtKind,
  introspectionKind,
  apiKeyKind,
  oidcKind,
  mtlsKind,
  anonymousKind,
] as const;

type RawOf<K> = K extends AuthenticatorKind<infer Raw> ? Raw : never;

/** The raw options of any configured authenticator (one of the table's kinds, selected by `type`). */
export type RawAuthenticator = RawOf<(typeof AUTHENTICATOR_KINDS)[number]>;

const BY_TYPE: ReadonlyMap<string, AuthenticatorKind> = new Map(AUTHENTICATOR_KINDS.map((k): [string, AuthenticatorKind] => [k.type, k]));

/** The kind that `type: <type>` selects, or undefined (schema validation refuses unknown types first). */
export function authenticatorKindOf(type: string): AuthenticatorKind | undefined {
  return BY_TYPE.get(type);
}
