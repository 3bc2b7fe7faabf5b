import type { Authenticator, AuthOutcome } from '../authenticator.js';

/**
 * Lets a request through without a credential, as a fixed, named identity. It exists only when
 * configured (`type: anonymous`) and must come last in a route's list, so a present credential is
 * always judged by its own authenticator first.
 */
export function anonymousAuthenticator(name: string, subject: string): Authenticator {
  const outcome: AuthOutcome = Object.freeze({
    kind: 'authenticated',
    identity: Object.freeze({
      subject, method: 'anonymous', authenticator: name, keyId: null,
      roles: [], scopes: [], tenant: null, tier: null, claims: null, claimHeaders: [], bearerRealm: null,
    }),
  });
  return {
    name, type: 'anonymous', challenge: null, assertedHeaders: new Map(), credentialHeaders: [],
    authorizationScheme: null, queryParam: null, alwaysAdmits: true,
    authenticate: () => outcome,
  };
}
