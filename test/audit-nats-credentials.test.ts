// The credentials in audit.nats.url reach the server and nothing else: a sink with the right
// password publishes; with a wrong one it spools, and neither password appears in its logs or in
// what it reports for /readyz.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { createConfiguredSinks } from '../src/audit/sinks/configured.js';
import { NatsSink } from '../src/audit/sinks/nats-sink.js';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigText } from '../src/config/load.js';
import { systemClock } from '../src/lib/clock.js';
import { createLogger } from '../src/observability/logger.js';
import { waitUntil } from './harness/assertions.js';
import { chainOf } from './harness/linked-records.js';
import { startNats } from './harness/nats.js';

const PASSWORD = 'c0rrect-h0rse-7f3a';
const WRONG = 'wr0ng-batt3ry-91bd';
const started = await startNats(['--user', 'audit', '--pass', PASSWORD]);
const skip = typeof started === 'string' ? started : false;
const nats = typeof started === 'string' ? null : started;

describe('audit.nats credentials', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-nats-creds-'));
  after(async () => {
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function run(password: string): Promise<{ log: string; sink: NatsSink }> {
    const port = nats?.port ?? 0;
    const text = `upstreams:\n  u: { targets: [http://127.0.0.1:3001] }\nroutes:\n  - { name: r, match: { path: "/**" }, upstream: u, public: true }\naudit:\n  nats: { url: "nats://audit:\${NATS_PASSWORD}@127.0.0.1:${port}", ackTimeoutMs: 500 }\n`;
    const audit = compileConfig(loadConfigText(text, 'gateway.yaml', { NATS_PASSWORD: password })).audit;
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    const [sink] = createConfiguredSinks(audit, { dataDir: join(dir, password), chain: 'gw-1/main', logger: createLogger('debug', out), clock: systemClock });
    assert.ok(sink instanceof NatsSink);
    await sink.start();
    for (const e of chainOf('gw-1/main', 20)) sink.accept(e);
    if (password === PASSWORD) await waitUntil('published', () => sink.connected);
    await sink.flushed();
    const details = JSON.stringify(sink.details());
    await sink.close();
    return { log: chunks.map((c) => c.toString('utf8')).join('') + details, sink };
  }

  it('publishes with the right password, and shows it nowhere', async () => {
    const { log, sink } = await run(PASSWORD);
    assert.equal(sink.spooledBytes, 0);
    assert.doesNotMatch(log, new RegExp(PASSWORD));
    assert.match(log, /audit stream connected/);
  });

  it('spools with a wrong password, and shows neither password', async () => {
    const { log, sink } = await run(WRONG);
    assert.ok(sink.spooledBytes > 0);
    assert.doesNotMatch(log, new RegExp(`${WRONG}|${PASSWORD}`));
    assert.match(log, /publish failed|Authorization|authorization/i);
  });
});
