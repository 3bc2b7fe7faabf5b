import type { AssertionSigner } from '../../assertion/assertion-signer.js';
import type { LocalResponse, Stage } from '../../pipeline/exchange.js';
import type { ServedEndpoint } from './served-endpoint.js';

/** How long clients may keep the key set: short, so a rotation's new key is fetched well within its overlap. */
export const JWKS_MAX_AGE_SECONDS = 300;

/** The JWK Set response (RFC 7517 §8.5 media type) of a signer's published keys. */
export function jwksResponse(signer: AssertionSigner): LocalResponse {
  return {
    kind: 'response', status: 200, body: signer.jwks(), code: 'identity_jwks', detail: 'identity assertion key set served',
    headers: { 'content-type': 'application/jwk-set+json', 'cache-control': `public, max-age=${JWKS_MAX_AGE_SECONDS}` },
  };
}

/**
 * `serve: identity-jwks`: the public keys of the identity assertion, for backends that verify
 * assertions (createRemoteJWKSet). It is the config's key set, so a reload that rotates keys
 * changes what it serves at once.
 */
export const identityJwksEndpoint: ServedEndpoint = {
  name: 'identity-jwks',
  description: 'The public keys (JWK Set) backends verify identity assertions with; needs identityAssertion.',
  methods: ['GET', 'HEAD'],
  build(context) {
    const signer = context.identityAssertion;
    if (signer === null) {
      context.problems.push(context.loaded.problem(context.at('serve'), 'identity-jwks publishes the identity assertion keys: configure the top-level identityAssertion section (an issuer at least)'));
      return null;
    }
    return jwksStage(signer);
  },
};

function jwksStage(signer: AssertionSigner): Stage {
  return { name: 'identity-jwks', run: () => jwksResponse(signer) };
}
