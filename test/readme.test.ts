import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEMO_VARIABLES, paste, shellBlocks } from './harness/shell.js';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));

describe('README quick start', () => {
  const blocks = shellBlocks(readFileSync(README, 'utf8'), 'Quick start');

  it('has its commands in sh blocks', () => {
    assert.ok(blocks.length >= 3, 'install, demo requests, demo options');
    assert.ok(blocks.some((b) => b.includes('/admin/keys/$KEY_ID/revoke')), 'the revoke line uses $KEY_ID');
  });

  it('every block pastes into bash as it is: no placeholder read as a redirect, no unset variable, no stray file', () => {
    const vars = Object.fromEntries(DEMO_VARIABLES.map((name) => [name, `value-of-${name.toLowerCase()}`]));
    for (const block of blocks) {
      const result = paste(block, vars);
      assert.deepEqual(result, { syntax: '', stderr: '', created: [] }, block);
    }
  });

  it('the paste check catches what breaks a pasted line', () => {
    const broken = [
      'curl -s -X POST 127.0.0.1:9901/admin/keys/<id>/revoke',
      'curl -s -H "X-API-Key: $NOT_PRINTED" 127.0.0.1:8080/',
      'curl -s 127.0.0.1:8080/ > out.json',
      "curl -s '127.0.0.1:8080/",
    ];
    for (const line of broken) {
      const result = paste(line);
      assert.ok(result.syntax !== '' || result.stderr !== '' || result.created.length > 0, line);
    }
  });

  it('uses only the variables the demo prints', () => {
    const used = new Set(blocks.flatMap((b) => [...b.matchAll(/\$([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1] ?? '')));
    const printed = new Set<string>(DEMO_VARIABLES);
    assert.deepEqual([...used].filter((name) => !printed.has(name)), []);
  });
});
