import { Type, type Static } from '@sinclair/typebox';
import { strict } from './schema-parts.js';

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

export const HttpsListenSchema = strict({
  port: Type.Optional(Port),
  host: Type.Optional(Host),
  cert: PemFile('The server certificate (PEM), followed by its intermediates, relative to the config file.'),
  key: PemFile('The private key of `cert` (PEM, unencrypted), relative to the config file.'),
  clientAuth: Type.Optional(ClientAuthSchema),
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
