import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { JWTPayload } from 'jose';
import type { AssertionSigner } from '../assertion/assertion-signer.js';
import type { Identity } from '../authn/identity.js';
import { deny } from '../pipeline/denials.js';
import type { AssertedIdentity, Exchange, Stage } from '../pipeline/exchange.js';

/** Where a route's assertion goes: whom it is for (`aud`) and the request header (lower case) it is sent in. */
export interface AssertionTarget {
  readonly audience: string;
  readonly header: string;
}

/** RFC 6749 §3.3 scope-token characters: a scope that is not one cannot be joined into `scope` unambiguously. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/**
 * The claims of an assertion besides iss, iat and exp (the signer adds those): the identity the
 * gateway established and whom the assertion is for. docs/identity-assertion.md lists them.
 */
export function assertionClaims(identity: Identity, audience: string, requestId: string, certificateThumbprint: string | null): JWTPayload {
  const claims: JWTPayload = { sub: identity.subject, aud: audience, jti: requestId, auth_method: identity.method };
  if (identity.tenant !== null) claims.tenant = identity.tenant;
  if (identity.roles.length > 0) claims.roles = [...identity.roles];
  const scopes = identity.scopes.filter((s) => SCOPE_TOKEN.test(s));
  if (scopes.length > 0) claims.scope = scopes.join(' ');
  if (identity.keyId !== null) claims.key_id = identity.keyId;
  // RFC 8705 §3.1: the client certificate the connection proved possession of, so a backend can
  // bind what it does to the same certificate (or just log which one it was).
  if (certificateThumbprint !== null) claims.cnf = { 'x5t#S256': certificateThumbprint };
  return claims;
}

const thumbprints = new WeakMap<TLSSocket, string | null>();

/** base64url SHA-256 of the DER of the client certificate the connection verified, or null. */
function verifiedCertificateThumbprint(tls: TLSSocket | null): string | null {
  if (tls === null || !tls.authorized) return null;
  let known = thumbprints.get(tls);
  if (known === undefined) {
    const der = tls.getPeerX509Certificate()?.raw;
    known = der === undefined ? null : createHash('sha256').update(der).digest('base64url');
    thumbprints.set(tls, known);
  }
  return known;
}

/**
 * After identity-headers on a route with `assertIdentity`: signs the verified identity as a
 * short-lived JWT for the route's upstream and adds it to what the upstream receives. In
 * `authorization` it replaces the client's credential (`Bearer <assertion>`); in another header
 * it is the bare assertion, and a client's copy of that header never reaches the upstream (the
 * header pass removes it on every route, like every header the gateway asserts).
 */
export function identityAssertion(signer: AssertionSigner, target: AssertionTarget): Stage {
  const bearer = target.header === 'authorization';
  // identity-headers hands out a few fixed strip sets; each gets its widened copy once.
  const widened = new WeakMap<ReadonlySet<string>, ReadonlySet<string>>();
  const strip = (set: ReadonlySet<string>): ReadonlySet<string> => {
    let out = widened.get(set);
    if (out === undefined) {
      out = set.has(target.header) ? set : new Set([...set, target.header]);
      widened.set(set, out);
    }
    return out;
  };
  const assert = (ex: Exchange, asserted: AssertedIdentity, value: string): void => {
    ex.asserted = { headers: [...asserted.headers, target.header, bearer ? `Bearer ${value}` : value], strip: strip(asserted.strip) };
  };
  return {
    name: 'identity-assertion',
    run(ex) {
      const identity = ex.identity;
      const asserted = ex.asserted;
      if (identity === null || asserted === null) return deny('internal_error', 'identity assertion reached without an identity');
      const { jwt, kid } = signer.sign(assertionClaims(identity, target.audience, ex.requestId, verifiedCertificateThumbprint(ex.wire.tls)));
      assert(ex, asserted, jwt);
      ex.tally?.identityAssertion(ex.route?.name ?? '', kid);
      return undefined;
    },
    explain(ex) {
      const asserted = ex.asserted;
      if (ex.identity === null || asserted === null) return { result: deny('internal_error', 'identity assertion reached without an identity'), note: '' };
      const keyNote = signer.generatedKeyPath === null ? `key ${signer.signingKey().kid}` : `the key generated in ${signer.generatedKeyPath}`;
      assert(ex, asserted, '<identity assertion, signed per request>');
      return { result: undefined, note: `would sign a ${signer.algorithm} assertion for aud "${target.audience}" (iss ${signer.issuer}, ${signer.ttlSeconds} s, ${keyNote}) and send it in ${target.header}` };
    },
  };
}
