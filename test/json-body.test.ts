// The strict JSON reader of request validation, as tables: what it accepts (and builds exactly as
// JSON.parse would), what it refuses, where (pointer), and that the reason never carries a value.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { boundedPointer, jsonPointer, readJsonBody } from '../src/validation/json-body.js';
import { acceptedMediaType, parseContentType } from '../src/validation/media-type.js';
import type { JsonLimits, MediaTypeRule } from '../src/validation/contract.js';

const LIMITS: JsonLimits = { maxDepth: 4, maxKeys: 3, maxStringLength: 12, maxArrayLength: 3 };
const WIDE: JsonLimits = { maxDepth: 1000, maxKeys: 1_000_000, maxStringLength: 1 << 30, maxArrayLength: 1_000_000 };
const SECRET = 'S3CR3T';

function read(text: string | Buffer, limits = LIMITS): ReturnType<typeof readJsonBody> {
  return readJsonBody(typeof text === 'string' ? Buffer.from(text) : text, limits);
}

describe('readJsonBody: numbers a double holds (RFC 7493 §2.2)', () => {
  // However written, a number the double gives back exactly (up to zeros and notation) is accepted.
  const exact: readonly string[] = [
    '0', '-0', '0.1', '-0.0', '0e999999', '-0E-5', '1.50', '100.000', '1.5e3', '9007199254740992', '1e22', '1E+21',
    '12345678901234.5', '0.30000000000000004', '-1.7976931348623157e308', '5e-324', '123456789012345', '1000000000000000000000',
  ];
  for (const text of exact) {
    it(`accepts ${text} and builds what JSON.parse builds`, () => {
      const got = read(`[${text}]`, WIDE);
      assert.ok(got.ok, got.ok ? '' : got.reason);
      assert.deepEqual(got.value, JSON.parse(`[${text}]`));
    });
  }
  // JSON.parse rounds these: a decimal parser upstream would read another value than the one checked.
  const rounded: readonly (readonly [string, string])[] = [
    ['more digits than a double keeps', '100.0000000000000001'],
    ['a fraction a double rounds to an integer', '0.99999999999999999'],
    ['an integer past 2^53 that is not a double', '9007199254740993'],
    ['a long integer', '123456789012345678901234567890'],
    ['a magnitude past the largest double', '1e400'],
    ['a negative magnitude past the largest double', '-1.8e308'],
    ['a value that underflows to zero', '-12.25E-2000'],
    ['a value below the smallest subnormal', '2e-324'],
    ['an exponent too long to read', '1e99999999999999999999'],
    ['a tiny mantissa with a huge exponent', '0.000000000000000000001e400'],
  ];
  for (const [what, text] of rounded) {
    it(`refuses ${what} (${text}) at its location`, () => {
      const got = read(`{"a":[1,${text}]}`, WIDE);
      assert.equal(got.ok, false);
      if (got.ok) return;
      assert.equal(got.pointer, '/a/1');
      assert.match(got.reason, /RFC 7493/);
    });
  }
});

describe('readJsonBody', () => {
  const accepted: readonly string[] = [
    '0', '-0', '1.5e3', '-12.25E-2', '1E+2', 'true', 'false', 'null', '""', '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
    '"\\u00e9"', '"\\ud83d\\ude00"', '"\\udbff\\udfff"', '"\\ud800\\udc00"', '"é😀"', ' \t\r\n{ } ', '[]', '{"a":[1,{"b":null}]}',
    '[[[1]]]', '{"a":{"b":{"c":1}}}', '[1,2,3]', '{"a":1,"b":2,"c":3}', '"123456789012"', '{"123456789012":1}',
    '{"":1}', '{"a":1,"A":2}', '{"constructor":1}', '{"prototype":2}', '{"__proto":1,"_proto__":2}', '"\\u0000"',
  ];
  for (const text of accepted) {
    it(`accepts ${JSON.stringify(text)} and builds what JSON.parse builds`, () => {
      const got = read(text);
      assert.ok(got.ok, got.ok ? '' : got.reason);
      assert.deepEqual(got.value, JSON.parse(text));
    });
  }

  /** [what, body, pointer] */
  const refused: readonly (readonly [string, string | Buffer, string])[] = [
    ['an empty body', '', ''],

    ['whitespace only', '  \n', ''],
    ['depth past maxDepth in arrays', '[[[[[1]]]]]', '/0/0/0/0'],
    ['depth past maxDepth in objects', '{"a":{"b":{"c":{"d":{}}}}}', '/a/b/c/d'],
    ['depth past maxDepth, mixed', '{"a":[{"b":[[1]]}]}', '/a/0/b/0'],
    ['more elements than maxArrayLength', `[1,2,3,"${SECRET}"]`, '/3'],
    ['more members than maxKeys', `{"a":1,"b":2,"c":3,"d":"${SECRET}"}`, ''],
    ['more members than maxKeys, nested', `{"x":{"a":1,"b":2,"c":3,"d":4}}`, '/x'],
    ['a string past maxStringLength', `"${SECRET}1234567"`, ''],
    ['a string past maxStringLength counted after unescaping', `"${'\\u0041'.repeat(13)}"`, ''],
    ['a string past maxStringLength in astral characters (UTF-16 units)', `"${'😀'.repeat(7)}"`, ''],
    ['a member name past maxStringLength', `{"${SECRET}1234567":1}`, ''],
    ['a number past maxStringLength', '1234567890123', ''],
    ['a duplicate member', `{"a":1,"a":"${SECRET}"}`, '/a'],
    ['a duplicate member by escape', '{"a":1,"\\u0061":2}', '/a'],
    ['a duplicate member by escaped slash', '{"a/b":1,"a\\/b":2}', '/a~1b'],
    ['a duplicate array-index name', '{"1":1,"1":2}', '/1'],
    ['a duplicate after members the parsed value reorders', '{"b":{"x":1},"1":{"y":1},"b":2}', '/b'],
    ['a duplicate inside an array element', '[{"a":1},{"a":1,"a":2}]', '/1/a'],
    ['__proto__', `{"__proto__":{"x":"${SECRET}"}}`, '/__proto__'],
    ['__proto__ escaped', '{"\\u005f\\u005fproto\\u005f\\u005f":1}', '/__proto__'],
    ['__proto__ nested in an array', '[{"__proto__":1}]', '/0/__proto__'],
    ['a lone high surrogate', `["\\ud800${SECRET}"]`, '/0'],
    ['a high surrogate followed by a non-surrogate escape', '["\\ud800\\u0041"]', '/0'],
    ['a lone low surrogate', '["\\udfff"]', '/0'],
    ['a lone low surrogate at the start of its range', '["x\\udc00"]', '/0'],
    ['two high surrogates', '["\\ud800\\udbff"]', '/0'],
    ['a lone surrogate after another string with an escape', '["\\n","a","\\ud800"]', '/2'],
    ['a short \\u escape', '["\\u12"]', '/0'],
    ['a non-hex \\u escape', '["\\u12G4"]', '/0'],
    ['an unknown escape', '["\\a"]', '/0'],
    ['a raw control character', '["a\u001fb"]', '/0'],
    ['a raw newline in a string', '["a\nb"]', '/0'],
    ['an unterminated string', '["abc', '/0'],
    ['a BOM', Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), ''],
    ['invalid UTF-8 (lone continuation byte)', Buffer.from([0x22, 0x80, 0x22]), ''],
    ['invalid UTF-8 (overlong)', Buffer.from([0x22, 0xc0, 0x80, 0x22]), ''],
    ['invalid UTF-8 (encoded surrogate)', Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]), ''],
    ['invalid UTF-8 (truncated sequence)', Buffer.from([0x22, 0xe2, 0x82, 0x22]), ''],
    ['a leading zero', '[01]', ''],
    ['a leading plus', '[+1]', '/0'],
    ['a bare decimal point', '[1.]', '/0'],
    ['a leading decimal point', '[.5]', '/0'],
    ['an empty exponent', '[1e]', '/0'],
    ['a lone minus', '[-]', '/0'],
    ['NaN', '[NaN]', '/0'],
    ['Infinity', '[Infinity]', '/0'],
    ['hex', '[0x10]', ''],
    ['a trailing comma in an array', '[1,]', '/1'],
    ['a trailing comma in an object', '{"a":1,}', ''],
    ['a missing colon', '{"a" 1}', '/a'],
    ['a missing comma', '[1 2]', ''],
    ['single quotes', "{'a':1}", ''],
    ['an unquoted name', '{a:1}', ''],
    ['a comment', '[1/*x*/]', ''],
    ['two values', '{}{}', ''],
    ['a truncated literal', '[tru]', '/0'],
    ['a literal in the wrong case', '[True]', '/0'],
    ['a non-breaking space as whitespace', '[\u00a01]', '/0'],
    ['an unterminated array', '[1,2', ''],
    ['an unterminated object', '{"a":', '/a'],
  ];
  for (const [what, body, pointer] of refused) {
    it(`refuses ${what} at "${pointer}"`, () => {
      const got = read(body);
      assert.equal(got.ok, false);
      if (got.ok) return;
      assert.equal(got.pointer, pointer);
      assert.ok(!got.reason.includes(SECRET), 'no value in the reason');
      assert.ok(!got.reason.includes('__proto__') || what.startsWith('__proto__'), 'member names stay out of the reason');
    });
  }

  it('refuses a duplicate among more members than a linear search takes', () => {
    const text = `{${Array.from({ length: 40 }, (_, i) => `"k${i}":${i}`).join(',')},"k3":0}`;
    const got = readJsonBody(Buffer.from(text), WIDE);
    assert.deepEqual(got.ok ? null : [got.pointer, got.reason.split(' (')[0]], ['/k3', 'duplicate member name in one object']);
    assert.equal(readJsonBody(Buffer.from(text.replace(',"k3":0', ',"k40":0')), WIDE).ok, true);
  });

  /** Where the reference reader (a unit at a time) refuses a string past `max` units: the index after the unit that passed it; -1 if it fits. */
  function lengthRefusalAt(text: string, max: number): number {
    let units = 0;
    for (let j = 1; text[j] !== '"';) {
      const step = text[j] === '\\' ? (text[j + 1] === 'u' ? 6 : 2) : 1;
      j += step;
      if (++units > max) return j;
    }
    return -1;
  }

  it('counts long strings exactly, with escapes, control characters and ends anywhere in a run (property)', () => {
    const unit = fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom('a', 'é', ' ', '~') },
      { weight: 1, arbitrary: fc.constantFrom('\\n', '\\"', '\\u0041', '\\\\') },
    );
    // The limit is put around the string's own length, where a miscount shows.
    fc.assert(fc.property(fc.array(unit, { maxLength: 120 }), fc.integer({ min: -2, max: 2 }), (units, around) => {
      const text = `"${units.join('')}"`;
      const max = Math.max(1, (JSON.parse(text) as string).length + around);
      const got = readJsonBody(Buffer.from(text), { ...WIDE, maxStringLength: max });
      const at = lengthRefusalAt(text, max);
      if (at < 0) return got.ok && got.value === JSON.parse(text);
      return !got.ok && got.reason === `string longer than maxStringLength (${max}) (at character ${at})`;
    }), { numRuns: 400 });
    // What ends a string is found after a long plain run too.
    const run = 'a'.repeat(40);
    assert.equal(read(`["${run}\u0001"]`, WIDE).ok, false);
    assert.match((read(`["${run}\u0001"]`, WIDE) as { reason: string }).reason, /^control character in a string/);
    assert.match((read(`["${run}`, WIDE) as { reason: string }).reason, /^unterminated string/);
    assert.match((read(`["${run}\\x"]`, WIDE) as { reason: string }).reason, /^invalid escape in a string/);
  });

  it('refuses exactly the bodies with a duplicate or __proto__ member, wherever the object is (property)', () => {
    // Raw JSON texts (JSON.stringify cannot write a duplicate), with names that collide only after
    // unescaping, names JSON.parse stores as array indices (and so reorders), and __proto__ spellings.
    const names = ['a', 'b', '1', '01', '\\u0061', '\\u0031', '__proto__', '\\u005f_proto__'];
    const decoded = (name: string): string => JSON.parse(`"${name}"`) as string;
    type Doc = { text: string; bad: boolean };
    const doc: fc.Memo<Doc> = fc.memo((n) => (n <= 1
      ? fc.constantFrom<Doc>({ text: '1', bad: false }, { text: '"x"', bad: false }, { text: '[]', bad: false }, { text: '{}', bad: false })
      : fc.oneof(
        fc.array(doc(n - 1), { maxLength: 3 }).map((items) => ({ text: `[${items.map((d) => d.text).join(',')}]`, bad: items.some((d) => d.bad) })),
        fc.array(fc.tuple(fc.constantFrom(...names), doc(n - 1)), { maxLength: 4 }).map((members) => {
          const seen = members.map(([name]) => decoded(name));
          const bad = members.some(([, d]) => d.bad) || seen.includes('__proto__') || new Set(seen).size < seen.length;
          return { text: `{${members.map(([name, d]) => `"${name}":${d.text}`).join(',')}}`, bad };
        }),
      )));
    fc.assert(fc.property(doc(4), ({ text, bad }) => {
      const got = readJsonBody(Buffer.from(text), WIDE);
      if (!bad) return got.ok && JSON.stringify(got.value) === JSON.stringify(JSON.parse(text));
      return !got.ok && /^(duplicate member name in one object|the member name __proto__ is refused) \(at character \d+\)$/.test(got.reason);
    }), { numRuns: 500 });
  });

  it('holds every limit exactly as the value shows it, and never disagrees with its strict reader (property)', () => {
    /** The value's own measure of each limit: what a reader within `limits` must accept exactly when all fit. */
    const fits = (value: unknown, limits: JsonLimits, depth = 1): boolean => {
      if (typeof value === 'string') return value.length <= limits.maxStringLength;
      if (typeof value === 'number') return JSON.stringify(value).length <= limits.maxStringLength;
      if (typeof value !== 'object' || value === null) return true;
      if (depth > limits.maxDepth) return false;
      if (Array.isArray(value)) return value.length <= limits.maxArrayLength && value.every((v) => fits(v, limits, depth + 1));
      const entries = Object.entries(value);
      return entries.length <= limits.maxKeys && entries.every(([k, v]) => k.length <= limits.maxStringLength && fits(v, limits, depth + 1));
    };
    const limits = fc.record({
      maxDepth: fc.integer({ min: 1, max: 5 }), maxKeys: fc.integer({ min: 1, max: 4 }),
      maxStringLength: fc.integer({ min: 1, max: 12 }), maxArrayLength: fc.integer({ min: 1, max: 4 }),
    });
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 5, stringUnit: 'grapheme' }), limits, (value, lim) => {
      const text = JSON.stringify(value);
      if (text.includes('"__proto__":')) return true;
      const got = readJsonBody(Buffer.from(text), lim);
      if (!got.ok && got.reason.startsWith('the body was refused by the first reading')) return false;
      return got.ok === fits(JSON.parse(text), lim);
    }), { numRuns: 1000 });
  });

  it('refuses nesting thousands deep without exhausting the stack', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const got = readJsonBody(Buffer.from(deep), { ...WIDE, maxDepth: 1000 });
    assert.equal(got.ok, false);
  });

  it('agrees with JSON.parse on every JSON value within the limits (property)', () => {
    // Well-formed strings (lone surrogates have their own cases above).
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 5, stringUnit: 'grapheme' }), (value) => {
      const text = JSON.stringify(value);
      const got = readJsonBody(Buffer.from(text), WIDE);
      // A generated member may be named __proto__, which is refused by design.
      if (!got.ok) return got.reason.startsWith('the member name __proto__') && text.includes('"__proto__":');
      return JSON.stringify(got.value) === JSON.stringify(JSON.parse(text));
    }), { numRuns: 300 });
  });

  it('refuses what JSON.parse refuses (property over mutated documents)', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 3 }), fc.nat(), fc.string({ minLength: 1, maxLength: 2 }), (value, at, insert) => {
      const text = JSON.stringify(value);
      const i = at % (text.length + 1);
      const mutated = text.slice(0, i) + insert + text.slice(i);
      let parses = true;
      try { JSON.parse(mutated); } catch { parses = false; }
      const got = readJsonBody(Buffer.from(mutated), WIDE);
      return parses || !got.ok;
    }), { numRuns: 500 });
  });

  it('escapes ~ and / in pointers (RFC 6901) and bounds their length', () => {
    assert.equal(jsonPointer(['a/b', 'c~d', 3]), '/a~1b/c~0d/3');
    const long = jsonPointer(Array.from({ length: 100 }, () => 'x'.repeat(50)));
    assert.ok(long.length <= 1024 && long.startsWith('/xxxx'));
    assert.equal(boundedPointer('/a/b'), '/a/b');
    const bounded = boundedPointer(`/${'y'.repeat(600)}/${'z'.repeat(600)}`);
    assert.equal(bounded, `/${'y'.repeat(600)}`);
  });
});

describe('Content-Type parsing (RFC 9110 §8.3.1)', () => {
  const parsed: readonly (readonly [string, string, string | null])[] = [
    ['application/json', 'application/json', null],
    ['Application/JSON', 'application/json', null],
    ['application/json;charset=utf-8', 'application/json', 'utf-8'],
    ['application/json ; CHARSET=UTF-8', 'application/json', 'utf-8'],
    ['application/json; charset="utf-8"', 'application/json', 'utf-8'],
    ['application/json; charset="u\\tf-8"', 'application/json', 'utf-8'],
    ['application/json; a=1; charset=utf-8; b="x;y"', 'application/json', 'utf-8'],
    ['application/json;', 'application/json', null],
    ['application/problem+json', 'application/problem+json', null],
  ];
  for (const [value, type, charset] of parsed) {
    it(`parses ${value}`, () => assert.deepEqual(parseContentType(value), { type, charset }));
  }
  const malformed: readonly string[] = [
    '', 'application', 'application/', '/json', 'application/json/x', 'application/json x', 'application/json; charset',
    'application/json; charset=', 'application/json; =utf-8', 'application/json; charset="utf-8', 'application/json; charset=utf-8; charset=utf-8',
    'application/json; charset=utf-8; Charset="utf-16"', 'application/json, text/plain', 'application /json', 'application/json; charset=utf 8',
    'application/json; charset="a\u0001"',
  ];
  for (const value of malformed) {
    it(`refuses ${JSON.stringify(value)}`, () => assert.equal(typeof parseContentType(value), 'string'));
  }

  const json: MediaTypeRule = { json: true, charsets: new Set(['utf-8']) };
  const text: MediaTypeRule = { json: false, charsets: new Set(['utf-8', 'iso-8859-1']) };
  const types = new Map([['application/json', json], ['text/plain', text]]);
  const decisions: readonly (readonly [string | undefined, boolean])[] = [
    [undefined, false],
    ['application/json', true],
    ['application/json; charset=UTF-8', true],
    ['application/json; charset=utf-16', false],
    ['application/json; charset=iso-8859-1', false],
    ['text/plain; charset=iso-8859-1', true],
    ['text/plain; charset=utf-7', false],
    ['text/html', false],
  ];
  for (const [header, ok] of decisions) {
    it(`${ok ? 'accepts' : 'refuses'} ${header ?? 'no Content-Type'} on a route taking JSON (UTF-8) and text/plain (UTF-8, latin1)`, () => {
      assert.equal('rule' in acceptedMediaType(header, types), ok);
    });
  }
});

// Request bodies are read on every validated request: their objects must keep the engine's fast
// path. V8 gives objects of one shape one hidden class, found through the transitions recorded on
// the hidden class every plain object starts from, of which it keeps at most 1,536. Compiling
// schemas with Ajv's name optimisation once filled that table (the config's own schema alone did;
// one large route schema takes it to within a few dozen), and from then on each body object got a
// class of its own and every read of it was a slow lookup. The check needs V8's natives syntax, so
// it runs in a child process, which prints the table's size (V8's debug print of a plain object's
// hidden class) and whether two bodies of a new shape share their classes.
describe('bodies keep one hidden class per shape after the gateway compiled its schemas', () => {
  it('the config, policy test, JSON Schema and OpenAPI compilers leave room in the table; two bodies of a new shape share their hidden classes', () => {
    const src = (path: string): string => JSON.stringify(new URL(`../src/${path}`, import.meta.url).href);
    const script = `
      await import(${src('config/load.js')});
      await import(${src('policy/test-file.js')});
      const { compileJsonSchema } = await import(${src('validation/json-schema.js')});
      const { parseOpenApiDocument } = await import(${src('validation/openapi-document.js')});
      const { SchemaCompiler } = await import(${src('validation/openapi-schemas.js')});
      const { readJsonBody } = await import(${src('validation/json-body.js')});
      // Large schemas: with the optimisation, each compile would add about a thousand transitions.
      const member = { anyOf: [{ type: 'string', maxLength: 5 }, { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'array', items: { type: 'number' } } }, required: ['a'] }] };
      const big = { type: 'object', properties: Object.fromEntries(Array.from({ length: 800 }, (_, i) => ['p' + i, member])) };
      compileJsonSchema(big);
      const doc = parseOpenApiDocument(JSON.stringify({ openapi: '3.1.0', info: { title: 't', version: '1' }, paths: {}, components: { schemas: { Big: big } } }), 'api.json');
      new SchemaCompiler(doc).compile(['components', 'schemas', 'Big']);
      const limits = { maxDepth: 8, maxKeys: 100, maxStringLength: 100, maxArrayLength: 100 };
      // Fractional numbers in objects of an array: the shape that lost its class most visibly.
      const body = Buffer.from('{"zq1":[{"zq2":"a","zq3":1,"zq4":9.5,"zq5":true},{"zq2":"b","zq3":2,"zq4":10.5,"zq5":false}],"zq6":{"zq7":1.5}}');
      const a = readJsonBody(body, limits).value, b = readJsonBody(body, limits).value;
      const shared = [%HaveSameMap(a, b), %HaveSameMap(a.zq1[0], b.zq1[0]), %HaveSameMap(a.zq1[0], a.zq1[1]), %HaveSameMap(a.zq6, b.zq6)];
      %DebugPrint({});
      process.stderr.write(JSON.stringify(shared));
    `;
    const child = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 0, child.stderr);
    const transitions = /- transitions #(\d+)/.exec(child.stdout);
    assert.ok(transitions !== null, `no transition count in V8's debug print:\n${child.stdout.slice(0, 2000)}`);
    // About 450 are the modules' own; each compiler with the optimisation on would take it past 1,400.
    assert.ok(Number(transitions[1]) < 1000, `the plain-object hidden class has ${transitions[1]} transitions`);
    assert.deepEqual(JSON.parse(child.stderr.trim()), [true, true, true, true], 'objects of one shape share a hidden class');
  });
});
