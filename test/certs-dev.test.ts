// `portcullis certs dev`: the files it writes are a working PKI (the server certificate verifies
// for this machine, the client certificate carries clientAuth and its SPIFFE ID, and the two
// complete a real mutual TLS handshake), written with private modes, never over existing files
// without --force, and every malformed argument refused before anything is written.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from './harness/gateway.js';
import { handshake } from './harness/tls.js';
import { issueCertificate, issueCertificateAuthority } from '../src/tls/issue-certificates.js';
import { UsageError, parseInvocation } from '../src/cli/command.js';
import { allCommands } from '../src/cli/commands.js';
import { devRequest } from '../src/cli/certs-dev.js';

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs `portcullis certs dev ARGS…` in `cwd`. */
function certsDev(args: readonly string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'certs', 'dev', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const DEMO_ID = 'spiffe://portcullis.local/ns/demo/sa/client';

/** Every file under `dir` with its bytes, for "nothing changed" checks. */
function snapshot(dir: string): Record<string, string> {
  if (!existsSync(dir)) return {};
  return Object.fromEntries(readdirSync(dir).sort().map((name) => [name, lstatSync(join(dir, name)).isFile() ? readFileSync(join(dir, name), 'utf8') : '<not a file>']));
}

/** A TLS server requiring a client certificate from `ca`; resolves with what it saw of the client. */
async function mutualTlsServer(cert: string, key: string, ca: string) {
  const seen: { authorized: boolean; uri: string | undefined }[] = [];
  const server = createServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true }, (socket: TLSSocket) => {
    seen.push({ authorized: socket.authorized, uri: socket.getPeerCertificate().subjectaltname });
    socket.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, seen, port: (server.address() as { port: number }).port };
}

describe('portcullis certs dev', () => {
  let root: string;
  before(() => { root = mkdtempSync(join(tmpdir(), 'portcullis-certs-dev-')); });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('writes a CA, a server certificate for this machine and a SPIFFE client certificate into ./tls, and says they are for development', async () => {
    const cwd = mkdtempSync(join(root, 'default-'));
    const run = await certsDev([], cwd);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    const dir = join(cwd, 'tls');
    assert.deepEqual(readdirSync(dir).sort(), ['ca.crt', 'ca.key', 'client-demo.crt', 'client-demo.key', 'server.crt', 'server.key']);
    assert.equal(statSync(dir).mode & 0o777, 0o700, 'the directory is 0700');
    for (const key of ['ca.key', 'server.key', 'client-demo.key']) assert.equal(statSync(join(dir, key)).mode & 0o077, 0, `${key} is readable by its owner only`);

    const read = (name: string): string => readFileSync(join(dir, name), 'utf8');
    const ca = new X509Certificate(read('ca.crt'));
    assert.ok(ca.ca, 'ca.crt is a CA');
    assert.ok(ca.verify(ca.publicKey), 'self-signed');
    for (const key of ['ca.key', 'server.key', 'client-demo.key']) assert.equal(createPrivateKey(read(key)).asymmetricKeyType, 'ec');
    assert.ok(ca.checkPrivateKey(createPrivateKey(read('ca.key'))));

    // server.crt: the leaf, then the CA.
    const chain = read('server.crt').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    assert.equal(chain.length, 2);
    const server = new X509Certificate(chain[0] ?? '');
    assert.equal(new X509Certificate(chain[1] ?? '').fingerprint256, ca.fingerprint256);
    assert.ok(server.verify(ca.publicKey), 'the server certificate verifies against the CA');
    assert.ok(!server.ca);
    assert.ok(server.checkPrivateKey(createPrivateKey(read('server.key'))));
    assert.equal(server.checkHost('localhost'), 'localhost');
    assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(server.checkIP('::1'), '::1');
    assert.equal(server.checkHost('example.com'), undefined);
    assert.deepEqual(server.keyUsage, [SERVER_AUTH]);

    const client = new X509Certificate(read('client-demo.crt'));
    assert.ok(client.verify(ca.publicKey));
    assert.ok(client.checkPrivateKey(createPrivateKey(read('client-demo.key'))));
    assert.deepEqual(client.keyUsage, [CLIENT_AUTH]);
    assert.equal(client.subjectAltName, `URI:${DEMO_ID}`);

    // Valid now, for the default 90 days.
    const days = (Date.parse(server.validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 89.9 && days <= 90, String(days));
    assert.ok(Date.parse(server.validFrom) < Date.now());

    // What it prints: every file, the development warning, the config lines and a curl line that works from cwd.
    for (const name of readdirSync(dir)) assert.ok(run.stdout.includes(`tls/${name}`), `lists ${name}`);
    assert.match(run.stdout, /^Wrote development certificates, valid for 90 days, into tls \(created 0700; keys 0600\):$/m);
    assert.match(run.stdout, /For development only: the CA key is on disk/);
    for (const line of ['  listen:', '    https:', '      cert: tls/server.crt', '      key: tls/server.key', '      clientAuth:', '        mode: request', '        ca: tls/ca.crt', `        - match: { spiffe: "${DEMO_ID}" }`]) {
      assert.ok(run.stdout.includes(`\n${line}\n`), `prints ${line}`);
    }
    assert.ok(run.stdout.includes('  curl --cacert tls/ca.crt --cert tls/client-demo.crt --key tls/client-demo.key https://localhost:8443/\n'));
  });

  it('the server and client certificates complete a real mutual TLS handshake; a client of another CA is refused', async (t) => {
    const dir = join(root, 'handshake');
    const run = await certsDev(['--out', dir, '--name', 'gateway.test', '--name', '192.0.2.7', '--client', 'payments=spiffe://example.test/ns/payments/sa/api'], root);
    assert.equal(run.code, 0, run.stderr);
    const read = (name: string): string => readFileSync(join(dir, name), 'utf8');
    const { server, seen, port } = await mutualTlsServer(read('server.crt'), read('server.key'), read('ca.crt'));
    t.after(() => server.close());

    for (const servername of ['localhost', 'gateway.test']) {
      const ok = await handshake(port, { ca: read('ca.crt'), servername, cert: read('client-payments.crt'), key: read('client-payments.key') });
      assert.ok(ok.ok, `handshake as ${servername}: ${ok.ok ? '' : ok.error.message}`);
      assert.ok(ok.socket.authorized, 'the client trusts the server certificate for its name');
      ok.socket.resume();
      // The server ends the connection once it has looked at the client's certificate.
      await once(ok.socket, 'end');
      ok.socket.destroy();
    }
    const server192 = new X509Certificate(read('server.crt'));
    assert.equal(server192.checkIP('192.0.2.7'), '192.0.2.7');
    assert.deepEqual(seen[0], { authorized: true, uri: 'URI:spiffe://example.test/ns/payments/sa/api' });

    // The server refuses a certificate this CA did not issue, and one without a certificate at all.
    const otherCa = await issueCertificateAuthority('Another CA');
    const stranger = await issueCertificate({ commonName: 'payments', uris: ['spiffe://example.test/ns/payments/sa/api'], extendedKeyUsage: ['clientAuth'] }, otherCa);
    for (const credentials of [{ cert: stranger.cert, key: stranger.key }, {}]) {
      const refused = await handshake(port, { ca: read('ca.crt'), servername: 'localhost', ...credentials });
      if (refused.ok) {
        // TLS 1.3: the client's handshake completes before the server's verdict arrives as an alert.
        const socket = refused.socket;
        socket.resume();
        const error = await new Promise<Error | null>((resolve) => { socket.once('error', resolve); socket.once('close', () => resolve(null)); });
        assert.ok(error === null || /certificate/i.test(error.message), String(error));
        socket.destroy();
      }
    }
    assert.equal(seen.length, 2, 'only the two handshakes with the issued client certificate reached the server');
  });

  it('refuses to overwrite: exit 1, nothing written, a planted link not followed; --force replaces every file with private modes', async () => {
    const dir = join(root, 'overwrite');
    assert.equal((await certsDev(['--out', dir], root)).code, 0);
    const before = snapshot(dir);
    const again = await certsDev(['--out', dir], root);
    assert.equal(again.code, 1);
    assert.equal(again.stdout, '');
    assert.match(again.stderr, /^portcullis certs dev: \S+ca\.crt exists \(and 5 more of the files it would write\); nothing was written\. Give --force to replace them, or --out another directory\n$/);
    assert.deepEqual(snapshot(dir), before);

    // One existing file is enough to refuse, even a link to a file elsewhere, which stays untouched.
    const partial = join(root, 'partial');
    const outside = join(root, 'outside.txt');
    writeFileSync(outside, 'not a key');
    mkdirSync(partial);
    symlinkSync(outside, join(partial, 'server.key'));
    const refused = await certsDev(['--out', partial], root);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /server\.key exists; nothing was written/);
    assert.deepEqual(readdirSync(partial), ['server.key']);
    assert.equal(readFileSync(outside, 'utf8'), 'not a key');

    // --force: new certificates, keys 0600 even where the old file was world-readable, the link replaced and its target untouched.
    chmodSync(join(dir, 'ca.key'), 0o644);
    const forced = await certsDev(['--out', dir, '--force'], root);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /^Wrote development certificates, .* \(which existed; keys 0600\):$/m);
    const replaced = snapshot(dir);
    assert.deepEqual(Object.keys(replaced), Object.keys(before), 'the same files, no temporary left behind');
    for (const name of Object.keys(before)) assert.notEqual(replaced[name], before[name], `${name} was replaced`);
    assert.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600);
    const forcedPartial = await certsDev(['--out', partial, '--force'], root);
    assert.equal(forcedPartial.code, 0, forcedPartial.stderr);
    assert.ok(lstatSync(join(partial, 'server.key')).isFile());
    assert.equal(readFileSync(outside, 'utf8'), 'not a key');
  });

  it('a bad argument is a usage error (exit 2) and writes nothing', async () => {
    const cases: [string[], RegExp][] = [
      [['--name', 'Bad Name'], /^--name "Bad Name": a server name is a DNS name/],
      [['--name', 'a..b'], /^--name "a\.\.b": a server name/],
      [['--name', '*.*.example'], /^--name "\*\.\*\.example": a server name/],
      [['--client', ''], /^--client "": a client name is 1 to 63/],
      [['--client', '../x'], /^--client "\.\.\/x": a client name/],
      [['--client', 'Upper'], /^--client "Upper": a client name/],
      [['--client', 'a=https://example.test/x'], /^--client "a=https:\/\/example\.test\/x": not a SPIFFE ID: it must start with spiffe:\/\//],
      [['--client', 'a=spiffe://Example.test/x'], /not a SPIFFE ID: the trust domain/],
      [['--client', 'a=spiffe://example.test'], /not a SPIFFE ID: a workload ID has a path/],
      [['--client', 'a=spiffe://example.test/ns//sa'], /not a SPIFFE ID: empty path segment/],
      [['--client', 'a=spiffe://example.test/ns/../sa'], /not a SPIFFE ID: "\." and "\.\." are not path segments/],
      [['--client', 'a=spiffe://example.test/ns/x?y'], /not a SPIFFE ID: path segments are/],
      [['--client', 'a=spiffe://example.test:8443/x'], /not a SPIFFE ID: the trust domain/],
      [['--client', `a=spiffe://example.test/${'x'.repeat(2048)}`], /not a SPIFFE ID: longer than 2048 bytes/],
      [['--client', 'a', '--client', 'a=spiffe://example.test/b'], /^--client a given twice; each client needs its own name/],
      [['--days', '0'], /^--days: a number of days from 1 to 825 \(got "0"\)$/],
      [['--days', '826'], /^--days: a number of days from 1 to 825/],
      [['--days', '1e2'], /^--days: a number of days/],
      [['--days', '-5'], /--days/],
      [['--days', '1', '--days', '2'], /^--days given twice; give it once$/],
      [['--force=yes'], /^--force takes no value$/],
      [['extra'], /^unexpected argument "extra"$/],
    ];
    // The table, in process: the command's own parser, then its request.
    const command = allCommands().find((c) => c.path.join(' ') === 'certs dev');
    assert.ok(command !== undefined);
    for (const [args, problem] of cases) {
      assert.throws(() => devRequest(parseInvocation(command, args).values), (err: unknown) => {
        assert.ok(err instanceof UsageError, `${args.join(' ')}: ${String(err)}`);
        assert.match(err.message, problem, args.join(' '));
        assert.doesNotMatch(err.message, /\n/);
        return true;
      });
    }
    // And through the CLI: exit 2, the line, the usage, nothing written.
    const cwd = mkdtempSync(join(root, 'usage-'));
    for (const args of [['--client', 'a=spiffe://example.test/ns/../sa'], ['--days', '0']]) {
      const run = await certsDev(args, cwd);
      assert.equal(run.code, 2, run.stderr);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /^portcullis certs dev: --(client|days)[^\n]+\n\nportcullis certs dev — /);
      assert.doesNotMatch(run.stderr, /^\s+at /m);
    }
    assert.deepEqual(readdirSync(cwd), [], 'nothing written');
  });

  it('--days sets the lifetime; a directory that cannot be made is exit 1 in one line', async () => {
    const dir = join(root, 'days');
    assert.equal((await certsDev(['--out', dir, '--days', '7'], root)).code, 0);
    const days = (Date.parse(new X509Certificate(readFileSync(join(dir, 'client-demo.crt'))).validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 6.9 && days <= 7, String(days));
    const file = join(root, 'a-file');
    writeFileSync(file, '');
    const run = await certsDev(['--out', join(file, 'tls')], root);
    assert.equal(run.code, 1);
    assert.equal(run.stderr.split('\n').length, 2, run.stderr);
    assert.match(run.stderr, /^portcullis certs dev: cannot (look into|write) .*a-file\/tls.* \(ENOTDIR\)/);
  });

  it('--help says what it writes and that it is for development only', async () => {
    const run = await certsDev(['--help'], root);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^portcullis certs dev — /);
    assert.match(run.stdout, /For development only: the CA's private key is written to disk/);
    for (const option of ['--out DIR', '--name DNS', '--client NAME[=SPIFFE-ID]', '--days N', '--force']) assert.ok(run.stdout.includes(option), option);
  });
});
