import { Type, type Static } from '@sinclair/typebox';
import { Millis, strict } from './schema-parts.js';

const Port = Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port; 0 picks a free port (tests).' });
const Host = Type.String({ minLength: 1, description: 'Address to bind, e.g. 0.0.0.0, 127.0.0.1 or ::.' });
/** A file a listener reads (PEM), relative to the config file. */
export const PemFile = (description: string) => Type.String({ minLength: 1, maxLength: 4096, description });

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
}, 'HTTPS listener. Default port 8443 on 0.0.0.0. Absent: no HTTPS listener.');

export const ListenSchema = strict({
  http: Type.Optional(strict({
    port: Type.Optional(Port),
    host: Type.Optional(Host),
  }, 'Plain HTTP listener. Default port 8080 on 0.0.0.0.')),
  https: Type.Optional(HttpsListenSchema),
}, 'Proxy listeners.');

export type RawListen = Static<typeof ListenSchema>;
export type RawHttpsListen = Static<typeof HttpsListenSchema>;
export type RawClientAuth = Static<typeof ClientAuthSchema>;
export type RawHttp2 = Static<typeof Http2Schema>;
