// Every default an authenticator kind (and the apiKeys section) declares is the one its docs page
// lists and its schema describes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { API_KEYS_SECTION } from '../src/authn/api-key/api-keys-section.js';
import { AUTHENTICATOR_KINDS } from '../src/authn/kinds.js';
import { checkDefaultsDocumented, documentedDefaults } from './harness/docs-defaults.js';

describe('authenticator kinds document their defaults', () => {
  for (const kind of [...AUTHENTICATOR_KINDS, API_KEYS_SECTION]) {
    it(`${kind.type}: every default appears with the same value in ${kind.docs} and in the schema`, () => {
      assert.deepEqual(checkDefaultsDocumented(kind), []);
    });
  }

  it('the checker notices a default that the docs state differently or not at all', () => {
    const markdown = '## `type: demo` defaults\n\n| option | default |\n| --- | --- |\n| `timeoutMs` | `5000` |\n';
    assert.deepEqual([...(documentedDefaults(markdown, 'demo') ?? [])], [['timeoutMs', '5000']]);
    const schema = { properties: { timeoutMs: { description: 'Default 5000.' }, size: { description: 'Default 2.' } } };
    const problems = checkDefaultsDocumented({ type: 'jwt', defaults: { clockSkewMs: 1, missing: 2 }, docs: 'docs/authentication.md', schema });
    assert.ok(problems.some((p) => p.includes('`clockSkewMs` documented as `30000`, declared 1')), problems.join('\n'));
    assert.ok(problems.some((p) => p.includes('no row for `missing`')), problems.join('\n'));
    assert.ok(problems.some((p) => p.includes('schema has no option clockSkewMs')), problems.join('\n'));
  });
});
