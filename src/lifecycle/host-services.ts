import type { ApiKeySettings } from '../authn/api-key/backend.js';
import type { KeyChangeSource } from '../authn/api-key/key-directory.js';
import type { JwksFetcher } from '../authn/jwt/remote-jwks.js';

/**
 * What a worker of `start --workers` leaves to its host's primary, which does it once for every
 * worker: reading the API key store's change log, and fetching remote JWK Sets. Absent in one
 * process, where each resource does it itself.
 */
export interface HostServices {
  /** The change log of the key store these settings name, as the primary reads it. */
  apiKeyChanges(settings: ApiKeySettings): KeyChangeSource;
  /** Fetches every remote JWK Set through the primary. */
  readonly jwks: JwksFetcher;
}
