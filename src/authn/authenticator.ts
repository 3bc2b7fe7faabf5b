import type { Denial } from '../pipeline/denials.js';
import type { Exchange } from '../pipeline/exchange.js';
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
  };

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
  /** Header names this authenticator asserts upstream; they are stripped from every inbound request. */
  readonly assertedHeaders: readonly string[];
  /** Request headers carrying this authenticator's credential, removed before forwarding unless the route keeps them. */
  readonly credentialHeaders: readonly string[];
  authenticate(exchange: Exchange): AuthOutcome | Promise<AuthOutcome>;
}
