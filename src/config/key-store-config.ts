import { compileApiKeysSection } from '../authn/api-key/api-keys-section.js';
import type { ApiKeyBackend } from '../authn/api-key/backend.js';
import { apiKeyKind } from '../authn/api-key/kind.js';
import { ConfigError, type ConfigProblem } from './errors.js';
import { dataDirOf, loadConfigSections } from './load.js';
import type { RawConfig } from './schema.js';

/**
 * What the key-management commands read of gateway.yaml: the key store (`apiKeys`) and the data
 * directory its SQLite file lives in. Nothing else is interpolated or validated, so managing keys
 * does not need the upstreams' or identity providers' environment variables.
 */
export const KEY_STORE_SECTIONS: readonly (keyof RawConfig)[] = ['apiKeys', 'dataDir'];

/**
 * The API key backend the config describes, unstarted (it opens nothing until started), or null
 * when the config has neither an `apiKeys` section nor an `apiKey` authenticator. Throws
 * ConfigError for problems in the key store's own sections, each with file:line and option.
 */
export async function loadKeyStoreBackend(file: string, env: NodeJS.ProcessEnv = process.env): Promise<ApiKeyBackend | null> {
  const loaded = await loadConfigSections(file, KEY_STORE_SECTIONS, env);
  if (loaded.raw.apiKeys === undefined && !hasApiKeyAuthenticator(loaded.unchecked.authenticators)) return null;
  const problems: ConfigProblem[] = [];
  const backend = compileApiKeysSection(loaded.raw.apiKeys, loaded, dataDirOf(file, loaded.raw.dataDir), problems, (_key, _kind, create) => create());
  if (problems.length > 0 || backend === null) throw new ConfigError(problems);
  return backend;
}

/** Whether the (unvalidated) authenticators section has an API key authenticator, which uses the store with its defaults. */
function hasApiKeyAuthenticator(section: unknown): boolean {
  if (section === null || typeof section !== 'object') return false;
  return Object.values(section).some((a: unknown) => a !== null && typeof a === 'object' && (a as { type?: unknown }).type === apiKeyKind.type);
}
