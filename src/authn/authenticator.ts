import type { Denial } from '../pipeline/denials.js';
import type { Exchange, Stage } from '../pipeline/exchange.js';
import type { ComponentReadiness } from '../lifecycle/readiness.js';
import type { Identity } from './identity.js';

/**
 * What an authenticator says about a request. It abstains (`absent`) only when its kind of
 * credential is not in the request at all; a credential that is present but wrong is `rejected`,
 * and the request ends there — it never falls through to another authenticator.
 */
export type AuthOutcome =
  | { readonly kind: 'absent' }
  | { readonly kind: 'authenticated'; readonly identity: Identity }
  | {
    readonly kind: 'rejected';
    readonly denial: Denial;
    /**
     * True when the credential could be a guess: forged or malformed, unknown key or kid, wrong
     * secret or signature. False for an honest mistake by the credential's holder (a correctly
     * signed token that expired, a correct API key secret for a revoked or expired key) and for an
     * outage. Only guesses count towards the brute-force guard's blocks.
     */
    readonly guess: boolean;
    /**
     * Whose the refused credential verifiably is, when that is known: an API key whose secret
     * matched (refused as revoked, expired, superseded or from a network it may not be used
     * from), a token whose signature verified with the issuer's key (refused as expired, not yet
     * valid, for another audience). Recorded in the audit trail, never asserted upstream nor
     * authorized. Absent when the credential did not verify: claims nobody vouched for are not
     * an identity.
     */
    readonly owner?: Identity;
  };

/**
 * A path an authenticator answers itself (a login's callback, logout): the gateway adds a public
 * route for it, whose last stage is `stage`.
 */
export interface AuthenticatorEndpoint {
  readonly path: string;
  readonly methods: readonly string[];
  /** Names the route (`<authenticator>:<name>`) and the audit record's stage. */
  readonly name: string;
  /** The authenticator's option that sets the path, where a conflict with it is reported. */
  readonly option: string;
  /** Largest request body; 0: none. */
  readonly maxBodyBytes: number;
  /** Accepted request media types, or null for any (or none, without a body). */
  readonly contentTypes: readonly string[] | null;
  readonly stage: Stage;
}

export const ABSENT: AuthOutcome = Object.freeze({ kind: 'absent' });

/**
 * One configured way to authenticate (jwt, anonymous; API keys, introspection, OIDC sessions and
 * mTLS follow the same shape). Built once per config; `authenticate` runs per request.
 */
export interface Authenticator {
  readonly name: string;
  readonly type: string;
  /** The WWW-Authenticate challenge sent when no listed authenticator found its credential. */
  readonly challenge: string | null;
  /**
   * Headers this authenticator asserts upstream, each with what it carries as a limit dimension
   * (`claim:org.id`): stripped from every inbound request, and a limit keyed on one is refused
   * with that dimension as the fix.
   */
  readonly assertedHeaders: ReadonlyMap<string, string>;
  /** Request headers carrying this authenticator's credential, removed before forwarding unless the route keeps them. */
  readonly credentialHeaders: readonly string[];
  /**
   * An `Authorization` scheme only this authenticator reads (lower case, `apikey`), or null. Such a
   * header is removed from every request on every route: a forwarded route keeps only a bearer
   * token that authenticated the request.
   */
  readonly authorizationScheme: string | null;
  /** The query parameter carrying this authenticator's credential, or null: removed before forwarding on every route. */
  readonly queryParam: string | null;
  /**
   * True when it never abstains (admits every request that reaches it): it must be last in a
   * route's list, or the authenticators after it would never run.
   */
  readonly alwaysAdmits: boolean;
  /**
   * True when, its remote source being unavailable, it can still answer from earlier verdicts
   * kept within bounds (introspection): what a route's `onAuthUnavailable: serveStale` asks for.
   */
  readonly servesStale?: boolean;
  /** The same authenticator, also reading its credential from `queryParam` (routes with `apiKeyInQuery`). */
  withQuery?(): Authenticator;
  /**
   * Whether it can decide now: a remote key set loaded, a key store read within its staleness
   * bound. Absent: it needs nothing from outside the config, and is always ready.
   */
  readiness?(): ComponentReadiness;
  /**
   * What to answer when none of the route's authenticators found its credential, instead of 401:
   * a login redirect for a browser navigation (oidc). Null, or absent: the 401 stands.
   */
  onMissing?(exchange: Exchange): Denial | null;
  /** Paths it answers itself, each a public route the gateway adds (an oidc login's callback and logout). */
  readonly endpoints?: readonly AuthenticatorEndpoint[];
  /** True when it authenticates browser sessions that hold an access token (routes with forwardAccessToken). */
  readonly sessionTokens?: boolean;
  authenticate(exchange: Exchange): AuthOutcome | Promise<AuthOutcome>;
}
