import { statSync } from 'node:fs';
import type { Clock, Timer } from '../lib/clock.js';
import type { Logger } from '../observability/logger.js';

/** What the watch polls, and whether at all. */
export interface WatchSettings {
  readonly enabled: boolean;
  readonly intervalMs: number;
  /** Absolute paths. */
  readonly files: readonly string[];
}

/**
 * Polls the files a running config read (certificates, keys, CA bundles, CRLs, key sets, the audit
 * signing key) and reloads when one changed. Polling `stat` rather than inotify, because
 * certificate managers replace files by renaming them, and Kubernetes swaps a symlink to a new
 * directory: a stat that follows links sees a new inode, size or time in every case.
 *
 * A change is taken once it is stable: a certificate and its key are replaced one after the other,
 * so the reload waits until every file's stat is the same on two polls in a row. A reload that
 * refuses the new material (a key not matching) leaves the running config; the next change of any
 * watched file is taken again.
 */
export class FileWatch {
  private settings: WatchSettings = { enabled: false, intervalMs: 2000, files: [] };
  /** The stat signature of each file when the config in effect was taken. */
  private baseline = new Map<string, string>();
  /** Signatures seen changed on the last poll, waiting to be seen the same once more. */
  private candidate: Map<string, string> | null = null;
  private timer: Timer | null = null;
  private stopped = true;

  constructor(private readonly clock: Clock, private readonly logger: Logger, private readonly reload: (changed: readonly string[]) => Promise<unknown>) {}

  /** Starts (or adjusts) polling: the files of the config in effect; a file new to the list is taken as it is now. */
  configure(settings: WatchSettings): void {
    const files = [...new Set(settings.files)].sort();
    const next = new Map<string, string>();
    for (const f of files) next.set(f, this.baseline.get(f) ?? signature(f));
    this.baseline = next;
    this.candidate = null;
    this.settings = { ...settings, files };
    if (!settings.enabled) { this.stop(); return; }
    if (this.stopped) { this.stopped = false; this.schedule(); }
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimer(() => { void this.poll().finally(() => this.schedule()); }, this.settings.intervalMs);
  }

  /** One poll: compare, wait for stability, reload. Never throws. */
  async poll(): Promise<void> {
    const now = new Map(this.settings.files.map((f) => [f, signature(f)] as const));
    const changed = [...now].filter(([f, sig]) => this.baseline.get(f) !== sig).map(([f]) => f);
    if (changed.length === 0) { this.candidate = null; return; }
    const previous = this.candidate;
    if (previous === null || [...now].some(([f, sig]) => previous.get(f) !== sig)) { this.candidate = now; return; }
    // Stable for one interval: the new state is the baseline, whatever the reload makes of it.
    this.candidate = null;
    for (const [f, sig] of now) this.baseline.set(f, sig);
    this.logger.info({ files: changed }, 'files the config uses changed; reloading');
    try {
      await this.reload(changed);
    } catch (err) {
      this.logger.error({ err, files: changed }, 'reload after a file change failed');
    }
  }
}

/** What identifies a file's content without reading it: inode, size, modification and change times; or why it cannot be stat'ed. */
function signature(file: string): string {
  try {
    const s = statSync(file, { bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (err) {
    return `missing:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
  }
}
