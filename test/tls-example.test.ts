// examples/tls/gateway.yaml cannot rot: with the files `portcullis certs dev` writes beside it
// (as its comment says to run), it compiles, and it configures what it says it does.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigFile } from '../src/config/load.js';
import { issueDevCertificates, writeDevFiles } from '../src/tls/dev-certificates.js';
import { configProblems } from './harness/config.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/tls/gateway.yaml', import.meta.url));
const TLS_DOC = fileURLToPath(new URL('../../docs/tls.md', import.meta.url));

describe('examples/tls/gateway.yaml', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-example-'));
    // What the example's comment says to run: certs dev --out tls --client payments=…
    writeDevFiles(join(dir, 'tls'), await issueDevCertificates({ names: [], clients: [{ name: 'payments', spiffeId: 'spiffe://portcullis.local/ns/payments/sa/api' }], days: 90 }), false);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('compiles with the files certs dev writes', () => {
    assert.deepEqual(configProblems(readFileSync(EXAMPLE, 'utf8'), {}, join(dir, 'gateway.yaml')), []);
  });

  it('redirects plain HTTP, serves HTTPS (HTTP/2 on) with client certificates, and maps a service', async () => {
    const file = join(dir, 'gateway.yaml');
    copyFileSync(EXAMPLE, file);
    const config = compileConfig(await loadConfigFile(file, { PORTCULLIS_DATA_DIR: join(dir, 'data') }));
    assert.equal(config.listen.http.mode, 'redirect');
    assert.deepEqual([config.listen.https?.host, config.listen.https?.port], ['0.0.0.0', 8443]);
    assert.notEqual(config.listen.https?.http2, null, 'HTTP/2 is on by default');
    assert.equal(config.tls?.clientAuth?.mode, 'request');
    assert.deepEqual(config.certificates.map((c) => [c.use, c.name]), [['server', 'listen.https'], ['client-ca', 'listen.https.clientAuth.ca']]);
    assert.deepEqual(config.routes.map((r) => r.name), ['orders', 'settlements']);
    assert.equal(config.authenticators.get('services')?.type, 'mtls');
  });

  it('docs/tls.md points at it', () => {
    assert.ok(readFileSync(TLS_DOC, 'utf8').includes('(../examples/tls/gateway.yaml)'));
  });
});
