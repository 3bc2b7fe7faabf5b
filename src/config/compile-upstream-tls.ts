import { createHash, createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { ConfigPath, ConfigSource } from './config-source.js';
import type { ConfigProblem } from './errors.js';
import type { RawUpstream, RawUpstreamTls } from './schema.js';
import { notAfterMs, parseCertificates, subjectOf } from '../tls/certificate-expiry.js';
import { TlsMaterial, type UpstreamTls } from '../proxy/upstream-tls.js';

/** The default lowest TLS version of an upstream; docs/configuration.md states the same. */
export const DEFAULT_UPSTREAM_TLS_MIN_VERSION = 'TLSv1.2';

/**
 * Checks the schemes of an upstream's targets and compiles its `tls` section: null for http://
 * targets, the TLS settings with the PEM texts read (through the config's file reader, so their
 * contents are part of the config version and of the upstream's identity) for https:// targets.
 * Every problem is located at the option that causes it: `tls` on http:// targets, http and https
 * targets mixed, an unreadable or non-PEM file, a key that does not match its certificate, an
 * expired client certificate, options that contradict `insecureSkipVerify`.
 */
export function compileUpstreamTls(name: string, u: RawUpstream, loaded: ConfigSource, nowMs: number, problems: ConfigProblem[]): UpstreamTls | null {
  const at = (...path: (string | number)[]): ConfigPath => ['upstreams', name, ...path];
  const https = u.targets.map((t) => t.toLowerCase().startsWith('https://'));
  const first = https[0] === true;
  const mixed = https.findIndex((h) => h !== first);
  if (mixed >= 0) {
    problems.push(loaded.problem(at('targets', mixed), `mixes ${first ? 'https' : 'http'}:// and ${first ? 'http' : 'https'}:// targets in one upstream: ` +
      'every target of an upstream is reached the same way; give each scheme its own upstream'));
    return null;
  }
  if (!first) {
    if (u.tls !== undefined) {
      problems.push(loaded.problem(at('tls'), 'applies to https:// targets only, and these targets are http://: write the targets as https:// or remove tls', true));
    }
    return null;
  }
  const tls: RawUpstreamTls = u.tls ?? {};
  const before = problems.length;
  const digest = createHash('sha256');
  const read = (path: ConfigPath, file: string): string | null => {
    const text = loaded.files.readText(file);
    if (!text.ok) {
      problems.push(loaded.problem(path, `${text.message}: write the path of a PEM file, absolute or relative to the config file's directory (${loaded.files.baseDir})`));
      return null;
    }
    digest.update(`${file}\0${text.text}\0`);
    return text.text;
  };
  const certificates = (path: ConfigPath, file: string, text: string): X509Certificate[] => {
    try {
      const certs = parseCertificates(text);
      if (certs.length > 0) return certs;
      problems.push(loaded.problem(path, `${file} holds no PEM certificate: write a file with -----BEGIN CERTIFICATE----- blocks`));
    } catch (err) {
      problems.push(loaded.problem(path, `${file}: ${(err as Error).message}`));
    }
    return [];
  };

  if (tls.servername !== undefined && isIP(tls.servername.replace(/\.$/, '')) !== 0) {
    problems.push(loaded.problem(at('tls', 'servername'), 'is an IP address, which is never sent in SNI: leave servername out to verify the IP address of an IP target against the certificate\'s IP SANs'));
  }
  if (tls.insecureSkipVerify === true) {
    for (const option of ['ca', 'pins'] as const) {
      if (tls[option] !== undefined) problems.push(loaded.problem(at('tls', option), `has no effect with tls.insecureSkipVerify: true, which accepts any certificate: remove one of the two`, true));
    }
  }

  let ca: string[] | null = null;
  if (tls.ca !== undefined) {
    const files = typeof tls.ca === 'string' ? [tls.ca] : tls.ca;
    ca = [];
    files.forEach((file, i) => {
      const path = typeof tls.ca === 'string' ? at('tls', 'ca') : at('tls', 'ca', i);
      const text = read(path, file);
      if (text !== null && certificates(path, file, text).length > 0) ca?.push(text);
    });
  }

  let cert: string | null = null;
  let key: string | null = null;
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    const [given, missing] = tls.cert === undefined ? ['key', 'cert'] : ['cert', 'key'];
    problems.push(loaded.problem(at('tls', given), `needs tls.${missing} too: a client certificate is presented with its private key`, true));
  } else if (tls.cert !== undefined && tls.key !== undefined) {
    cert = read(at('tls', 'cert'), tls.cert);
    key = read(at('tls', 'key'), tls.key);
    const leaf = cert === null ? undefined : certificates(at('tls', 'cert'), tls.cert, cert)[0];
    let privateKey: KeyObject | null = null;
    if (key !== null) {
      try {
        privateKey = createPrivateKey(key);
      } catch (err) {
        problems.push(loaded.problem(at('tls', 'key'), `${tls.key} is not an unencrypted PEM private key (${(err as Error).message})`));
      }
    }
    if (leaf !== undefined) {
      const expires = notAfterMs(leaf);
      if (expires <= nowMs) {
        problems.push(loaded.problem(at('tls', 'cert'), `${tls.cert} (${subjectOf(leaf)}) expired on ${new Date(expires).toISOString()}: issue a new client certificate`));
      }
      if (privateKey !== null && !leaf.checkPrivateKey(privateKey)) {
        problems.push(loaded.problem(at('tls', 'key'), `${tls.key} is not the private key of the certificate in ${tls.cert} (${subjectOf(leaf)}): write the key the certificate was issued for`));
      }
    }
  }
  if (problems.length > before) return null;

  return {
    servername: tls.servername?.replace(/\.$/, '').toLowerCase() ?? null,
    minVersion: tls.minVersion ?? DEFAULT_UPSTREAM_TLS_MIN_VERSION,
    pins: (tls.pins ?? []).map((p) => p.slice('sha256/'.length)),
    insecureSkipVerify: tls.insecureSkipVerify === true,
    material: new TlsMaterial(ca, cert, key, digest.digest('hex')),
  };
}
