import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type ConnectionOptions } from 'node:tls';
import { issueCertificate, issueCertificateAuthority, issueCrl, type CertificateSpec, type IssuedCertificate } from '../../src/tls/issue-certificates.js';
import { testPki, writeCertificate, type TestPki } from './tls.js';

/** What one TLS connection with one request came to: the response, or how the connection ended without one. */
export interface Attempt {
  /** The response status, null when no response came. */
  readonly status: number | null;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** The client-side error code that ended the connection (an alert, a reset), or null. */
  readonly error: string | null;
  /** Whether the handshake completed on the client's side (TLS 1.3 completes before the server judges the certificate). */
  readonly handshook: boolean;
}

/**
 * Connects to 127.0.0.1:`port` with TLS (trusting `serverCa`), sends one GET with
 * `Connection: close`, and reads until the server closes. Bounded by `timeoutMs`.
 */
export function attempt(port: number, serverCa: string, options: ConnectionOptions, path = '/svc/a', headers: readonly string[] = [], timeoutMs = 5000): Promise<Attempt> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: serverCa, ...options });
    const chunks: Buffer[] = [];
    let error: string | null = null;
    let handshook = false;
    const timer = setTimeout(() => { error ??= 'timeout'; socket.destroy(); }, timeoutMs);
    socket.on('secureConnect', () => {
      handshook = true;
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => { error ??= err.code ?? err.message; });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ ...parse(Buffer.concat(chunks).toString('utf8')), error, handshook });
    });
  });
}

function parse(text: string): Pick<Attempt, 'status' | 'headers' | 'body'> {
  const end = text.indexOf('\r\n\r\n');
  if (!text.startsWith('HTTP/1.1 ') || end === -1) return { status: null, headers: {}, body: text };
  const [line = '', ...fields] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const field of fields) {
    const colon = field.indexOf(':');
    headers[field.slice(0, colon).toLowerCase()] = field.slice(colon + 1).trim();
  }
  return { status: Number(line.split(' ')[1]), headers, body: text.slice(end + 4) };
}

/** A client certificate for `attempt`: the certificate (with the chain it sends) and its key. */
export function presenting(cert: IssuedCertificate, chain: readonly IssuedCertificate[] = []): ConnectionOptions {
  return { cert: cert.cert + chain.map((c) => c.cert).join(''), key: cert.key };
}

const DAY = 86_400_000;

/** The certificates of the mTLS tests: one client CA with CRL, and a client certificate for each case of the matrix. */
export interface ClientPki {
  readonly server: TestPki;
  readonly root: IssuedCertificate;
  readonly inter: IssuedCertificate;
  readonly inter2: IssuedCertificate;
  readonly other: IssuedCertificate;
  readonly payments: IssuedCertificate;
  readonly orders: IssuedCertificate;
  readonly viaInter: IssuedCertificate;
  readonly deep: IssuedCertificate;
  readonly unknownCa: IssuedCertificate;
  readonly expired: IssuedCertificate;
  readonly notYetValid: IssuedCertificate;
  readonly revoked: IssuedCertificate;
  readonly serverEku: IssuedCertificate;
  readonly unmapped: IssuedCertificate;
  readonly twoUris: IssuedCertificate;
  readonly noEku: IssuedCertificate;
}

export async function clientPki(): Promise<ClientPki> {
  const server = await testPki();
  const root = await issueCertificateAuthority('Portcullis Test Clients CA');
  const inter = await issueCertificate({ commonName: 'Clients Intermediate', ca: true }, root);
  const inter2 = await issueCertificate({ commonName: 'Clients Intermediate 2', ca: true }, inter);
  const other = await issueCertificateAuthority('Unknown CA');
  const client = (name: string, spiffe: string | null, extra: Partial<CertificateSpec> = {}, issuer: IssuedCertificate = root) =>
    issueCertificate({ commonName: name, ...(spiffe === null ? {} : { uris: [spiffe] }), extendedKeyUsage: ['clientAuth'], ...extra }, issuer);
  return {
    server, root, inter, inter2, other,
    payments: await client('payments', 'spiffe://example.org/ns/payments/sa/api'),
    orders: await client('orders', 'spiffe://example.org/ns/orders/sa/web'),
    viaInter: await client('via-inter', 'spiffe://example.org/ns/payments/sa/batch', {}, inter),
    deep: await client('deep', 'spiffe://example.org/ns/payments/sa/deep', {}, inter2),
    unknownCa: await client('unknown', 'spiffe://example.org/ns/payments/sa/api', {}, other),
    expired: await client('expired', 'spiffe://example.org/ns/payments/sa/api', { notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) }),
    notYetValid: await client('not-yet', 'spiffe://example.org/ns/payments/sa/api', { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) }),
    revoked: await client('revoked', 'spiffe://example.org/ns/payments/sa/api'),
    serverEku: await client('server-eku', 'spiffe://example.org/ns/payments/sa/api', { extendedKeyUsage: ['serverAuth'] }),
    unmapped: await client('unmapped', 'spiffe://elsewhere.org/ns/x/sa/y'),
    twoUris: await client('two-uris', null, { uris: ['spiffe://example.org/ns/payments/sa/api', 'https://example.org/payments'] }),
    noEku: await client('no-eku', 'spiffe://example.org/ns/payments/sa/api', { extendedKeyUsage: [] }),
  };
}

/** Writes the server's certificate, the clients CA and CRLs (revoking `revoked`) under `<dir>/tls`. */
export async function writeClientPki(dir: string, pki: ClientPki, revoked: readonly IssuedCertificate[] = [pki.revoked]): Promise<void> {
  const tls = join(dir, 'tls');
  await mkdir(tls, { recursive: true });
  await writeCertificate(tls, 'server', pki.server.server);
  await writeFile(join(tls, 'clients-ca.crt'), pki.root.cert);
  await writeCrls(dir, pki, revoked);
}

/** The CRLs of the clients CA and both intermediates, revoking `revoked` (each CA lists those it issued). */
export async function writeCrls(dir: string, pki: ClientPki, revoked: readonly IssuedCertificate[]): Promise<void> {
  const crls = await Promise.all([pki.root, pki.inter, pki.inter2].map((ca) => issueCrl(ca, revoked.map((c) => c.serial))));
  await writeFile(join(dir, 'tls', 'clients.crl'), crls.join(''));
}
