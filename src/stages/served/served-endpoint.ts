import type { AssertionSigner } from '../../assertion/assertion-signer.js';
import type { At } from '../../authn/authenticator-kind.js';
import type { OAuthServices } from '../../authn/oauth/oauth-services.js';
import type { ConfigProblem } from '../../config/errors.js';
import type { ConfigSource } from '../../config/config-source.js';
import type { Stage } from '../../pipeline/exchange.js';

/** What a served endpoint is compiled from: the config's shared services, and where to report problems. */
export interface ServedContext {
  readonly oauth: OAuthServices;
  /** The identity assertion signer (`identityAssertion`), null when the section is absent or invalid. */
  readonly identityAssertion: AssertionSigner | null;
  readonly loaded: ConfigSource;
  /** Locates an option of the route that serves the endpoint. */
  readonly at: At;
  readonly problems: ConfigProblem[];
}

/**
 * An answer the gateway gives itself on a route that names it (`serve: <name>`) instead of an
 * upstream: a published key set, a webhook. The route keeps everything else a route has: its
 * match, its policy (public or authenticated), its limits and its audit record. The endpoint's
 * stage takes the forwarding stage's place, last in the route's list, and ends every request with
 * a response of its own or a denial.
 */
export interface ServedEndpoint {
  /** The value of `serve` that selects it. */
  readonly name: string;
  /** One line for the schema and the docs. */
  readonly description: string;
  /** The methods it answers; a route serving it must match only these. */
  readonly methods: readonly string[];
  /** Its stage, or null when the config lacks what it needs (a problem was added). */
  build(context: ServedContext): Stage | null;
}
