import type { Clock } from '../../lib/clock.js';

/**
 * A circuit breaker for one endpoint: `failures` consecutive failures open it for `openMs`, during
 * which calls are refused at once (the endpoint is not asked); then one probe is let through,
 * and its outcome closes the circuit or opens it for another `openMs`. While the probe is out the
 * other calls are refused as while open.
 */
export class CircuitBreaker {
  private consecutive = 0;
  private openUntil = 0;
  private probing = false;

  constructor(private readonly failures: number, private readonly openMs: number, private readonly clock: () => Clock, private readonly changed: (open: boolean) => void = () => undefined) {}

  /** Null when a call may go out now (it must then report `succeeded` or `failed`); else the ms until the next probe may. */
  admit(): number | null {
    if (this.openUntil === 0) return null;
    const left = this.openUntil - this.clock().now();
    if (left > 0 || this.probing) return Math.max(left, 1);
    this.probing = true;
    return null;
  }

  succeeded(): void {
    this.consecutive = 0;
    this.probing = false;
    if (this.openUntil !== 0) { this.openUntil = 0; this.changed(false); }
  }

  failed(): void {
    this.consecutive++;
    const wasOpen = this.openUntil !== 0;
    if (this.probing || this.consecutive >= this.failures) {
      this.openUntil = this.clock().now() + this.openMs;
      if (!wasOpen) this.changed(true);
    }
    this.probing = false;
  }

  get open(): boolean {
    return this.openUntil !== 0;
  }
}
