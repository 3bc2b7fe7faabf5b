// examples/tls/gateway.yaml cannot rot: with the files `portcullis certs dev` writes beside it,
// it compiles. The options it shows that this tree does not have yet are listed in PENDING; the
// full example must fail on exactly those, so the list shrinks as they land and cannot go stale.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigFile } from '../src/config/load.js';
import { issueDevCertificates, writeDevFiles } from '../src/tls/dev-certificates.js';
import { configProblems } from './harness/config.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/tls/gateway.yaml', import.meta.url));
const TLS_DOC = fileURLToPath(new URL('../../docs/tls.md', import.meta.url));

/**
 * Options of the example that other parts of the TLS work add (HTTP redirect mode, TLS profiles,
 * client certificates, the mtls authenticator), with the route that uses the authenticator.
 * Once an option exists here, the full example compiles past it: remove it from this list.
 */
const PENDING: readonly (readonly string[])[] = [
  ['listen', 'http', 'mode'],
  ['listen', 'https', 'profile'],
];
const PENDING_ROUTES: readonly string[] = [];

describe('examples/tls/gateway.yaml', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-example-'));
    // What the example's comment says to run: certs dev --out tls --client payments=…
    writeDevFiles(join(dir, 'tls'), await issueDevCertificates({ names: [], clients: [{ name: 'payments', spiffeId: 'spiffe://portcullis.local/ns/payments/sa/api' }], days: 90 }), false);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('fails only on the options still to come in this tree, each named with its line', () => {
    const problems = configProblems(readFileSync(EXAMPLE, 'utf8'), {}, join(dir, 'gateway.yaml'));
    const at = (path: readonly string[]) => problems.filter((p) => p.includes(`: ${path.join('.')}`));
    for (const path of PENDING) assert.equal(at(path).length, 1, `one problem at ${path.join('.')} (once it exists, remove it from PENDING):\n${problems.join('\n')}`);
    assert.equal(problems.length, PENDING.length, problems.join('\n'));
  });

  it('compiles with the files certs dev writes, without them: HTTPS with the certificate in use', async () => {
    const doc = parseDocument(readFileSync(EXAMPLE, 'utf8'));
    for (const path of PENDING) {
      assert.ok(doc.hasIn(path), `the example has ${path.join('.')}`);
      doc.deleteIn(path);
    }
    const routes = doc.getIn(['routes']) as { items: { get(key: string): unknown }[] };
    routes.items = routes.items.filter((r) => !PENDING_ROUTES.includes(String(r.get('name'))));
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, doc.toString());
    const config = compileConfig(await loadConfigFile(file, { PORTCULLIS_DATA_DIR: join(dir, 'data') }));
    assert.deepEqual([config.listen.https?.host, config.listen.https?.port], ['0.0.0.0', 8443]);
    assert.notEqual(config.listen.https?.http2, null, 'HTTP/2 is on by default');
    assert.equal(config.listen.http.port, 8080);
    assert.deepEqual(config.certificates.map((c) => [c.use, c.name]), [['server', 'listen.https'], ['client-ca', 'listen.https.clientAuth.ca']]);
    assert.deepEqual(config.routes.map((r) => r.name), ['orders', 'settlements']);
  });

  it('docs/tls.md points at it', () => {
    assert.ok(readFileSync(TLS_DOC, 'utf8').includes('(../examples/tls/gateway.yaml)'));
  });
});
