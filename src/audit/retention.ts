import { spawn } from 'node:child_process';
import { stat, unlink, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Clock, Timer } from '../lib/clock.js';
import { sealedFiles, type ChainFiles } from './trail-files.js';

/** How often retention looks at the sealed files even when none was sealed. */
export const RETENTION_CHECK_MS = 60_000;
/** The most output of an archive command kept for its log line. */
const OUTPUT_CHARS = 2048;

export interface RetentionOptions {
  readonly files: ChainFiles;
  /** null: no limit. */
  readonly maxAgeMs: number | null;
  readonly maxBytes: number | null;
  /** argv; `{file}` in any argument is replaced by the sealed file's path. null: no archiving. */
  readonly archiveCommand: readonly string[] | null;
  readonly archiveTimeoutMs: number;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Called after each archive run with its outcome (metrics). */
  readonly onArchive?: (ok: boolean) => void;
}

/** The marker written beside a sealed file once its archive command succeeded. */
export function archivedMarker(path: string): string {
  return `${path}.archived`;
}

/**
 * Archiving and retention of one chain's sealed files. Each sealed file is handed to
 * `archiveCommand` once (one run at a time, killed after its timeout, output capped); success is
 * remembered by an empty `<file>.archived` marker, so a restart archives only what is left.
 * Retention deletes the oldest sealed files past `maxAgeMs` (by modification time, the time of
 * their last record) or while the chain's files hold more than `maxBytes`; with an archive command
 * it never deletes a file whose archive has not succeeded, and never the active file.
 */
export class Retention {
  private running: Promise<void> = Promise.resolve();
  private timer: Timer | null = null;
  private closed = false;
  /** Sealed files whose archive failed at least once: retried at the next sweep. */
  private readonly failed = new Set<string>();

  constructor(private readonly options: RetentionOptions) {}

  /** Whether anything is to be done at all. */
  get active(): boolean {
    return this.options.archiveCommand !== null || this.options.maxAgeMs !== null || this.options.maxBytes !== null;
  }

  start(): void {
    if (!this.active) return;
    void this.sweep();
    this.arm();
  }

  private arm(): void {
    if (this.closed) return;
    this.timer = this.options.clock.setTimer(() => { this.timer = null; void this.sweep(); this.arm(); }, RETENTION_CHECK_MS);
  }

  /** Archives what is not archived yet, then applies retention; runs after the sweep under way. */
  sweep(): Promise<void> {
    if (!this.active || this.closed) return this.running;
    this.running = this.running.then(() => this.run()).catch((err: unknown) => {
      this.options.logger.error({ err }, 'audit retention failed; retrying at the next check');
    });
    return this.running;
  }

  private async run(): Promise<void> {
    const { options } = this;
    const sealed = await sealedFiles(options.files);
    const facts: { path: string; bytes: number; mtimeMs: number; archived: boolean }[] = [];
    for (const file of sealed) {
      if (this.closed) return;
      const s = await stat(file.path).catch(() => null);
      if (s === null) continue;
      let archived = options.archiveCommand === null || await stat(archivedMarker(file.path)).then(() => true, () => false);
      if (!archived && options.archiveCommand !== null) archived = await this.archive(file.path, options.archiveCommand);
      facts.push({ path: file.path, bytes: s.size, mtimeMs: s.mtimeMs, archived });
    }
    const activeBytes = (await stat(options.files.active).catch(() => null))?.size ?? 0;
    let total = activeBytes + facts.reduce((sum, f) => sum + f.bytes, 0);
    const now = options.clock.now();
    for (const file of facts) {
      const old = options.maxAgeMs !== null && now - file.mtimeMs > options.maxAgeMs;
      const over = options.maxBytes !== null && total > options.maxBytes;
      if (!old && !over) break;
      if (!file.archived) {
        options.logger.warn({ file: file.path }, 'audit retention keeps a sealed file whose archive has not succeeded');
        break;
      }
      await unlink(file.path);
      await unlink(archivedMarker(file.path)).catch(() => undefined);
      total -= file.bytes;
      options.logger.info({ file: file.path, reason: old ? 'maxAge' : 'maxBytes' }, 'audit retention deleted a sealed file');
    }
  }

  /** Runs the archive command on one sealed file; true when it exited 0 (the marker is then written). */
  private archive(path: string, command: readonly string[]): Promise<boolean> {
    const [program, ...args] = command.map((a) => a.replaceAll('{file}', path));
    if (program === undefined) return Promise.resolve(false);
    return new Promise<boolean>((resolveRun) => {
      let output = '';
      const keep = (chunk: Buffer): void => { if (output.length < OUTPUT_CHARS) output = (output + chunk.toString('utf8')).slice(0, OUTPUT_CHARS); };
      const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: this.options.archiveTimeoutMs, killSignal: 'SIGKILL' });
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      let settled = false;
      const finish = (ok: boolean, why: string): void => {
        if (settled) return;
        settled = true;
        this.options.onArchive?.(ok);
        if (ok) {
          this.failed.delete(path);
          void writeFile(archivedMarker(path), '', { mode: 0o640 }).then(() => resolveRun(true), (err: unknown) => {
            this.options.logger.error({ err, file: path }, 'audit archive succeeded but its marker cannot be written');
            resolveRun(false);
          });
          return;
        }
        this.failed.add(path);
        this.options.logger.error({ file: path, command: program, why, output }, 'audit archive command failed; the file is kept and tried again');
        resolveRun(false);
      };
      child.once('error', (err) => finish(false, err.message));
      child.once('close', (code, signal) => finish(code === 0, signal !== null ? `killed by ${signal}` : `exit code ${String(code)}`));
    });
  }

  /** Stops the periodic check and waits for the sweep under way. */
  async close(): Promise<void> {
    this.closed = true;
    this.timer?.cancel();
    this.timer = null;
    await this.running;
  }
}
