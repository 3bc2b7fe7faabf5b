import { createHash, timingSafeEqual } from 'node:crypto';
import { deny, type Denial } from '../../pipeline/denials.js';
import type { Stage } from '../../pipeline/exchange.js';

/**
 * RFC 8705 §3: on a route with `requireCertificateBoundToken`, a bearer token (a JWT) that
 * authenticated the request must carry `cnf["x5t#S256"]`, the base64url SHA-256 of the DER client certificate, and
 * the connection must present that very certificate. A token stolen from its holder is then
 * useless without the holder's private key, which the TLS handshake proved. Any certificate the
 * client proved possession of counts (RFC 8705 §2.2 allows self-signed ones): whether it also
 * chains to a client CA is the listener's and the mtls authenticator's concern — except a
 * certificate a client CA's CRL revokes, which is refused. Identities of
 * other kinds (API keys, client certificates themselves) are not tokens, and pass.
 */
export function certificateBoundToken(): Stage {
  return {
    name: 'certificate-bound-token',
    run(ex) {
      const identity = ex.identity;
      // Only identities established by a bearer token carry a token to bind.
      if (identity === null || identity.bearerRealm === null) return undefined;
      const realm = identity.bearerRealm;
      const refuse = (reason: string): Denial => deny('token_certificate_mismatch', `${identity.authenticator}: ${reason}`,
        { 'www-authenticate': `Bearer realm="${realm}", error="invalid_token", error_description="token not bound to this client certificate"` });
      const cnf = identity.claims?.cnf;
      const bound = typeof cnf === 'object' && cnf !== null && !Array.isArray(cnf) ? (cnf as Record<string, unknown>)['x5t#S256'] : undefined;
      if (typeof bound !== 'string' || bound === '') return refuse('the token has no cnf["x5t#S256"] confirmation');
      const socket = ex.wire.tls;
      const peer = socket?.getPeerX509Certificate();
      if (socket === null || peer === undefined) return refuse('the connection presented no client certificate');
      // A binding needs no CA, but a configured CA's CRL naming the certificate says its key is no
      // longer its holder's: a token bound to it is refused like one bound to another certificate.
      if (!socket.authorized && (socket as { authorizationError?: unknown }).authorizationError === 'CERT_REVOKED') {
        return refuse('the connection\'s client certificate is revoked by its CA (CERT_REVOKED)');
      }
      // Both sides hashed to a fixed length first, so the comparison takes the same time whatever the token carries.
      const expected = createHash('sha256').update(createHash('sha256').update(peer.raw).digest('base64url')).digest();
      const presented = createHash('sha256').update(bound).digest();
      if (!timingSafeEqual(expected, presented)) return refuse('cnf["x5t#S256"] is not the thumbprint of the connection\'s client certificate');
      return undefined;
    },
  };
}
