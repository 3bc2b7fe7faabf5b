// The bench's authorization server: oidc-provider (the tests' real one) on a free loopback port,
// for the introspection scenarios. Prints one JSON line with its issuer, the gateway's client
// credentials and an opaque user token valid for two hours, then answers until SIGTERM.
import { startAuthorizationServer } from '../dist/test/harness/authorization-server.js';

const as = await startAuthorizationServer();
const token = await as.userToken('bench-user', { scope: 'bench:read', claims: { roles: ['reader'], tenant: 'acme' }, ttlSeconds: 7200 });
console.log(JSON.stringify({ ready: 'authorization-server', issuer: as.issuer, clientId: as.gateway.clientId, clientSecret: as.gateway.clientSecret, token }));

const stop = () => { as.close().finally(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
