import { request as httpsRequest, type RequestOptions } from 'node:https';
import { connect, TLSSocket, type ConnectionOptions } from 'node:tls';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { issueCertificate, issueCertificateAuthority, type CertificateSpec, type IssuedCertificate } from '../../src/tls/issue-certificates.js';

export type { IssuedCertificate } from '../../src/tls/issue-certificates.js';

/** A test PKI: a root CA and a server certificate for localhost and 127.0.0.1 issued by it. */
export interface TestPki {
  readonly ca: IssuedCertificate;
  readonly server: IssuedCertificate;
}

export async function testPki(server: Partial<CertificateSpec> = {}): Promise<TestPki> {
  const ca = await issueCertificateAuthority('Portcullis Test Root CA');
  const cert = await issueCertificate({ commonName: 'localhost', dns: ['localhost'], ips: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'], ...server }, ca);
  return { ca, server: cert };
}

/** Writes a certificate and its key as `<name>.crt` and `<name>.key` in `dir`; returns the file names. */
export async function writeCertificate(dir: string, name: string, issued: IssuedCertificate, chain: readonly IssuedCertificate[] = []): Promise<{ cert: string; key: string }> {
  await writeFile(join(dir, `${name}.crt`), issued.cert + chain.map((c) => c.cert).join(''));
  await writeFile(join(dir, `${name}.key`), issued.key, { mode: 0o600 });
  return { cert: `${name}.crt`, key: `${name}.key` };
}

export interface TlsResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** The certificate the server presented (its fingerprint). */
  readonly serverFingerprint: string;
  readonly protocol: string | null;
}

/** One HTTPS request with node:https (no connection reuse), trusting `ca`. */
export function httpsGet(url: string, ca: string, options: RequestOptions = {}): Promise<TlsResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, agent: false, ...options }, (res) => {
      const socket = res.socket;
      if (!(socket instanceof TLSSocket)) { reject(new Error('not a TLS connection')); return; }
      const serverFingerprint = socket.getPeerCertificate().fingerprint256;
      const protocol = socket.getProtocol();
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), serverFingerprint, protocol }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A TLS handshake alone: resolves with the connected socket's facts, or the error that ended it. */
export function handshake(port: number, options: ConnectionOptions): Promise<{ ok: true; socket: TLSSocket } | { ok: false; error: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, ...options });
    socket.once('secureConnect', () => resolve({ ok: true, socket }));
    socket.once('error', (error: NodeJS.ErrnoException) => { socket.destroy(); resolve({ ok: false, error }); });
  });
}

/** A `beforeStart` that writes the PKI's server certificate and key as `tls/server.crt` and `tls/server.key`. */
export function withServerCertificate(pki: TestPki): (dir: string) => Promise<void> {
  return async (dir) => {
    await mkdir(join(dir, 'tls'), { recursive: true });
    await writeCertificate(join(dir, 'tls'), 'server', pki.server);
  };
}

/** The fingerprint of the certificate a TLS listener presents for `servername` (none: no SNI); the name is not verified. */
export async function presentedCertificate(port: number, ca: string, servername?: string): Promise<string> {
  const result = await handshake(port, { ca, ...(servername === undefined ? {} : { servername }), checkServerIdentity: () => undefined });
  if (!result.ok) throw result.error;
  const fingerprint = result.socket.getPeerCertificate().fingerprint256;
  result.socket.destroy();
  return fingerprint;
}
