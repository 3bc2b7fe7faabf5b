// `portcullis audit rotate-key`: a new checkpoint signing key; every public key signed with so far is kept.
import { rotateSigningKey } from '../audit/signing-key.js';
import { compileConfig } from '../config/compile.js';
import { loadConfigFile } from '../config/load.js';
import type { Invocation } from './command.js';
import { configFile } from './config-file.js';

/**
 * Writes a new Ed25519 signing key where the config's audit trail keeps it (replacing the old one
 * by rename) and its public key beside it; the old public key stays. A running gateway goes on
 * signing with the key it started with: the new one is used from its next start.
 */
export async function auditRotateKeyCommand({ values }: Invocation): Promise<number> {
  const file = configFile(values.config);
  // Compiling opens nothing: it only resolves dataDir and the audit section as the gateway would.
  const config = compileConfig(await loadConfigFile(file));
  const result = rotateSigningKey(config.dataDir, config.audit.signingKeyFile);
  if (values.json === true) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    process.stdout.write(`new audit signing key ${result.current} in ${result.path}\n`);
    if (result.previous !== null) process.stdout.write(`previous key ${result.previous}: its public key is kept beside it; the running gateway signs with the new key from its next reload (SIGHUP, or at once when reload.watchFiles is on)\n`);
  }
  return 0;
}
