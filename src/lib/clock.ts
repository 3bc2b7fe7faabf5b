/**
 * The one source of time for the gateway. Every component that reads the time or waits for it
 * (windows, blocks, expiry, caches, refresh and retry timers) takes a Clock instead of calling
 * `Date.now()` or `setTimeout` itself, so a test can move time forward instead of sleeping.
 *
 * Per-request I/O deadlines (socket idle, upstream timeouts) stay on Node's own timers: they
 * measure the network, not the passage of policy time.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `fn` after `ms` milliseconds of this clock's time; the handle does not keep the process alive. */
  setTimer(fn: () => void, ms: number): Timer;
}

export interface Timer {
  cancel(): void;
}

/** The longest delay one setTimeout takes (2^31 - 1 ms, about 24.8 days); Node fires a longer one at once. */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/** The machine's clock. A delay beyond MAX_TIMEOUT_MS is waited out in steps, so it never fires early. */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimer(fn: () => void, ms: number): Timer {
    let handle: NodeJS.Timeout;
    const arm = (remaining: number): void => {
      const later = remaining > MAX_TIMEOUT_MS;
      handle = setTimeout(() => { if (later) arm(remaining - MAX_TIMEOUT_MS); else fn(); }, later ? MAX_TIMEOUT_MS : remaining);
      handle.unref();
    };
    arm(ms);
    return { cancel: () => clearTimeout(handle) };
  },
});
