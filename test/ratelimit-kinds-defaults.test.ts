// Every rate-limiting kind (algorithm, limit store, quota store) documents each of its defaults with
// the same value in docs/rate-limits.md and in its schema, and the config schema's enums are the
// kind tables'.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RateLimitSchema, RateLimitingSchema, QuotaSchema } from '../src/config/schema.js';
import { ALGORITHM_KINDS, LIMIT_STORE_KINDS, QUOTA_STORE_KINDS } from '../src/ratelimit/kinds.js';
import { checkDefaultsDocumented } from './harness/docs-defaults.js';

describe('rate-limiting kinds and their defaults', () => {
  for (const [family, kinds] of [['algorithm', ALGORITHM_KINDS], ['limit store', LIMIT_STORE_KINDS], ['quota store', QUOTA_STORE_KINDS]] as const) {
    for (const kind of kinds) {
      it(`${family} ${kind.type}: every default is documented with the same value in ${kind.docs} and its schema`, () => {
        assert.deepEqual(checkDefaultsDocumented({ type: kind.type, defaults: kind.defaults, docs: kind.docs, schema: kind.schema }), []);
      });
    }
  }

  it('the schema offers exactly the kinds of each table', () => {
    const enumOf = (schema: unknown): unknown => (schema as { enum?: unknown }).enum;
    assert.deepEqual(enumOf(RateLimitSchema.properties.algorithm), ALGORITHM_KINDS.map((k) => k.type));
    assert.deepEqual(enumOf(RateLimitSchema.properties.store), LIMIT_STORE_KINDS.map((k) => k.type));
    assert.deepEqual(enumOf(RateLimitingSchema.properties.store), LIMIT_STORE_KINDS.map((k) => k.type));
    assert.deepEqual(enumOf(QuotaSchema.properties.store), QUOTA_STORE_KINDS.map((k) => k.type));
  });
});
