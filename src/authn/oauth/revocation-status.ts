import type { RevocationList } from './revocations.js';
import { signatureTwin } from './signature-twin.js';
import type { TokenDigester } from './token-digest.js';

/** What the revocation list says of a bearer token: not revoked (null), revoked, or why it cannot tell. */
export type RevocationStatus = null | 'revoked' | { readonly unavailable: string };

/**
 * The one revocation check of every bearer authenticator, before any cache. A list that may be
 * missing revocations made elsewhere (cut off from Redis past oauth.revocations.maxStalenessMs, or
 * never loaded) cannot tell, and the token is refused with 503: a revoked token must not work
 * because the list is down. An ECDSA-signed JWT is looked up under both spellings of its signature
 * (signatureTwin), whichever was revoked. `digest`: the token's digest when the caller has it.
 */
export function revocationStatus(token: string, revocations: RevocationList, digester: TokenDigester, digest?: string): RevocationStatus {
  if (revocations.empty) return null;
  const unavailable = revocations.unavailable;
  if (unavailable !== null) return { unavailable };
  if (revocations.isRevoked(digest ?? digester.ofToken(token))) return 'revoked';
  const twin = signatureTwin(token);
  return twin !== null && revocations.isRevoked(digester.ofToken(twin)) ? 'revoked' : null;
}
