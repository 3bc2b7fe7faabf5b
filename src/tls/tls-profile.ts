import type { SecureContextOptions } from 'node:tls';
import type { TlsProfileName } from '../config/schema-listen.js';

/**
 * Mozilla's server-side TLS guideline (version 5.7): `intermediate` for general-purpose servers,
 * `modern` when every client speaks TLS 1.3. Each is the secure-context options it stands for.
 *
 * - intermediate: TLS 1.2 and 1.3; for 1.2 only ECDHE key exchange with AEAD ciphers (GCM,
 *   ChaCha20-Poly1305), so no CBC, RC4, 3DES, static-RSA or export suites (Lucky13, SWEET32,
 *   ROBOT, FREAK, Logjam); the client's order among those is honoured.
 * - modern: TLS 1.3 only, its three AEAD suites.
 * Both: curves X25519, P-256 and P-384.
 */
export const TLS_PROFILE_OPTIONS: Readonly<Record<TlsProfileName, Readonly<SecureContextOptions>>> = Object.freeze({
  intermediate: Object.freeze({
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: [
      'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
      'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
    ].join(':'),
    ecdhCurve: 'X25519:prime256v1:secp384r1',
    honorCipherOrder: false,
  }),
  modern: Object.freeze({
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
    ecdhCurve: 'X25519:prime256v1:secp384r1',
    honorCipherOrder: false,
  }),
});

export const DEFAULT_TLS_PROFILE: TlsProfileName = 'intermediate';
