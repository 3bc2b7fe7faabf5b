import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OffsetClock } from './harness/offset-clock.js';

/** Resolves with true when `fired` resolves within `ms` of real time, else false. */
function within(fired: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  return Promise.race([fired.then(() => true), late]).finally(() => clearTimeout(timer));
}

describe('OffsetClock (test harness): the machine\'s time plus an offset the test moves', () => {
  it('reads the machine\'s time until moved, then that far ahead of it', () => {
    const clock = new OffsetClock();
    assert.ok(Math.abs(clock.now() - Date.now()) < 1000);
    clock.advance(90_000);
    const ahead = clock.now() - Date.now();
    assert.ok(ahead >= 89_000 && ahead <= 90_000, String(ahead));
  });

  it('fires a timer the advance passes, with now() at or past its due time, and not one it does not', async () => {
    const clock = new OffsetClock();
    let dueAt = 0;
    let seenAt = 0;
    const fired = new Promise<void>((resolve) => { dueAt = clock.now() + 60_000; clock.setTimer(() => { seenAt = clock.now(); resolve(); }, 60_000); });
    let laterFired = false;
    clock.setTimer(() => { laterFired = true; }, 3_600_000);
    clock.advance(60_000);
    assert.equal(await within(fired, 5000), true, 'the passed timer fired');
    assert.ok(seenAt >= dueAt);
    assert.equal(laterFired, false);
  });

  it('never fires a cancelled timer, even when an advance passes it', async () => {
    const clock = new OffsetClock();
    let fired = false;
    clock.setTimer(() => { fired = true; }, 1000).cancel();
    clock.advance(10_000);
    // A timer set after the advance, due at once, fires after any the advance made due (Node keeps their order).
    // (Its timers do not keep the process alive: `within` does, for a bounded while.)
    assert.equal(await within(new Promise<void>((resolve) => { clock.setTimer(resolve, 0); }), 5000), true);
    assert.equal(fired, false);
  });
});
