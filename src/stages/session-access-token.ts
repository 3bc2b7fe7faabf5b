import type { Stage } from '../pipeline/exchange.js';

/**
 * `forwardAccessToken`: the access token of the browser session that authenticated the request
 * goes upstream as `Authorization: Bearer`, in place of any the client sent. A request
 * authenticated otherwise (a bearer token of another authenticator on the same route) forwards
 * no token: the client's Authorization is removed as on every route without forwardAuthorization.
 */
export function sessionAccessToken(): Stage {
  return {
    name: 'session-access-token',
    run(ex) {
      if (ex.sessionAccessToken !== null) ex.upstreamToken = ex.sessionAccessToken;
      return undefined;
    },
  };
}
