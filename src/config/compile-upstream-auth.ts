import { secretDigester } from '../lib/secret-digest.js';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import type { ConfigPath, ConfigSource } from './config-source.js';
import type { ConfigProblem } from './errors.js';
import type { RawClientCredentials, RawUpstream } from './schema.js';
import type { ClientAuthMethod } from './schema-upstream-auth.js';
import type { ResourceCatalog } from '../lifecycle/resources.js';
import {
  checkAuthorizationServerUrl, UpstreamTokenSource, type AssertionKeyAlgorithm, type ClientCredential, type ClientCredentialsSpec,
} from '../proxy/upstream-token.js';

/** Documented defaults of `upstreams.<name>.auth.clientCredentials`; docs/configuration.md lists the same values. */
export const CLIENT_CREDENTIALS_DEFAULTS = Object.freeze({
  refreshBeforeMs: 60_000,
  timeoutMs: 5000,
  maxResponseBytes: 65_536,
});

/**
 * Compiles `upstreams.<name>.auth`: the token source of each upstream that has one, by upstream
 * name. Upstreams with the same setup (server, client, credential, parameters) share one source,
 * so one token; a running source of an equal setup is reused across reloads. Every problem is
 * located at the option that causes it. Nothing is fetched or opened.
 */
export function compileUpstreamCredentials(
  upstreams: Readonly<Record<string, RawUpstream>>, loaded: ConfigSource, catalog: ResourceCatalog, problems: ConfigProblem[],
): ReadonlyMap<string, UpstreamTokenSource> {
  const setups = new Map<string, { names: string[]; spec: Omit<ClientCredentialsSpec, 'upstreams'>; credential: ClientCredential }>();
  for (const [name, u] of Object.entries(upstreams)) {
    const raw = u.auth?.clientCredentials;
    if (raw === undefined) continue;
    const compiled = compileSetup(raw, (...path) => ['upstreams', name, 'auth', 'clientCredentials', ...path], loaded, problems);
    if (compiled === null) continue;
    const id = JSON.stringify(compiled.spec);
    const setup = setups.get(id);
    if (setup === undefined) setups.set(id, { names: [name], ...compiled });
    else setup.names.push(name);
  }
  const sources = new Map<string, UpstreamTokenSource>();
  for (const { names, spec, credential } of setups.values()) {
    const full: ClientCredentialsSpec = { upstreams: names.join(','), ...spec };
    const source = catalog.find(UpstreamTokenSource.keyOf(full), UpstreamTokenSource) ?? new UpstreamTokenSource(full, credential);
    for (const name of names) sources.set(name, source);
  }
  return sources;
}

function compileSetup(
  raw: RawClientCredentials, at: (...path: string[]) => ConfigPath, loaded: ConfigSource, problems: ConfigProblem[],
): { spec: Omit<ClientCredentialsSpec, 'upstreams'>; credential: ClientCredential } | null {
  const before = problems.length;
  const fail = (path: ConfigPath, message: string): void => { problems.push(loaded.problem(path, message)); };
  if (raw.tokenEndpoint === undefined && raw.issuer === undefined) {
    fail(at(), 'needs tokenEndpoint (the token endpoint\'s URL) or issuer (its token endpoint is discovered from the server\'s metadata)');
  } else if (raw.tokenEndpoint !== undefined && raw.issuer !== undefined) {
    fail(at('issuer'), 'use either tokenEndpoint or issuer, not both: with issuer the token endpoint is discovered');
  }
  for (const field of ['tokenEndpoint', 'issuer'] as const) {
    const value = raw[field];
    const problem = value === undefined ? null : checkAuthorizationServerUrl(value);
    if (problem !== null) fail(at(field), problem);
  }

  let credential: ClientCredential | null = null;
  const digest = secretDigester();
  if (raw.clientSecret !== undefined && raw.privateKeyJwt !== undefined) {
    fail(at('privateKeyJwt'), 'use either clientSecret or privateKeyJwt, not both');
  } else if (raw.clientSecret !== undefined) {
    credential = { kind: 'secret', secret: raw.clientSecret };
    digest.update(`secret\0${raw.clientSecret}`);
  } else if (raw.privateKeyJwt !== undefined) {
    const { file, kid } = raw.privateKeyJwt;
    const read = loaded.files.readText(file);
    if (!read.ok) fail(at('privateKeyJwt', 'file'), `${read.message}: write the path of a PEM private key, absolute or relative to the config file's directory (${loaded.files.baseDir})`);
    else {
      const key = assertionKey(read.text);
      if (typeof key === 'string') fail(at('privateKeyJwt', 'file'), `${file}: ${key}`);
      else {
        credential = { kind: 'key', ...key, kid: kid ?? null };
        digest.update(`key\0${kid ?? ''}\0`).update(key.pkcs8);
      }
    }
  } else {
    fail(at(), 'needs clientSecret (client_secret_basic or client_secret_post) or privateKeyJwt (private_key_jwt)');
  }
  const clientAuth: ClientAuthMethod = raw.clientAuth ?? (raw.privateKeyJwt !== undefined ? 'private_key_jwt' : 'client_secret_basic');
  if (clientAuth === 'private_key_jwt' && raw.privateKeyJwt === undefined && raw.clientSecret !== undefined) {
    fail(at('clientAuth'), 'private_key_jwt signs with privateKeyJwt, which is not set: add privateKeyJwt { file, kid }, or use client_secret_basic or client_secret_post with clientSecret');
  } else if (clientAuth !== 'private_key_jwt' && raw.privateKeyJwt !== undefined && raw.clientSecret === undefined) {
    fail(at('clientAuth'), `${clientAuth} sends clientSecret, which is not set: use private_key_jwt with privateKeyJwt, or set clientSecret instead`);
  }
  if (problems.length > before || credential === null) return null;
  return {
    spec: {
      tokenEndpoint: raw.tokenEndpoint ?? null,
      issuer: raw.issuer ?? null,
      clientId: raw.clientId,
      clientAuth,
      scope: raw.scope ?? null,
      audience: raw.audience ?? null,
      resource: raw.resource ?? null,
      refreshBeforeMs: raw.refreshBeforeMs ?? CLIENT_CREDENTIALS_DEFAULTS.refreshBeforeMs,
      timeoutMs: raw.timeoutMs ?? CLIENT_CREDENTIALS_DEFAULTS.timeoutMs,
      maxResponseBytes: raw.maxResponseBytes ?? CLIENT_CREDENTIALS_DEFAULTS.maxResponseBytes,
      credentialDigest: digest.digest('hex'),
    },
    credential,
  };
}

/** A private_key_jwt key from PEM: its PKCS#8 bytes and signing algorithm, or why it cannot sign assertions. */
function assertionKey(pem: string): { pkcs8: Buffer; algorithm: AssertionKeyAlgorithm } | string {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return code === 'ERR_MISSING_PASSPHRASE' ? 'the key is encrypted: write it unencrypted (PKCS#8), and protect the file instead'
      : 'holds no PEM private key: write a file with a -----BEGIN PRIVATE KEY----- block (PKCS#8)';
  }
  let algorithm: AssertionKeyAlgorithm;
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : curve === 'secp521r1' ? 'P-521' : null;
      if (named === null) return `is an EC key on ${curve ?? 'an unknown curve'}; use P-256, P-384 or P-521`;
      algorithm = { name: 'ECDSA', namedCurve: named };
      break;
    }
    case 'rsa':
      if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) return 'is an RSA key shorter than 2048 bits';
      algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
      break;
    case 'ed25519':
      algorithm = { name: 'Ed25519' };
      break;
    default:
      return `is a ${key.asymmetricKeyType ?? 'unknown'} key; use an EC (P-256, P-384, P-521), RSA or Ed25519 key`;
  }
  return { pkcs8: key.export({ format: 'der', type: 'pkcs8' }), algorithm };
}
