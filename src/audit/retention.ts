import { spawn } from 'node:child_process';
import { stat, unlink, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Clock, Timer } from '../lib/clock.js';
import { sealedFiles, type ChainFiles } from './trail-files.js';

/** How often retention looks at the sealed files even when none was sealed. */
export const RETENTION_CHECK_MS = 60_000;
/** The most output of an archive command kept for its log line. */
const OUTPUT_CHARS = 2048;
/** How long output is still read after an archive command exited, before its pipes are let go. */
const PIPE_GRACE_MS = 1000;

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
  /** Ends the archive command under way (its whole process group), when one runs. */
  private abortRun: ((reason: string) => void) | null = null;

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
    if (this.closed) return Promise.resolve(false);
    return new Promise<boolean>((resolveRun) => {
      let output = '';
      const keep = (chunk: Buffer): void => { if (output.length < OUTPUT_CHARS) output = (output + chunk.toString('utf8')).slice(0, OUTPUT_CHARS); };
      // Its own process group, so the timeout and shutdown end everything it started, not only the
      // program itself: a process it left in the background would keep its pipes open, and the
      // retention (and the gateway's shutdown, which waits for it) would wait as long as that lives.
      const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      const killGroup = (): void => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // ESRCH: the group is gone already.
        }
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      let settled = false;
      let why: string | null = null;
      const timers: NodeJS.Timeout[] = [];
      const finish = (ok: boolean, reason: string): void => {
        if (settled) return;
        settled = true;
        for (const timer of timers) clearTimeout(timer);
        if (this.abortRun === abort) this.abortRun = null;
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
        this.options.logger.error({ file: path, command: program, why: reason, output }, 'audit archive command failed; the file is kept and tried again');
        resolveRun(false);
      };
      const abort = (reason: string): void => {
        why ??= reason;
        killGroup();
      };
      this.abortRun = abort;
      timers.push(setTimeout(() => abort(`ran past archiveTimeoutMs (${this.options.archiveTimeoutMs} ms)`), this.options.archiveTimeoutMs));
      child.once('error', (err) => finish(false, err.message));
      child.once('exit', (code, signal) => {
        // What it left behind goes with it; output still buffered is read for a moment, then the pipes are let go.
        killGroup();
        const verdict = why ?? (signal !== null ? `killed by ${signal}` : `exit code ${String(code)}`);
        const ok = why === null && code === 0;
        timers.push(setTimeout(() => { child.stdout.destroy(); child.stderr.destroy(); finish(ok, verdict); }, PIPE_GRACE_MS));
        child.once('close', () => finish(ok, verdict));
      });
    });
  }

  /** Stops the periodic check and waits for the sweep under way. */
  async close(): Promise<void> {
    this.closed = true;
    // An archive under way is ended (it is tried again at the next start): shutdown does not wait for an upload.
    this.abortRun?.('the gateway is stopping');
    this.timer?.cancel();
    this.timer = null;
    await this.running;
  }
}
