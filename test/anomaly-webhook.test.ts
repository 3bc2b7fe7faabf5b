import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { makeAlert } from '../src/audit/anomaly/tracking.js';
import { DELIVERY_HEADER, SIGNATURE_HEADER, verifyWebhook, WebhookNotifier } from '../src/audit/anomaly/webhook.js';
import type { WebhookOptions } from '../src/config/compile-anomalies.js';
import { createLogger } from '../src/observability/logger.js';
import { waitUntil } from './harness/assertions.js';
import { ManualClock } from './harness/manual-clock.js';

const SECRET = 'whsec-9f8e7d6c5b4a39281706';

interface Received {
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly url: string;
}

/** A real receiver on loopback that answers with the statuses given, in turn (the last one repeats); 0 never answers. */
async function receiver(t: TestContext, statuses: number[]): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), url: req.url ?? '' });
      const status = statuses[Math.min(received.length - 1, statuses.length - 1)] ?? 200;
      if (status !== 0) res.writeHead(status).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => { server.closeAllConnections(); server.close(); });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/portcullis?token=url-token`, received, server };
}

function captureLogs(): { logger: ReturnType<typeof createLogger>; text: () => string } {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(chunk.toString('utf8')); done(); } });
  return { logger: createLogger('debug', sink), text: () => lines.join('') };
}

const alert = (n: number) => makeAlert('limitStorm', 'medium', `network:10.0.${n}.0/24`, `storm ${n}`, { count: n }, Date.UTC(2026, 0, 1));
const options = (url: string, extra: Partial<WebhookOptions> = {}): WebhookOptions => ({ url, secret: SECRET, timeoutMs: 5000, maxAttempts: 4, maxQueue: 1000, ...extra });

describe('anomaly webhook', () => {
  it('POSTs the alerts as JSON with a signature the receiver can verify from the documented recipe', async (t) => {
    const { url, received } = await receiver(t, [204]);
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const hook = new WebhookNotifier(options(url), { clock });
    hook.notify([alert(1), alert(2)]);
    await waitUntil('the webhook was delivered', () => hook.stats().delivered === 2);
    assert.equal(received.length, 1);
    const [got] = received;
    assert.ok(got !== undefined);
    assert.equal(got.headers['content-type'], 'application/json');
    assert.deepEqual((JSON.parse(got.body) as { alerts: unknown[] }).alerts, [alert(1), alert(2)]);
    // The docs' recipe, written out: t=<seconds>,v1=<hex HMAC-SHA256("<t>.<body>")>.
    const header = String(got.headers[SIGNATURE_HEADER]);
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
    assert.ok(m !== null, header);
    assert.equal(Number(m[1]), Date.UTC(2026, 0, 1, 12) / 1000, 'the time is the injected clock\'s');
    assert.equal(m[2], createHmac('sha256', SECRET).update(`${m[1]}.${got.body}`).digest('hex'));
    const now = Number(m[1]);
    assert.ok(verifyWebhook(SECRET, got.body, header, now));
    assert.ok(!verifyWebhook(SECRET, got.body, header, now + 301), 'a replay outside the window is refused');
    assert.ok(!verifyWebhook(SECRET, got.body.replace('storm 1', 'storm 9'), header, now), 'a changed body is refused');
    assert.ok(!verifyWebhook('another-secret-entirely', got.body, header, now));
    assert.ok(!verifyWebhook(SECRET, got.body, `t=${now + 1},v1=${m[2]}`, now), 'a changed time is refused');
    assert.ok(!verifyWebhook(SECRET, got.body, 'garbage', now));
    assert.match(String(got.headers[DELIVERY_HEADER]), /^[0-9a-f-]{36}$/);
    await hook.close();
  });

  it('retries a 500 with back-off on the injected clock, re-signing each attempt under the same delivery id', async (t) => {
    const { url, received } = await receiver(t, [500, 503, 200]);
    const clock = new ManualClock();
    const logs = captureLogs();
    const hook = new WebhookNotifier(options(url), { clock, logger: logs.logger });
    hook.notify([alert(1)]);
    await waitUntil('the first attempt failed and a retry waits', () => received.length === 1 && clock.timers === 1);
    clock.advance(999);
    assert.equal(received.length, 1, 'not before the back-off');
    clock.advance(1);
    await waitUntil('the second attempt failed and a retry waits', () => received.length === 2 && clock.timers === 1);
    clock.advance(2000);
    await waitUntil('the third attempt was delivered', () => hook.stats().delivered === 1);
    assert.equal(received.length, 3);
    assert.equal(new Set(received.map((r) => r.headers[DELIVERY_HEADER])).size, 1, 'one delivery id for every attempt');
    const times = received.map((r) => /^t=(\d+)/.exec(String(r.headers[SIGNATURE_HEADER]))?.[1]);
    assert.equal(new Set(times).size, 3, 'each attempt signed at its own time');
    for (const r of received) assert.ok(verifyWebhook(SECRET, r.body, String(r.headers[SIGNATURE_HEADER]), clock.now() / 1000));
    assert.match(logs.text(), /anomaly_webhook_failed/);
    assert.ok(!logs.text().includes(SECRET), 'the secret is never logged');
    assert.ok(!logs.text().includes('url-token'), 'nor the URL past its origin');
    await hook.close();
  });

  it('gives up after maxAttempts, counts the drop and moves on to the next batch', async (t) => {
    const { url, received } = await receiver(t, [500, 500, 500, 200]);
    const clock = new ManualClock();
    const logs = captureLogs();
    const hook = new WebhookNotifier(options(url, { maxAttempts: 3 }), { clock, logger: logs.logger });
    hook.notify([alert(1)]);
    for (let attempt = 1; attempt < 3; attempt++) {
      await waitUntil(`attempt ${attempt} failed`, () => received.length === attempt && clock.timers === 1);
      clock.advance(60_000);
    }
    await waitUntil('the batch was dropped', () => hook.stats().dropped === 1);
    assert.equal(received.length, 3);
    assert.equal(clock.timers, 0, 'no fourth attempt waits');
    hook.notify([alert(2)]);
    await waitUntil('the next batch was delivered', () => hook.stats().delivered === 1);
    assert.match(logs.text(), /alerts dropped/);
    assert.ok(!logs.text().includes(SECRET));
    await hook.close();
  });

  it('does not retry an answer the receiver means (400), nor follow a redirect', async (t) => {
    const { url, received } = await receiver(t, [400, 302]);
    const clock = new ManualClock();
    const hook = new WebhookNotifier(options(url), { clock });
    hook.notify([alert(1)]);
    await waitUntil('dropped after a 400', () => hook.stats().dropped === 1);
    hook.notify([alert(2)]);
    await waitUntil('dropped after a 302', () => hook.stats().dropped === 2);
    assert.equal(received.length, 2);
    assert.equal(clock.timers, 0);
    await hook.close();
  });

  it('retries an unreachable receiver and a receiver that does not answer within timeoutMs', async (t) => {
    const gone = await receiver(t, [200]);
    gone.server.close();
    await new Promise((resolve) => gone.server.once('close', resolve));
    const clock = new ManualClock();
    const logs = captureLogs();
    const refused = new WebhookNotifier(options(gone.url, { maxAttempts: 2 }), { clock, logger: logs.logger });
    refused.notify([alert(1)]);
    await waitUntil('a retry waits after ECONNREFUSED', () => clock.timers === 1);
    assert.match(logs.text(), /ECONNREFUSED/);
    clock.advance(1000);
    await waitUntil('dropped after two refused attempts', () => refused.stats().dropped === 1);

    const silent = await receiver(t, [0]);
    const slow = new WebhookNotifier(options(silent.url, { maxAttempts: 2, timeoutMs: 200 }), { clock: new ManualClock(), logger: logs.logger });
    slow.notify([alert(2)]);
    await waitUntil('the POST timed out and a retry waits', () => logs.text().includes('"error":"timeout"'), 10_000);
    assert.ok(!logs.text().includes(SECRET));
    await slow.close();
    assert.equal(slow.stats().dropped, 1, 'closing drops the batch that waited for its retry, counted');
    await refused.close();
  });

  it('holds at most maxQueue alerts; the rest are dropped and counted', async (t) => {
    const { url, received } = await receiver(t, [200]);
    const hook = new WebhookNotifier(options(url, { maxQueue: 5 }), { clock: new ManualClock() });
    hook.notify(Array.from({ length: 20 }, (_, i) => alert(i)));
    assert.equal(hook.stats().dropped, 15);
    await waitUntil('the five were delivered', () => hook.stats().delivered === 5);
    assert.equal(received.length, 1);
    await hook.close();
    hook.notify([alert(99)]);
    assert.equal(hook.stats().dropped, 16, 'after close, alerts are dropped and counted');
  });
});
