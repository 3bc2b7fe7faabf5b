import { Type, type Static } from '@sinclair/typebox';
import { Millis, strict } from './schema-parts.js';

const Port = Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port; 0 picks a free port (tests).' });
const Host = Type.String({ minLength: 1, description: 'Address to bind, e.g. 0.0.0.0, 127.0.0.1 or ::.' });
/** A file a listener reads (PEM), relative to the config file. */
export const PemFile = (description: string) => Type.String({ minLength: 1, maxLength: 4096, description });
const OcspStaple = Type.String({ minLength: 1, maxLength: 4096, description: 'A DER OCSP response for the certificate, relative to the config file, stapled when a client asks (re-read on reload).' });

/** What the plain listener does: serve the routes, redirect every request to HTTPS, or not exist. */
export const HTTP_MODES = ['serve', 'redirect', 'off'] as const;
export type HttpMode = typeof HTTP_MODES[number];

/** Mozilla server-side TLS profiles (see src/tls/tls-profile.ts). */
export const TLS_PROFILES = ['intermediate', 'modern'] as const;
export type TlsProfileName = typeof TLS_PROFILES[number];

/** A certificate served by SNI besides the default one. */
export const SniCertificateSchema = strict({
  cert: PemFile('The certificate (PEM), followed by its intermediates, relative to the config file.'),
  key: PemFile('The private key of `cert` (PEM, unencrypted), relative to the config file.'),
  names: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { minItems: 1, maxItems: 1000, description: 'Server names (SNI) it is served for: exact names and `*.example.com` wildcards. Default: its DNS SANs (its CN when it has none).' })),
  ocspStaple: Type.Optional(OcspStaple),
}, 'A certificate chosen by the server name (SNI) a client asks for.');

/** A PEM file, or a list of them. */
const PemFiles = (description: string) => Type.Union([PemFile(description), Type.Array(PemFile(description), { minItems: 1, maxItems: 64 })], { description });

/** Client certificates asked for in the TLS handshake (mTLS); see src/tls/client-auth.ts. */
export const ClientAuthSchema = strict({
  mode: Type.Optional(Type.Union([Type.Literal('request'), Type.Literal('require')], { description: 'require: the handshake fails without a valid client certificate. request: any client may connect; a certificate it presents is verified, and an mtls authenticator acts on the verdict. Default require.' })),
  ca: PemFiles('The certificate authorities client certificates must chain to (PEM bundle, or a list of files), relative to the config file. Required.'),
  crl: Type.Optional(PemFiles('Certificate revocation lists (PEM), relative to the config file. With any CRL set, every CA of a client chain needs its CRL here. Default none.')),
  maxChainDepth: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, description: 'Most certificates in a client chain, the client certificate and the CA included. Default 3.' })),
}, 'Client certificates (mutual TLS): the CAs that issue them, revocation, and whether one is required. Absent: none asked for.');
/** HTTP/2 on the HTTPS listener (see src/server/h2-front.ts); every limit bounds one session. */
export const Http2Schema = strict({
  enabled: Type.Optional(Type.Boolean({ description: 'Offer HTTP/2 (`h2`) by ALPN beside HTTP/1.1. Default true.' })),
  maxConcurrentStreams: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Most streams a client may have open at once on one connection. Default 100.' })),
  maxSessionMemoryMb: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'Most memory (MiB) one connection may hold in HTTP/2 state (header tables, queued frames); past it new streams are refused. Default 10.' })),
  maxStreamResets: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000, description: 'Most streams the client may reset before their response is sent, per streamResetWindowMs, before the connection is closed with GOAWAY ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487). Default 100.' })),
  streamResetWindowMs: Type.Optional(Millis('The window maxStreamResets counts in, in milliseconds. Default 10000.', 100)),
  maxInvalidFrames: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000, description: 'Most invalid or empty frames one connection may send before it is closed (frame floods, CVE-2019-9518). Default 100.' })),
  maxRejectedStreams: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000, description: 'Most streams the gateway may refuse on one connection (past maxConcurrentStreams, malformed) before it is closed. Default 100.' })),
}, 'HTTP/2 on the HTTPS listener. Default: on, with the limits below.');

export const HttpsListenSchema = strict({
  port: Type.Optional(Port),
  host: Type.Optional(Host),
  cert: PemFile('The server certificate (PEM), followed by its intermediates, relative to the config file.'),
  key: PemFile('The private key of `cert` (PEM, unencrypted), relative to the config file.'),
  clientAuth: Type.Optional(ClientAuthSchema),
  http2: Type.Optional(Http2Schema),
  ocspStaple: Type.Optional(OcspStaple),
  certificates: Type.Optional(Type.Array(SniCertificateSchema, { maxItems: 1000, description: 'More certificates, chosen by SNI; a client naming none of them (or no name) gets `cert`.' })),
  profile: Type.Optional(Type.Unsafe<TlsProfileName>({ type: 'string', enum: [...TLS_PROFILES], description: 'Mozilla server-side TLS profile: intermediate (TLS 1.2 and 1.3, ECDHE with AEAD ciphers) or modern (TLS 1.3 only). Default intermediate.' })),
  handshakeTimeoutMs: Type.Optional(Millis('How long a client may take to complete the TLS handshake before the connection is closed. Default 10000.')),
}, 'HTTPS listener. Default port 8443 on 0.0.0.0. Absent: no HTTPS listener.');

export const ListenSchema = strict({
  http: Type.Optional(strict({
    port: Type.Optional(Port),
    host: Type.Optional(Host),
    mode: Type.Optional(Type.Unsafe<HttpMode>({ type: 'string', enum: [...HTTP_MODES], description: 'serve: the routes over plain HTTP; redirect: every request answered 308 to the same target on the HTTPS listener; off: no plain listener. redirect and off require listen.https. Default serve.' })),
  }, 'Plain HTTP listener. Default port 8080 on 0.0.0.0.')),
  https: Type.Optional(HttpsListenSchema),
}, 'Proxy listeners.');

/** `reload`: when the running gateway reloads by itself. */
export const ReloadSchema = strict({
  watchFiles: Type.Optional(Type.Boolean({ description: 'Reload when a file the config references (certificates, keys, CA bundles, CRLs, key sets, the audit signing key) changes. Default true.' })),
  watchIntervalMs: Type.Optional(Millis('How often those files are checked (stat), and how long a change must be stable before the reload. Default 2000.', 10)),
}, 'Automatic reloads on changes of referenced files.');

/** `tls`: settings over every certificate the config uses. */
export const TlsSchema = strict({
  expiryWarningDays: Type.Optional(Type.Integer({ minimum: 0, maximum: 3650, description: 'Warn (log line and audit alert record) about every certificate the config uses that expires within this many days, at start, after each reload and daily; 0: only expired ones. Default 14.' })),
}, 'Certificate-wide TLS settings.');

export type RawListen = Static<typeof ListenSchema>;
export type RawHttpsListen = Static<typeof HttpsListenSchema>;
export type RawClientAuth = Static<typeof ClientAuthSchema>;
export type RawHttp2 = Static<typeof Http2Schema>;
export type RawSniCertificate = Static<typeof SniCertificateSchema>;
export type RawReload = Static<typeof ReloadSchema>;
export type RawTls = Static<typeof TlsSchema>;
