/**
 * A request waiting for an upstream connection: a node of the admission queue, linked both ways so
 * a waiter that gives up (timeout, client gone, idle body) leaves in O(1) and the queue never holds
 * dead entries.
 */
export class Waiter {
  prev: Waiter | null = null;
  next: Waiter | null = null;
  timer: NodeJS.Timeout | null = null;

  /** `slot` is the target index granted, or -1 when the wait timed out. */
  constructor(readonly onSlot: (slot: number) => void) {}
}

/**
 * Admission in front of an upstream's connection pools: at most `perTarget` requests in flight
 * per target (the pool size, so undici never queues internally, where nothing bounds the wait),
 * and a bounded FIFO of requests waiting for a slot, each for at most `queueTimeoutMs`.
 *
 * The fast path (a free slot) is a counter increment and allocates nothing. A slot freed while
 * requests wait is handed to the oldest waiter directly, so a newcomer never overtakes the queue.
 * Targets are tried round robin; a saturated target is skipped while another has a free slot.
 */
export class Admission {
  private readonly inFlight: Uint32Array;
  private next = 0;
  private head: Waiter | null = null;
  private tail: Waiter | null = null;
  private queued = 0;
  private holding = 0;
  /** Called once when nothing is in flight or waiting any more (a retired upstream closing). */
  private onDrained: (() => void) | null = null;

  constructor(
    targets: number,
    private readonly perTarget: number,
    private readonly maxQueued: number,
    private readonly queueTimeoutMs: number,
  ) {
    this.inFlight = new Uint32Array(targets);
  }

  /** Requests waiting for a slot now. */
  get waiting(): number {
    return this.queued;
  }

  /** Requests holding a slot now, over all targets. */
  get active(): number {
    return this.holding;
  }

  /** Resolves once no request holds a slot or waits for one (immediately if none does). */
  drained(): Promise<void> {
    if (this.holding === 0 && this.queued === 0) return Promise.resolve();
    return new Promise((resolve) => { this.onDrained = resolve; });
  }

  /** Takes a free slot and returns its target index, or -1 when every target is at its limit. */
  tryAcquire(): number {
    const n = this.inFlight.length;
    for (let i = 0; i < n; i++) {
      const slot = this.next;
      this.next = slot + 1 === n ? 0 : slot + 1;
      if ((this.inFlight[slot] ?? this.perTarget) < this.perTarget) {
        this.inFlight[slot] = (this.inFlight[slot] ?? 0) + 1;
        this.holding++;
        return slot;
      }
    }
    return -1;
  }

  /**
   * Queues a request for the next free slot. Returns null when `maxQueued` requests already wait
   * (the caller refuses at once). Otherwise `onSlot` is called exactly once, with the granted
   * target index, or with -1 after `queueTimeoutMs`, unless `cancel` is called first.
   */
  enqueue(onSlot: (slot: number) => void): Waiter | null {
    if (this.queued >= this.maxQueued) return null;
    const waiter = new Waiter(onSlot);
    waiter.timer = setTimeout(() => { this.unlink(waiter); onSlot(-1); }, this.queueTimeoutMs);
    waiter.prev = this.tail;
    if (this.tail === null) this.head = waiter; else this.tail.next = waiter;
    this.tail = waiter;
    this.queued++;
    return waiter;
  }

  /** Removes a waiter that no longer wants a slot; its `onSlot` will not be called. */
  cancel(waiter: Waiter): void {
    if (waiter.timer === null) return; // already granted or expired
    this.unlink(waiter);
  }

  /** Gives back the slot of a finished request: to the oldest waiter if any, else to the pool. */
  release(slot: number): void {
    const waiter = this.head;
    if (waiter !== null) {
      this.unlink(waiter);
      waiter.onSlot(slot);
      return;
    }
    const n = this.inFlight[slot] ?? 0;
    if (n > 0) { this.inFlight[slot] = n - 1; this.holding--; }
    if (this.onDrained !== null && this.holding === 0 && this.queued === 0) { this.onDrained(); this.onDrained = null; }
  }

  private unlink(waiter: Waiter): void {
    if (waiter.timer !== null) { clearTimeout(waiter.timer); waiter.timer = null; }
    if (waiter.prev === null) this.head = waiter.next; else waiter.prev.next = waiter.next;
    if (waiter.next === null) this.tail = waiter.prev; else waiter.next.prev = waiter.prev;
    waiter.prev = null;
    waiter.next = null;
    this.queued--;
  }
}
