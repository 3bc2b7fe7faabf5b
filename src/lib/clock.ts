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

/** The machine's clock. */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimer(fn: () => void, ms: number): Timer {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
});
