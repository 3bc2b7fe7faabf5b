// The body validator compiled from a JSON Schema: pointers and reasons, references kept within the
// document, and patterns that cannot be made into a ReDoS.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { boundedBacktracking, compileJsonSchema, NATIVE_MAX_CHARS, SchemaCompileError } from '../src/validation/json-schema.js';

const SECRET = 'S3CR3T-VALUE';

describe('compileJsonSchema', () => {
  const schema = {
    $defs: { qty: { type: 'integer', minimum: 1 } },
    type: 'object',
    properties: {
      'a/b': { type: 'string' },
      items: { type: 'array', items: { type: 'object', properties: { qty: { $ref: '#/$defs/qty' }, email: { type: 'string', format: 'email' } }, required: ['qty'] } },
    },
    required: ['items'],
  };
  const validate = compileJsonSchema(schema);

  const cases: readonly (readonly [string, unknown, string | null, string | null])[] = [
    ['a conforming body', { items: [{ qty: 1 }] }, null, null],
    ['a missing member, located where it belongs', { other: SECRET }, '/items', 'required'],
    ['a missing nested member', { items: [{}, { email: SECRET }] }, '/items/0/qty', 'required'],
    ['a failing $ref within the document', { items: [{ qty: 0 }] }, '/items/0/qty', 'minimum'],
    ['a format', { items: [{ qty: 1, email: SECRET }] }, '/items/0/email', 'format'],
    ['a member name with / (escaped in the pointer)', { items: [], 'a/b': 1 }, '/a~1b', 'type'],
  ];
  for (const [what, value, pointer, keyword] of cases) {
    it(`${pointer === null ? 'accepts' : 'refuses'} ${what}`, () => {
      const failure = validate(value);
      if (pointer === null) { assert.equal(failure, null); return; }
      assert.equal(failure?.pointer, pointer);
      assert.match(failure?.reason ?? '', new RegExp(`^schema: ${keyword} failed at #/`));
      assert.ok(!(failure?.reason ?? '').includes(SECRET));
    });
  }

  it('accepts `required` members that `properties` does not define (only that part of strict mode is off)', () => {
    assert.equal(compileJsonSchema({ type: 'object', required: ['id'] })({ id: 1 }), null);
    assert.equal(compileJsonSchema({ type: 'object', required: ['id'] })({})?.pointer, '/id');
  });

  const refused: readonly (readonly [string, unknown, RegExp])[] = [
    ['an unknown keyword', { type: 'object', requird: ['a'] }, /unknown keyword/],
    ['a remote $ref', { $ref: 'https://schemas.example/x.json' }, /can't resolve reference/],
    ['a relative $ref to another file', { $ref: 'other.json' }, /can't resolve reference/],
    ['a lookahead', { type: 'string', pattern: '^(?=a).*' }, /\(\?=/],
    ['a backreference', { type: 'string', pattern: '^(a)\\1$' }, /./],
    ['an unknown format', { type: 'string', format: 'shoe-size' }, /unknown format/],
    ['not a schema', 'string', /JSON Schema is an object/],
  ];
  for (const [what, bad, message] of refused) {
    it(`refuses at load ${what}`, () => {
      assert.throws(() => compileJsonSchema(bad), (err: unknown) => err instanceof SchemaCompileError && message.test(err.message));
    });
  }
});

describe('maxLength and minLength in code points', () => {
  it('agree with Ajv\'s own count on strings with astral characters and lone surrogates (property)', async () => {
    const { default: ucs2length } = await import('ajv/dist/runtime/ucs2length.js') as unknown as { default: { default: (s: string) => number } };
    const unit = fc.oneof(fc.constantFrom('a', 'é', '😀', '\ud800', '\udc00', '\udbff\udfff'), fc.string({ unit: 'binary', maxLength: 1 }));
    fc.assert(fc.property(fc.array(unit, { maxLength: 12 }), fc.integer({ min: 0, max: 14 }), fc.integer({ min: 0, max: 14 }), (units, min, max) => {
      const text = units.join('');
      const check = compileJsonSchema({ type: 'string', minLength: min, maxLength: max });
      const count = ucs2length.default(text);
      const failure = check(text);
      const expected = [...(count < min ? ['minLength'] : []), ...(count > max ? ['maxLength'] : [])];
      return expected.length === 0 ? failure === null : failure !== null && expected.some((keyword) => failure.reason.includes(`${keyword} failed`));
    }), { numRuns: 500 });
  });
});

describe('patterns', () => {
  const shapes: readonly (readonly [string, boolean])[] = [
    ['^[A-Z]{3}-[0-9]+$', true],
    ['^\\d{4}-\\d{2}-\\d{2}$', true],
    ['(?<year>\\d{4})-(?:0[1-9]|1[0-2])', true],
    ['^[a-z]+[0-9]*$', true],
    ['[)(]+x*', true],
    ['a{2,8}b{1,16}c+', true],
    ['^(a+)+$', false],
    ['^(a|aa)*$', false],
    ['^(?:ab)+$', false],
    ['a*a*a*b', false],
    ['a{0,1000}b*c+', false],
    ['(\\w)\\1', false],
    ['(?<n>a)\\k<n>', false],
    ['(?=a)b', false],
    ['(?<!a)b', false],
    ['[unterminated', false],
  ];
  for (const [pattern, bounded] of shapes) {
    it(`${bounded ? 'runs' : 'never runs'} ${pattern} on the backtracking engine`, () => assert.equal(boundedBacktracking(pattern), bounded));
  }

  const catastrophic: readonly string[] = ['^(a+)+$', '^(a|a)*$', '^(\\w+\\s?)*$', '^([a-z]+)*[0-9]$', 'a*a*a*a*a*b'];
  for (const pattern of catastrophic) {
    it(`matches ${pattern} in linear time on short and long hostile strings`, () => {
      const validate = compileJsonSchema({ type: 'string', pattern });
      for (const length of [30, NATIVE_MAX_CHARS, 20_000]) {
        // Each would take longer than the test's life on a backtracking engine.
        assert.notEqual(validate(`${'a'.repeat(length)}!`), null);
      }
    });
  }

  it('agrees between the engines either side of the length where they switch', () => {
    const validate = compileJsonSchema({ type: 'string', pattern: '^[a-z]+-[0-9]{2,4}$' });
    const pad = (n: number): string => 'x'.repeat(n);
    for (const n of [1, NATIVE_MAX_CHARS - 5, NATIVE_MAX_CHARS + 5]) {
      assert.equal(validate(`${pad(n)}-123`), null);
      assert.notEqual(validate(`${pad(n)}-12345`), null);
      assert.notEqual(validate(`${pad(n)}_123`), null);
    }
  });

  it('keeps every pattern of a schema apart (patterns are keyed by their source)', () => {
    const validate = compileJsonSchema({
      type: 'object',
      properties: { a: { type: 'string', pattern: '^a+$' }, b: { type: 'string', pattern: '^b+$' } },
      patternProperties: { '^x-': { type: 'integer' } },
    });
    assert.equal(validate({ a: 'aa', b: 'bb', 'x-1': 1 }), null);
    assert.equal(validate({ a: 'bb' })?.pointer, '/a');
    assert.equal(validate({ b: 'aa' })?.pointer, '/b');
    assert.equal(validate({ 'x-1': 'no' })?.pointer, '/x-1');
  });
});
