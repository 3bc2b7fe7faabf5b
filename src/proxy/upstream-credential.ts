import { deny } from '../pipeline/denials.js';
import type { Stage } from '../pipeline/exchange.js';
import type { TokenUnavailable, UpstreamTokenSource } from './upstream-token.js';

/** What `explain` shows in place of a token it does not fetch. */
export const EXPLAINED_TOKEN = '[client-credentials-token]';

/**
 * The step before forwarding on routes whose upstream takes the gateway's own token: the token is
 * recorded on the exchange, and the upstream request carries it as `Authorization: Bearer` in
 * place of every client Authorization (proxy/upstream-request.ts). A cached token costs no promise;
 * only a request without one waits, for the one call all such requests share. No token to be had:
 * 503 upstream_credentials_unavailable with Retry-After, and nothing is sent upstream.
 */
export function upstreamCredential(source: UpstreamTokenSource): Stage {
  const refuse = (failure: TokenUnavailable) => deny('upstream_credentials_unavailable', failure.reason, { 'retry-after': String(failure.retryAfterSeconds) });
  return {
    name: 'upstream-credential',
    run(ex) {
      const token = source.current();
      if (token !== null) {
        ex.upstreamToken = token;
        return undefined;
      }
      return source.obtain().then((got) => {
        if (typeof got !== 'string') return refuse(got);
        ex.upstreamToken = got;
        return undefined;
      });
    },
    explain(ex) {
      ex.upstreamToken = EXPLAINED_TOKEN;
      return { result: undefined, note: `would send a client credentials token for client ${source.spec.clientId} from ${source.endpoint} as Authorization; the client's Authorization is not forwarded` };
    },
  };
}
