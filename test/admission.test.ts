// The admission in front of an upstream's pools: slots per target, a bounded FIFO of waiters,
// round robin over targets that skips saturated ones.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Admission } from '../src/proxy/admission.js';

void describe('upstream admission', () => {
  void test('grants up to the per-target limit, then refuses the fast path', () => {
    const a = new Admission(1, 2, 0, 1000);
    assert.equal(a.tryAcquire(), 0);
    assert.equal(a.tryAcquire(), 0);
    assert.equal(a.tryAcquire(), -1);
    assert.equal(a.active, 2);
    a.release(0);
    assert.equal(a.tryAcquire(), 0);
  });

  void test('round robin over targets skips a saturated one while another has room', () => {
    const a = new Admission(3, 1, 0, 1000);
    assert.deepEqual([a.tryAcquire(), a.tryAcquire(), a.tryAcquire(), a.tryAcquire()], [0, 1, 2, -1]);
    a.release(1);
    assert.equal(a.tryAcquire(), 1, 'the only free target is found whatever the round robin position');
  });

  void test('a freed slot goes to the oldest waiter, in order, and never to the pool while someone waits', () => {
    const a = new Admission(1, 1, 3, 60_000);
    assert.equal(a.tryAcquire(), 0);
    const order: string[] = [];
    const first = a.enqueue((slot) => order.push(`first:${slot}`));
    const second = a.enqueue((slot) => order.push(`second:${slot}`));
    assert.ok(first !== null && second !== null);
    assert.equal(a.waiting, 2);
    a.release(0);
    assert.deepEqual(order, ['first:0']);
    assert.equal(a.tryAcquire(), -1, 'the slot was handed over, not freed');
    a.release(0);
    a.release(0);
    assert.deepEqual(order, ['first:0', 'second:0']);
    assert.equal(a.waiting, 0);
    assert.equal(a.active, 0);
  });

  void test('refuses to queue past maxQueued', () => {
    const a = new Admission(1, 1, 1, 60_000);
    a.tryAcquire();
    const waiter = a.enqueue(() => undefined);
    assert.ok(waiter !== null);
    assert.equal(a.enqueue(() => undefined), null);
    a.cancel(waiter);
    assert.equal(a.waiting, 0);
    assert.ok(a.enqueue(() => undefined) !== null, 'a cancelled waiter frees its place');
    a.release(0);
  });

  void test('a cancelled waiter is skipped and never called', () => {
    const a = new Admission(1, 1, 4, 60_000);
    a.tryAcquire();
    const calls: string[] = [];
    const gone = a.enqueue(() => calls.push('gone'));
    a.enqueue((slot) => calls.push(`kept:${slot}`));
    assert.ok(gone !== null);
    a.cancel(gone);
    a.cancel(gone); // twice is harmless
    a.release(0);
    assert.deepEqual(calls, ['kept:0']);
    a.release(0);
  });

  void test('a waiter is called with -1 after queueTimeoutMs and leaves the queue', async () => {
    const a = new Admission(1, 1, 4, 20);
    a.tryAcquire();
    const slot = await new Promise<number>((resolve) => { a.enqueue(resolve); });
    assert.equal(slot, -1);
    assert.equal(a.waiting, 0);
    a.release(0);
    assert.equal(a.active, 0);
  });

  void test('drained resolves once nothing holds a slot or waits', async () => {
    const a = new Admission(1, 1, 4, 60_000);
    await a.drained();
    a.tryAcquire();
    a.enqueue(() => undefined);
    let done = false;
    const drained = a.drained().then(() => { done = true; });
    a.release(0); // to the waiter
    await Promise.resolve();
    assert.equal(done, false);
    a.release(0);
    await drained;
    assert.equal(done, true);
  });
});
