// Request validation through a real gateway and a loopback upstream that records every body:
// each hostile class is refused with a precise status, code and pointer, nothing is forwarded,
// one audit record is written, and no value from the body comes back to the client.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import type { ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { h2Connect, h2Request, type H2Response } from './harness/h2-client.js';
import { testPki, writeCertificate } from './harness/tls.js';
import { startBodyUpstream, type BodyUpstream } from './harness/body-upstream.js';
import { startGateway, type TestGateway } from './harness/gateway.js';
import { requestHead, wire } from './harness/raw-client.js';

/** A value planted in hostile bodies: it must never appear in a response or an audit record. */
const MARKER = 'MRK-7f3a';

const ORDER_SCHEMA = {
  type: 'object',
  properties: {
    items: {
      type: 'array',
      items: {
        type: 'object',
        properties: { sku: { type: 'string', pattern: '^[A-Z]{3}-[0-9]+$' }, qty: { type: 'integer', minimum: 1 } },
        required: ['sku', 'qty'],
        additionalProperties: false,
      },
    },
    note: { type: 'string' },
    meta: {},
  },
  required: ['items'],
  additionalProperties: false,
};

interface Answer {
  readonly status: number;
  readonly code: string | null;
  readonly pointer: string | undefined;
  readonly text: string;
  readonly requestId: string;
}

function answerOf(status: number, headers: Record<string, string | string[] | undefined>, text: string): Answer {
  let code: string | null = null;
  let pointer: string | undefined;
  if (status >= 400 && text !== '') {
    const problem = JSON.parse(text) as { type?: string; pointer?: string };
    code = problem.type?.split(':').at(-1) ?? null;
    pointer = problem.pointer;
  }
  return { status, code, pointer, text, requestId: String(headers['x-request-id']) };
}

describe('request validation (validate)', () => {
  let up: BodyUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startBodyUpstream();
    gw = await startGateway({
      upstreams: { app: { targets: [up.url] } },
      routes: [
        {
          name: 'orders', match: { path: '/orders', methods: ['POST'] }, upstream: 'app', public: true,
          limits: { maxBodyBytes: 400_000 },
          validate: { jsonSchema: ORDER_SCHEMA, json: { maxDepth: 4, maxKeys: 5, maxStringLength: 16, maxArrayLength: 4 } },
        },
        {
          name: 'small', match: { path: '/small', methods: ['POST'] }, upstream: 'app', public: true,
          limits: { maxBodyBytes: 64, bodyIdleTimeoutMs: 300 },
          validate: { bodyRequired: true },
        },
        {
          name: 'upload', match: { path: '/upload', methods: ['POST'] }, upstream: 'app', public: true,
          limits: { maxBodyBytes: 64, bodyIdleTimeoutMs: 300 },
          validate: { contentTypes: ['text/plain'], bodyRequired: true },
        },
        {
          name: 'notes', match: { path: '/notes', methods: ['GET', 'POST'] }, upstream: 'app', public: true,
          validate: { contentTypes: ['application/json', 'text/plain'], charsets: ['utf-8', 'iso-8859-1'], jsonSchema: { type: 'string', maxLength: 5 } },
        },
        {
          name: 'quantities', match: { path: '/quantities', methods: ['POST'] }, upstream: 'app', public: true,
          validate: { jsonSchema: { type: 'object', properties: { qty: { type: 'integer', minimum: 1, maximum: 100 } } } },
        },
        {
          name: 'redos', match: { path: '/redos', methods: ['POST'] }, upstream: 'app', public: true,
          validate: { jsonSchema: { type: 'string', pattern: '^(a+)+$' } },
        },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  async function send(path: string, body: string | Buffer, contentType: string | null = 'application/json'): Promise<Answer> {
    const res = await request(`${gw.url}${path}`, { method: 'POST', body, headers: contentType === null ? {} : { 'content-type': contentType } });
    return answerOf(res.statusCode, res.headers, await res.body.text());
  }

  /** The refusal is precise, forwards nothing, is audited once, and echoes nothing of the body. */
  async function assertRefused(got: Answer, status: number, code: string, pointer: string | undefined, forwardedBefore: number): Promise<void> {
    assert.equal(got.status, status, got.text);
    assert.equal(got.code, code);
    assert.equal(got.pointer, pointer);
    assert.ok(!got.text.includes(MARKER), 'no body value in the response');
    assert.equal(up.received.length, forwardedBefore, 'nothing forwarded');
    const records = await gw.auditFor(got.requestId);
    assert.equal(records.length, 1, 'one audit record');
    assert.equal(records[0]?.reason, code);
    // A media type outside the list is refused by the request limits already, before authentication.
    if (code !== 'unsupported_media_type') assert.equal(records[0]?.stage, 'validate');
    assert.ok(!(records[0]?.detail ?? '').includes(MARKER), 'no body value in the audit record');
  }

  const item = `{"sku":"ABC-1","qty":1}`;
  /** [what, body, status, code, pointer] */
  const hostile: readonly (readonly [string, string | Buffer, number, string, string])[] = [
    // Nesting: the limit is 4 (the top-level object is depth 1).
    ['nesting one past maxDepth', `{"items":[],"meta":{"a":{"b":{"c":{"d":"${MARKER}"}}}}}`, 400, 'invalid_body', '/meta/a/b/c'],
    ['arrays nested far past maxDepth', `{"items":[],"meta":${'['.repeat(5000)}"${MARKER}"${']'.repeat(5000)}}`, 400, 'invalid_body', '/meta/0/0/0'],
    // Sizes.
    ['an array one past maxArrayLength', `{"items":[${Array(5).fill(item).join(',')}]}`, 400, 'invalid_body', '/items/4'],
    ['a huge array', `{"items":[],"meta":[${Array(100_000).fill('0').join(',')}]}`, 400, 'invalid_body', '/meta/4'],
    ['an object one past maxKeys', `{"items":[],"meta":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":"${MARKER}"}}`, 400, 'invalid_body', '/meta'],
    ['a string one past maxStringLength', `{"items":[],"note":"${MARKER}${'x'.repeat(17 - MARKER.length)}"}`, 400, 'invalid_body', '/note'],
    ['a member name past maxStringLength', `{"items":[],"meta":{"${'k'.repeat(17)}":"${MARKER}"}}`, 400, 'invalid_body', '/meta'],
    ['a number past maxStringLength', `{"items":[],"meta":${'9'.repeat(17)}}`, 400, 'invalid_body', '/meta'],
    // Duplicates, compared after unescaping.
    ['a duplicate member', `{"items":[],"items":[${item}],"note":"${MARKER}"}`, 400, 'invalid_body', '/items'],
    ['a duplicate member spelled with an escape', `{"items":[],"\\u0069tems":[],"note":"${MARKER}"}`, 400, 'invalid_body', '/items'],
    ['a nested duplicate', `{"items":[],"meta":{"a":"${MARKER}","a":1}}`, 400, 'invalid_body', '/meta/a'],
    // __proto__ in every spelling and place.
    ['a __proto__ member', `{"__proto__":{"polluted":"${MARKER}"},"items":[]}`, 400, 'invalid_body', '/__proto__'],
    ['an escaped __proto__ member', `{"items":[],"\\u005f_proto__":{"x":"${MARKER}"}}`, 400, 'invalid_body', '/__proto__'],
    ['a fully escaped __proto__', `{"items":[],"\\u005F\\u005F\\u0070roto\\u005f\\u005f":1}`, 400, 'invalid_body', '/__proto__'],
    ['a nested __proto__', `{"items":[{"__proto__":{"isAdmin":true}}]}`, 400, 'invalid_body', '/items/0/__proto__'],
    // Text that is not strict JSON, or not UTF-8.
    ['a lone surrogate escape', `{"items":[],"note":"\\ud800${MARKER}"}`, 400, 'invalid_body', '/note'],
    ['a lone low surrogate escape', `{"items":[],"note":"\\udc00"}`, 400, 'invalid_body', '/note'],
    ['invalid UTF-8', Buffer.concat([Buffer.from(`{"items":[],"note":"${MARKER}`), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), 400, 'invalid_body', ''],
    ['an overlong UTF-8 encoding of /', Buffer.concat([Buffer.from('{"items":[],"note":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]), 400, 'invalid_body', ''],
    ['a byte order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`{"items":[],"note":"${MARKER}"}`)]), 400, 'invalid_body', ''],
    ['a UTF-16 body', Buffer.from('{"items":[]}', 'utf16le'), 400, 'invalid_body', ''],
    ['a raw control character in a string', `{"items":[],"note":"a\u0001${MARKER}"}`, 400, 'invalid_body', '/note'],
    ['an invalid escape', `{"items":[],"note":"\\x41${MARKER}"}`, 400, 'invalid_body', '/note'],
    ['a trailing comma', `{"items":[],"note":"${MARKER}",}`, 400, 'invalid_body', ''],
    ['single quotes', `{'items':[]}`, 400, 'invalid_body', ''],
    ['a comment', `{"items":[] /* ${MARKER} */}`, 400, 'invalid_body', ''],
    ['NaN', `{"items":[],"meta":NaN}`, 400, 'invalid_body', '/meta'],
    // Numbers JSON.parse rounds (RFC 7493 §2.2): checked as one value, read upstream as another.
    ['an integer past 2^53 that is not a double', `{"items":[],"meta":9007199254740993}`, 400, 'invalid_body', '/meta'],
    ['a number that overflows to Infinity', `{"items":[],"meta":1e400}`, 400, 'invalid_body', '/meta'],
    ['a negative number that underflows to -0', `{"items":[],"meta":-1e-400}`, 400, 'invalid_body', '/meta'],
    ['a leading zero', `{"items":[],"meta":012}`, 400, 'invalid_body', ''],
    ['a plus sign', `{"items":[],"meta":+1}`, 400, 'invalid_body', '/meta'],
    ['a bare decimal point', `{"items":[],"meta":1.}`, 400, 'invalid_body', '/meta'],
    ['a second value after the first', `{"items":[]}{"items":[]}`, 400, 'invalid_body', ''],
    ['an unterminated string', `{"items":[],"note":"${MARKER}`, 400, 'invalid_body', '/note'],
    ['an unterminated object', `{"items":[`, 400, 'invalid_body', '/items/0'],
    ['whitespace only', ' \r\n\t ', 400, 'invalid_body', ''],
    // Well-formed, within limits, against the schema (422, pointer = where; never the value).
    ['a missing required member', `{"note":"${MARKER}"}`, 422, 'schema_violation', '/items'],
    ['a value out of range', `{"items":[{"sku":"ABC-1","qty":0}],"note":"${MARKER}"}`, 422, 'schema_violation', '/items/0/qty'],
    ['a pattern mismatch', `{"items":[{"sku":"${MARKER}","qty":1}]}`, 422, 'schema_violation', '/items/0/sku'],
    ['a wrong type', `{"items":"${MARKER}"}`, 422, 'schema_violation', '/items'],
  ];
  for (const [what, body, status, code, pointer] of hostile) {
    it(`refuses ${what} (${status} ${code} at "${pointer}")`, async () => {
      const before = up.received.length;
      await assertRefused(await send('/orders', body), status, code, pointer, before);
    });
  }

  it('accepts a body exactly at every limit and forwards it byte for byte', async () => {
    const body = `{ "items" : [${Array(4).fill(item).join(' ,\n')}],\r\n "note":"${'n'.repeat(16)}", "meta":{"a":{"b":{"c":1,"d":2,"e":3,"f":4,"g":"\\u00e9\\ud83d\\ude00"}}} }\n`;
    const before = up.received.length;
    const got = await send('/orders', body);
    assert.equal(got.status, 200, got.text);
    assert.equal(up.received.length, before + 1);
    const forwarded = up.received.at(-1);
    assert.deepEqual(forwarded?.body, Buffer.from(body));
    assert.equal(forwarded?.headers['content-length'], String(Buffer.byteLength(body)));
  });

  it('refuses numbers that pass the schema only once rounded to a double, and forwards those it holds', async () => {
    const before = up.received.length;
    // Each is out of range or not an integer as written; rounded, each is a valid quantity.
    for (const qty of ['0.99999999999999999', '100.0000000000000001', '1.0000000000000001', '99999999999999999999e-18']) {
      await assertRefused(await send('/quantities', `{"qty":${qty}}`), 400, 'invalid_body', '/qty', before);
    }
    for (const qty of ['1', '100', '1.0', '1e2', '0.5e1']) {
      const got = await send('/quantities', `{"qty":${qty}}`);
      assert.equal(got.status, 200, got.text);
      assert.deepEqual(up.received.at(-1)?.body, Buffer.from(`{"qty":${qty}}`));
    }
  });

  it('matches patterns in linear time: a catastrophic-backtracking pattern costs nothing', async () => {
    const before = up.received.length;
    await assertRefused(await send('/redos', JSON.stringify(`${'a'.repeat(5000)}!`)), 422, 'schema_violation', '', before);
    assert.equal((await send('/redos', '"aaaa"')).status, 200);
  });

  it('passes a request without a body, and streams a listed non-JSON type unread in a listed charset', async () => {
    const before = up.received.length;
    const get = await request(`${gw.url}/notes`);
    assert.equal(get.statusCode, 200);
    await get.body.dump();
    const latin1 = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x7b]); // "café{": not JSON, not UTF-8, and not read
    assert.equal((await send('/notes', latin1, 'text/plain; charset=iso-8859-1')).status, 200);
    assert.deepEqual(up.received.at(-1)?.body, latin1);
    assert.equal(up.received.length, before + 2);
    await assertRefused(await send('/notes', 'x', 'text/plain; charset=utf-16'), 415, 'unsupported_media_type', undefined, before + 2);
    await assertRefused(await send('/notes', `"${MARKER}"`), 422, 'schema_violation', '', before + 2);
  });

  it('streams a required non-JSON body of unknown length once it shows a byte, byte for byte, with one 100 Continue', async () => {
    const before = up.received.length;
    const head = requestHead('POST', '/upload', ['Content-Type: text/plain', 'Transfer-Encoding: chunked', 'Expect: 100-continue']);
    const result = await wire(gw.port, [head, '3\r\nabc\r\n', '2\r\nde\r\n0\r\n\r\n'], { awaitContinue: true });
    assert.deepEqual(result.responses.map((r) => r.status), [100, 200]);
    assert.equal(up.received.length, before + 1);
    assert.equal(up.received.at(-1)?.body.toString('latin1'), 'abcde');
    // A byte then silence is a body that stopped arriving: 408, forwarded or not, never a hang.
    const stalled = await wire(gw.port, [requestHead('POST', '/upload', ['Content-Type: text/plain', 'Transfer-Encoding: chunked']) + '1\r\nx\r\n']);
    assert.equal(stalled.responses[0]?.status, 408);
    const silent = await wire(gw.port, [requestHead('POST', '/upload', ['Content-Type: text/plain', 'Transfer-Encoding: chunked'])]);
    assert.equal(silent.responses[0]?.status, 408);
    assert.equal(up.received.length, before + 1);
  });

  it('answers Expect: 100-continue before reading a body it validates', async () => {
    const before = up.received.length;
    const body = `{"items":[${item}]}`;
    const result = await wire(gw.port, [requestHead('POST', '/orders', ['Content-Type: application/json', `Content-Length: ${body.length}`, 'Expect: 100-continue']), body], { awaitContinue: true });
    assert.deepEqual(result.responses.map((r) => r.status), [100, 200]);
    assert.deepEqual(up.received.at(-1)?.body, Buffer.from(body));
    assert.equal(up.received.length, before + 1);
  });

  it('audits the schema keyword and location, never the value', async () => {
    const got = await send('/orders', `{"items":[{"sku":"ABC-1","qty":0}],"note":"${MARKER}"}`);
    const [record] = await gw.auditFor(got.requestId);
    assert.match(record?.detail ?? '', /^routes\[0\]\.validate: schema: minimum failed at #\/properties\/items\/items\/properties\/qty\/minimum$/);
  });

  describe('content type and charset', () => {
    const valid = `{"items":[${item}],"note":"${MARKER}"}`;
    const refusedTypes: readonly (readonly [string, string | null])[] = [
      ['no Content-Type', null],
      ['text/plain with a JSON body', 'text/plain'],
      ['a form type', 'application/x-www-form-urlencoded'],
      ['a type that only starts like JSON', 'application/jsonx'],
      ['a list of types', 'application/json, text/plain'],
      ['UTF-16', 'application/json; charset=utf-16'],
      ['UTF-16 quoted and upper case', 'application/json; charset="UTF-16LE"'],
      ['UTF-7', 'application/json; charset=utf-7'],
      ['latin1', 'application/json; charset=iso-8859-1'],
      ['a repeated charset', 'application/json; charset=utf-8; charset=utf-8'],
      ['a repeated charset that disagrees', 'application/json; charset=utf-8; CHARSET=utf-16'],
      ['a charset without a value', 'application/json; charset='],
      ['a parameter without =', 'application/json; charset'],
      ['an unterminated quoted charset', 'application/json; charset="utf-8'],
      ['a type without a subtype', 'application/'],
      ['garbage after the type', 'application/json garbage'],
    ];
    for (const [what, type] of refusedTypes) {
      it(`refuses ${what} with 415`, async () => {
        const before = up.received.length;
        const got = await send('/orders', valid, type);
        await assertRefused(got, 415, 'unsupported_media_type', undefined, before);
      });
    }

    it('refuses a compressed JSON body it cannot read (415)', async () => {
      const before = up.received.length;
      const res = await request(`${gw.url}/orders`, { method: 'POST', body: valid, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } });
      await assertRefused(answerOf(res.statusCode, res.headers, await res.body.text()), 415, 'unsupported_media_type', undefined, before);
    });

    it('refuses latin1 with non-ASCII bytes (415, before the bytes are read)', async () => {
      const before = up.received.length;
      const body = Buffer.concat([Buffer.from('{"items":[],"note":"'), Buffer.from([0xe9]), Buffer.from('"}')]);
      await assertRefused(await send('/orders', body, 'application/json; charset=latin1'), 415, 'unsupported_media_type', undefined, before);
    });

    const accepted: readonly string[] = [
      'application/json',
      'application/json; charset=utf-8',
      'application/json;charset=UTF-8',
      'APPLICATION/JSON; CHARSET="utf-8"',
      'Application/Json ; charset = utf-8'.replace(' = ', '='),
      'application/json; charset="utf\\-8"',
      'application/json; profile=x; charset=utf-8',
    ];
    for (const type of accepted) {
      it(`accepts ${type}`, async () => {
        const got = await send('/orders', valid, type);
        assert.equal(got.status, 200, got.text);
      });
    }

    it('refuses two Content-Type fields before any stage reads one (400 ambiguous_header)', async () => {
      const before = up.received.length;
      const body = `{"items":[]}`;
      const result = await wire(gw.port, requestHead('POST', '/orders', ['Content-Type: application/json', 'Content-Type: text/plain', `Content-Length: ${body.length}`]) + body);
      assert.equal(result.responses[0]?.status, 400);
      assert.match(result.responses[0]?.body ?? '', /ambiguous_header/);
      assert.equal(up.received.length, before);
    });
  });

  describe('framing', () => {
    it('reads a declared body as declared: extra bytes are the next request, judged on its own', async () => {
      const before = up.received.length;
      const first = '{"items":[]}';
      const second = `{"items":[],"items":"${MARKER}"}`;
      const next = requestHead('POST', '/orders', ['Content-Type: application/json', `Content-Length: ${second.length}`]) + second;
      const result = await wire(gw.port, requestHead('POST', '/orders', ['Content-Type: application/json', `Content-Length: ${first.length}`]) + first + next, { expect: 2 });
      assert.deepEqual(result.responses.map((r) => r.status), [200, 400]);
      assert.match(result.responses[1]?.body ?? '', /invalid_body/);
      assert.ok(!result.raw.includes(MARKER));
      assert.equal(up.received.length, before + 1);
      assert.deepEqual(up.received.at(-1)?.body, Buffer.from(first));
    });

    it('refuses a declared body over maxBodyBytes before reading it (413)', async () => {
      const before = up.received.length;
      const result = await wire(gw.port, requestHead('POST', '/small', ['Content-Type: application/json', 'Content-Length: 65']) + 'x'.repeat(65));
      assert.equal(result.responses[0]?.status, 413);
      assert.equal(up.received.length, before);
      const records = await gw.auditFor(result.responses[0]?.headers['x-request-id'] ?? '');
      assert.deepEqual(records.map((r) => [r.stage, r.reason]), [['request-limits', 'body_too_large']]);
    });

    function chunked(parts: readonly string[]): string {
      return parts.map((p) => `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`).join('') + '0\r\n\r\n';
    }

    it('forwards a chunked body under the limit as a sized body, byte for byte', async () => {
      const before = up.received.length;
      const parts = ['{"items"', ':[', `${item}]}`];
      const result = await wire(gw.port, requestHead('POST', '/orders', ['Content-Type: application/json', 'Transfer-Encoding: chunked']) + chunked(parts));
      assert.equal(result.responses[0]?.status, 200, result.responses[0]?.body);
      assert.equal(up.received.length, before + 1);
      const forwarded = up.received.at(-1);
      assert.equal(forwarded?.body.toString(), parts.join(''));
      assert.equal(forwarded?.headers['content-length'], String(parts.join('').length));
      assert.equal(forwarded?.headers['transfer-encoding'], undefined);
    });

    it('refuses a chunked body the moment it passes maxBodyBytes (413), forwarding nothing', async () => {
      const before = up.received.length;
      const parts = ['{"items":[', `"${MARKER}",`.repeat(4), `"${'y'.repeat(40)}"]}`];
      const result = await wire(gw.port, requestHead('POST', '/small', ['Content-Type: application/json', 'Transfer-Encoding: chunked']) + chunked(parts));
      assert.equal(result.responses[0]?.status, 413);
      assert.match(result.responses[0]?.body ?? '', /body_too_large/);
      assert.ok(!result.raw.includes(MARKER));
      assert.equal(up.received.length, before);
      const id = result.responses[0]?.headers['x-request-id'] ?? '';
      const records = await gw.auditFor(id);
      assert.equal(records.length, 1);
      assert.equal(records[0]?.stage, 'validate');
    });

    it('times out a body that stops arriving (408), forwarding nothing', async () => {
      const before = up.received.length;
      const started = up.started;
      const result = await wire(gw.port, requestHead('POST', '/small', ['Content-Type: application/json', 'Content-Length: 20']) + '{"items":', { timeoutMs: 3000 });
      assert.equal(result.responses[0]?.status, 408);
      assert.match(result.responses[0]?.body ?? '', /request_timeout/);
      assert.equal(up.received.length, before);
      assert.equal(up.started, started);
      const records = await gw.auditFor(result.responses[0]?.headers['x-request-id'] ?? '');
      assert.deepEqual(records.map((r) => [r.stage, r.reason]), [['validate', 'request_timeout']]);
    });

    it('records a client that goes away mid-body as an abort, forwarding nothing', async () => {
      const before = up.received.length;
      const started = up.started;
      const records = gw.auditWhere((r) => r.route === 'small' && r.decision === 'abort');
      await wire(gw.port, requestHead('POST', '/small', ['Content-Type: application/json', 'Content-Length: 40']) + '{"items":', { abortAfterMs: 20, timeoutMs: 1000 });
      const aborted = await records;
      assert.deepEqual(aborted.map((r) => [r.stage, r.decision, r.reason]), [['validate', 'abort', 'client_aborted']]);
      assert.equal(up.received.length, before);
      assert.equal(up.started, started);
    });

    const empty: readonly (readonly [string, string])[] = [
      ['no body at all', requestHead('POST', '/small', ['Content-Type: application/json'])],
      ['Content-Length: 0', requestHead('POST', '/small', ['Content-Type: application/json', 'Content-Length: 0'])],
      ['an empty chunked body', requestHead('POST', '/small', ['Content-Type: application/json', 'Transfer-Encoding: chunked']) + '0\r\n\r\n'],
      ['Content-Length: 00', requestHead('POST', '/small', ['Content-Type: application/json', 'Content-Length: 00'])],
      // A listed non-JSON type streams unread, but a required body must still hold a byte.
      ['no streamed body at all', requestHead('POST', '/upload', ['Content-Type: text/plain'])],
      ['a streamed Content-Length: 0', requestHead('POST', '/upload', ['Content-Type: text/plain', 'Content-Length: 0'])],
      ['a streamed Content-Length: 00', requestHead('POST', '/upload', ['Content-Type: text/plain', 'Content-Length: 00'])],
      ['an empty streamed chunked body', requestHead('POST', '/upload', ['Content-Type: text/plain', 'Transfer-Encoding: chunked']) + '0\r\n\r\n'],
      ['an empty streamed chunked body with a trailer', requestHead('POST', '/upload', ['Content-Type: text/plain', 'Transfer-Encoding: chunked']) + '0\r\nX-T: 1\r\n\r\n'],
    ];
    for (const [what, raw] of empty) {
      it(`refuses ${what} where a body is required (400 invalid_body at "")`, async () => {
        const before = up.received.length;
        const result = await wire(gw.port, raw);
        const res = result.responses[0];
        assert.equal(res?.status, 400);
        const problem = JSON.parse(res?.body ?? '{}') as { type?: string; pointer?: string };
        assert.equal(problem.type?.split(':').at(-1), 'invalid_body');
        assert.equal(problem.pointer, '');
        assert.equal(up.received.length, before);
        const records = await gw.auditFor(res?.headers['x-request-id'] ?? '');
        assert.deepEqual(records.map((r) => [r.stage, r.reason]), [['validate', 'invalid_body']]);
      });
    }
  });
});

describe('request validation over HTTP/2', () => {
  let up: BodyUpstream;
  let gw: TestGateway;
  let session: ClientHttp2Session;
  before(async () => {
    up = await startBodyUpstream();
    const pki = await testPki();
    gw = await startGateway({
      listen: { https: { cert: 'tls/server.crt', key: 'tls/server.key' } },
      upstreams: { app: { targets: [up.url] } },
      routes: [{
        name: 'orders', match: { path: '/orders', methods: ['POST'] }, upstream: 'app', public: true, limits: { maxBodyBytes: 64 },
        validate: { jsonSchema: { type: 'object', required: ['id'] } },
      }],
    }, {
      beforeStart: async (dir) => {
        await mkdir(join(dir, 'tls'));
        await writeCertificate(join(dir, 'tls'), 'server', pki.server);
      },
    });
    session = await h2Connect(gw.httpsUrl ?? '', pki.ca.cert);
  });
  after(async () => {
    (session as ClientHttp2Session | undefined)?.destroy();
    await (gw as TestGateway | undefined)?.close();
    await up.close();
  });

  const post = (body: string, length: boolean): Promise<H2Response> => h2Request(session, {
    ':path': '/orders', 'content-type': 'application/json', ...(length ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
  }, body);

  for (const length of [true, false]) {
    const framing = length ? 'with Content-Length' : 'as DATA frames without a length';
    it(`reads a body sent ${framing}, forwards it sized, and refuses what fails`, async () => {
      const before = up.received.length;
      const good = '{"id":1}';
      assert.equal((await post(good, length)).status, 200);
      assert.deepEqual(up.received.at(-1)?.body, Buffer.from(good));
      assert.equal(up.received.at(-1)?.headers['content-length'], String(good.length));
      const duplicate = await post(`{"id":1,"id":"${MARKER}"}`, length);
      assert.equal(duplicate.status, 400);
      assert.equal((JSON.parse(duplicate.body) as { pointer?: string }).pointer, '/id');
      assert.ok(!duplicate.body.includes(MARKER));
      const tooLarge = await post(`{"id":"${'x'.repeat(80)}"}`, length);
      assert.equal(tooLarge.status, 413);
      assert.equal(up.received.length, before + 1);
    });
  }
});
