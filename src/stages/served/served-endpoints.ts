import { identityJwksEndpoint } from './identity-jwks.js';
import { REVOCATION_WEBHOOK } from './revocation-webhook.js';
import type { ServedEndpoint } from './served-endpoint.js';

/**
 * Every endpoint the gateway serves itself on a route (`serve: <name>`), one row each: the schema's
 * enum of `serve`, the docs and route compilation read this table.
 */
export const SERVED_ENDPOINTS: readonly ServedEndpoint[] = [
  identityJwksEndpoint,
  REVOCATION_WEBHOOK,
];

/** The endpoint a `serve` value selects. */
export function servedEndpointOf(name: string): ServedEndpoint | undefined {
  return SERVED_ENDPOINTS.find((e) => e.name === name);
}
