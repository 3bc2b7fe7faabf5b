// The bench's authorization server: oidc-provider (the tests' real one) on a free loopback port,
// for the introspection and browser-session scenarios. Prints one JSON line with its issuer, the
// gateway's client credentials and an opaque user token valid for two hours, then answers until
// SIGTERM.
//
// With a JSON argument `{ "redirectUris": [...] }` it also registers the login client `web` for
// those callbacks, with no login page (`interactions: 'auto'`: the bench user logs in and consents
// at once), and prints its credentials too. Its access tokens live 12 hours, so no session of the
// bench refreshes during a run.
import { startAuthorizationServer } from '../dist/test/harness/authorization-server.js';

/** The user every login of the bench logs in as (its claims are those of the other scenarios' tokens). */
const BENCH_USER = { sub: 'bench-user', email: 'bench-user@example.com', roles: ['reader'], tenant: 'acme' };

const loginArg = process.argv[2] === undefined ? null : JSON.parse(process.argv[2]);
const as = await startAuthorizationServer(loginArg === null ? {} : {
  login: { redirectUris: loginArg.redirectUris, accounts: [BENCH_USER], interactions: 'auto', accessTokenTtlSeconds: 12 * 3600 },
});
const token = await as.userToken('bench-user', { scope: 'bench:read', claims: { roles: ['reader'], tenant: 'acme' }, ttlSeconds: 7200 });
console.log(JSON.stringify({
  ready: 'authorization-server', issuer: as.issuer, clientId: as.gateway.clientId, clientSecret: as.gateway.clientSecret, token,
  ...(loginArg === null ? {} : { web: { clientId: as.web.clientId, clientSecret: as.web.clientSecret } }),
}));

const stop = () => { as.close().finally(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
