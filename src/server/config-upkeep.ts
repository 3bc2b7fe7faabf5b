import { signingKeyPath } from '../audit/signing-key.js';
import type { CompiledConfig } from '../config/compile.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../observability/logger.js';
import { ExpiryWarnings } from '../tls/expiry-warnings.js';
import { FileWatch } from './file-watch.js';

export interface UpkeepOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** What a SIGHUP does in this process: the gateway's reload, or the primary's reload of every worker. */
  reload(): Promise<unknown>;
  /** Appends an audit record (expiry alerts). */
  append(record: Record<string, unknown>): void;
}

/**
 * What the process that owns reloads (a single gateway, or the primary of `start --workers`) does
 * between reloads for the config in effect: it watches the files the config read, and the audit
 * signing key, reloading when one changes; and it warns about certificates close to expiry.
 */
export class ConfigUpkeep {
  private readonly watch: FileWatch;
  private readonly expiry: ExpiryWarnings;

  constructor(private readonly options: UpkeepOptions) {
    this.watch = new FileWatch(options.clock, options.logger, () => options.reload());
    this.expiry = new ExpiryWarnings(options);
  }

  /** Follows the config in effect: at start and after every reload. */
  follow(config: CompiledConfig): void {
    this.watch.configure({
      enabled: config.reload.watchFiles,
      intervalMs: config.reload.watchIntervalMs,
      files: [...config.files, signingKeyPath(config.dataDir, config.audit.signingKeyFile)],
    });
    this.expiry.check(config.certificates, config.expiryWarningDays);
  }

  stop(): void {
    this.watch.stop();
    this.expiry.stop();
  }
}

/**
 * Re-reads the audit signing key of a trail that can (after `portcullis audit rotate-key`); a key
 * that cannot be used is logged and the running one stays.
 */
export function refreshSigningKey(trail: { reloadSigningKey?(): boolean }, logger: Logger): void {
  try {
    if (trail.reloadSigningKey?.() === true) logger.info('audit signing key changed: new checkpoints are signed with the new key');
  } catch (err) {
    logger.error({ err }, 'the audit signing key cannot be re-read; checkpoints stay signed with the running key');
  }
}
