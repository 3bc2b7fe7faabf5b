// examples/validation: the config loads, and `explain` runs its requests through the real stages,
// bodies included: a good order reaches forwarding, each kind of bad one is decided by validate.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { compileConfig } from '../src/config/compile.js';
import { loadConfigFile } from '../src/config/load.js';
import { explain, type Explanation } from '../src/explain/explain.js';
import { CLI } from './harness/gateway.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/validation/gateway.yaml', import.meta.url));
const dir = await mkdtemp(join(tmpdir(), 'portcullis-validation-example-'));
const config = compileConfig(await loadConfigFile(EXAMPLE, { PORTCULLIS_DATA_DIR: join(dir, 'data') }));

function send(method: string, target: string, body: string | null, contentType = 'application/json'): Promise<Explanation> {
  const headers: [string, string][] = body === null ? [] : [['Content-Type', contentType], ['Content-Length', String(Buffer.byteLength(body))]];
  return explain(config, { method, target, headers, from: '192.0.2.10', ...(body === null ? {} : { body }) });
}

const ORDER = { customer: 'c-42', currency: 'EUR', items: [{ sku: 'ABC-1', quantity: 2 }], deliverBy: '2026-12-24' };

describe('examples/validation', () => {
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('forwards a conforming order', async () => {
    const e = await send('POST', '/orders', JSON.stringify(ORDER));
    const stages = e.stages.map((s) => [s.stage, s.outcome]);
    assert.deepEqual(stages.slice(-2), [['validate', 'continue'], ['forward', 'continue']]);
    assert.match(e.stages.find((s) => s.stage === 'validate')?.note ?? '', /conforms/);
  });

  const refused: readonly (readonly [string, string | null, number, string, string])[] = [
    ['no body', null, 400, 'invalid_body', ''],
    ['a duplicate member', '{"customer":"c-1","customer":"c-2","currency":"EUR","items":[]}', 400, 'invalid_body', '/customer'],
    ['__proto__', '{"__proto__":{"admin":true}}', 400, 'invalid_body', '/__proto__'],
    ['nesting past maxDepth', `{"customer":${'['.repeat(9)}${']'.repeat(9)}}`, 400, 'invalid_body', '/customer/0/0/0/0/0/0/0'],
    ['a missing member', JSON.stringify({ ...ORDER, currency: undefined }), 422, 'schema_violation', '/currency'],
    ['an item out of range', JSON.stringify({ ...ORDER, items: [{ sku: 'ABC-1', quantity: 0 }] }), 422, 'schema_violation', '/items/0/quantity'],
    ['a date that is not one', JSON.stringify({ ...ORDER, deliverBy: '2026-02-30' }), 422, 'schema_violation', '/deliverBy'],
  ];
  for (const [what, body, status, code, pointer] of refused) {
    it(`refuses an order with ${what} (${status} ${code})`, async () => {
      const e = await send('POST', '/orders', body);
      const last = e.stages.at(-1);
      assert.deepEqual([last?.stage, last?.status, last?.code, last?.pointer], ['validate', status, code, pointer]);
      assert.equal(e.result.forwarded, false);
    });
  }

  it('the CLI reads --body as the gateway would, and refuses a Content-Length the body does not have', () => {
    const env = { ...process.env, PORTCULLIS_DATA_DIR: join(dir, 'data') };
    const run = (...args: string[]): SpawnSyncReturns<string> => spawnSync(process.execPath, [CLI, 'explain', '-c', EXAMPLE, 'POST', '/orders', '-H', 'Content-Type: application/json', ...args], { env, encoding: 'utf8' });
    const good = run('--body', JSON.stringify(ORDER));
    assert.equal(good.status, 0, good.stderr);
    assert.match(good.stdout, /^ {2}validate +continue +.*conforms$/m);
    assert.match(good.stdout, /^Result +forwarded: the upstream answers$/m);
    const bad = run('--body', JSON.stringify({ ...ORDER, items: [{ sku: 'ABC-1', quantity: 0 }] }), '--json');
    assert.equal(bad.status, 0, bad.stderr);
    assert.deepEqual((JSON.parse(bad.stdout) as Explanation).result, { status: 422, code: 'schema_violation', forwarded: false });
    // A declared length the body does not have: the gateway would wait for bytes explain never sees.
    for (const args of [['-H', 'Content-Length: 10'], ['-H', 'Content-Length: 3', '--body', '{}'], ['-H', 'Content-Length: 2', '-H', 'Content-Length: 3', '--body', '{}']]) {
      const refused = run(...args);
      assert.equal(refused.status, 2, `${args.join(' ')}: ${refused.stdout}`);
      assert.match(refused.stderr, /^portcullis explain: .*Content-Length/);
    }
    const chunked = run('-H', 'Transfer-Encoding: chunked', '--body', JSON.stringify(ORDER));
    assert.equal(chunked.status, 0, chunked.stderr);
    assert.match(chunked.stdout, /^Result +forwarded: the upstream answers$/m);
  });

  it('lets listed plain text pass unread, in a listed charset only', async () => {
    assert.equal((await send('PUT', '/orders/7/note', 'caf\u00e9', 'text/plain; charset=iso-8859-1')).stages.at(-1)?.stage, 'forward');
    const utf16 = await send('PUT', '/orders/7/note', 'x', 'text/plain; charset=utf-16');
    assert.deepEqual([utf16.stages.at(-1)?.stage, utf16.stages.at(-1)?.code], ['validate', 'unsupported_media_type']);
    const json = await send('PUT', '/orders/7/note', JSON.stringify('x'.repeat(501)));
    assert.deepEqual([json.stages.at(-1)?.stage, json.stages.at(-1)?.code], ['validate', 'schema_violation']);
  });
});
