import type { DenialCode } from '../pipeline/denials.js';
import { PIN_MISMATCH } from './upstream-tls.js';

/** How a failure before the upstream's response started is answered: the code, and what happened in words for the audit record. */
export interface UpstreamFailure {
  readonly code: DenialCode;
  readonly what: string;
}

const untrusted = (what: string): UpstreamFailure => ({ code: 'upstream_tls_untrusted', what });
const handshake = (what: string): UpstreamFailure => ({ code: 'upstream_tls_handshake', what });
const unreachable: UpstreamFailure = { code: 'upstream_unreachable', what: 'upstream unreachable' };

/**
 * Error codes of undici, the network and TLS (OpenSSL's verify results as Node names them, Node's
 * own, and OpenSSL's `ERR_SSL_*`), each with the denial it maps to. One table, so a new case is a
 * row: the verify results say why a chain is not trusted (expired, self-signed, unknown CA, name),
 * the alerts why the handshake failed (client certificate wanted or refused, no common version).
 */
export const UPSTREAM_FAILURES: ReadonlyMap<string, UpstreamFailure> = new Map<string, UpstreamFailure>([
  ['UND_ERR_CONNECT_TIMEOUT', { code: 'upstream_timeout', what: 'upstream connect timeout' }],
  ['UND_ERR_HEADERS_TIMEOUT', { code: 'upstream_timeout', what: 'upstream headers timeout' }],
  ['UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', { code: 'bad_request', what: 'request body length differs from its Content-Length' }],
  ['ECONNREFUSED', unreachable],
  ['ENOTFOUND', unreachable],
  ['EHOSTUNREACH', unreachable],
  ['ENETUNREACH', unreachable],
  ['EAI_AGAIN', unreachable],

  // The chain or the name: the upstream is not who it must be (a man in the middle, or a misissued certificate).
  ['CERT_HAS_EXPIRED', untrusted('upstream certificate expired')],
  ['CERT_NOT_YET_VALID', untrusted('upstream certificate not yet valid')],
  ['ERROR_IN_CERT_NOT_BEFORE_FIELD', untrusted('upstream certificate has an invalid validity period')],
  ['ERROR_IN_CERT_NOT_AFTER_FIELD', untrusted('upstream certificate has an invalid validity period')],
  ['DEPTH_ZERO_SELF_SIGNED_CERT', untrusted('upstream certificate is self-signed and not trusted')],
  ['SELF_SIGNED_CERT_IN_CHAIN', untrusted('upstream chain ends in a self-signed CA that is not trusted')],
  ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', untrusted('upstream certificate issued by an unknown CA')],
  ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', untrusted('upstream certificate issued by an unknown CA')],
  ['UNABLE_TO_GET_ISSUER_CERT', untrusted('upstream certificate issued by an unknown CA')],
  ['UNABLE_TO_DECRYPT_CERT_SIGNATURE', untrusted('upstream certificate signature invalid')],
  ['UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', untrusted('upstream certificate signature invalid')],
  ['CERT_SIGNATURE_FAILURE', untrusted('upstream certificate signature invalid')],
  ['CERT_CHAIN_TOO_LONG', untrusted('upstream chain too long')],
  ['PATH_LENGTH_EXCEEDED', untrusted('upstream chain exceeds a CA path length constraint')],
  ['INVALID_CA', untrusted('upstream chain contains a certificate that is not a CA')],
  ['INVALID_PURPOSE', untrusted('upstream certificate not issued for server authentication')],
  ['CERT_UNTRUSTED', untrusted('upstream certificate not trusted')],
  ['CERT_REJECTED', untrusted('upstream certificate rejected')],
  ['CERT_REVOKED', untrusted('upstream certificate revoked')],
  ['HOSTNAME_MISMATCH', untrusted('upstream certificate name mismatch')],
  ['ERR_TLS_CERT_ALTNAME_INVALID', untrusted('upstream certificate name mismatch')],
  [PIN_MISMATCH, { code: 'upstream_tls_pin_mismatch', what: 'upstream public key matches no pin' }],

  // The handshake: the two sides could not agree, or the upstream refused the gateway.
  ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', handshake('upstream requires a client certificate')],
  ['ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', handshake('upstream refused the handshake (a client certificate it requires, or no common cipher)')],
  ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', handshake('upstream does not trust the client certificate')],
  ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', handshake('upstream refused the client certificate')],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', handshake('upstream refused the client certificate as expired')],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED', handshake('upstream refused the client certificate as revoked')],
  ['ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', handshake('upstream denied access to the client certificate')],
  ['ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', handshake('no TLS version both sides accept')],
  ['ERR_SSL_UNSUPPORTED_PROTOCOL', handshake('no TLS version both sides accept')],
  ['ERR_SSL_WRONG_VERSION_NUMBER', handshake('upstream does not speak TLS on this port')],
  ['ERR_SSL_PACKET_LENGTH_TOO_LONG', handshake('upstream does not speak TLS on this port')],
]);

/** Families of codes the table does not name: any other OpenSSL error is a failed handshake. */
const FAMILIES: readonly (readonly [prefix: string, failure: UpstreamFailure])[] = [
  ['ERR_SSL_', handshake('TLS handshake failed')],
];

const OTHER: UpstreamFailure = { code: 'upstream_error', what: 'upstream failed' };

/** The error code undici reports, or that of the error it wraps. */
export function errorCode(error: Error & { code?: unknown; cause?: unknown }): string {
  if (typeof error.code === 'string') return error.code;
  const cause = error.cause as { code?: unknown } | undefined;
  return typeof cause?.code === 'string' ? cause.code : '';
}

/** How an error before the response started is answered: its row of UPSTREAM_FAILURES, its family's, or upstream_error. */
export function classifyUpstreamFailure(code: string): UpstreamFailure {
  return UPSTREAM_FAILURES.get(code) ?? FAMILIES.find(([prefix]) => code.startsWith(prefix))?.[1] ?? OTHER;
}
