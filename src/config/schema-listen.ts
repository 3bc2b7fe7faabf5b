import { Type, type Static } from '@sinclair/typebox';
import { strict } from './schema-parts.js';

const Port = Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port; 0 picks a free port (tests).' });
const Host = Type.String({ minLength: 1, description: 'Address to bind, e.g. 0.0.0.0, 127.0.0.1 or ::.' });
/** A file a listener reads (PEM), relative to the config file. */
export const PemFile = (description: string) => Type.String({ minLength: 1, maxLength: 4096, description });

export const HttpsListenSchema = strict({
  port: Type.Optional(Port),
  host: Type.Optional(Host),
  cert: PemFile('The server certificate (PEM), followed by its intermediates, relative to the config file.'),
  key: PemFile('The private key of `cert` (PEM, unencrypted), relative to the config file.'),
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
