// An authenticator kind lives in its folder: no source outside it branches on its type or imports
// its authenticator class. What a route or the header pass needs from a kind (must it come last,
// does it read a query parameter, which Authorization scheme and asserted headers it owns) is a
// property of the Authenticator interface, so a new stateless kind is its folder and a table row.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AUTHENTICATOR_KINDS } from '../src/authn/kinds.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** Each kind's folder: the one under src/authn whose kind.ts declares `type: '<type>'`. */
function folderOf(root: string, type: string): string {
  const authn = join(root, 'src', 'authn');
  const found = readdirSync(authn, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => join(authn, e.name))
    .filter((dir) => {
      try {
        return readFileSync(join(dir, 'kind.ts'), 'utf8').includes(`type: '${type}'`);
      } catch {
        return false;
      }
    });
  assert.equal(found.length, 1, `one folder declares type ${type}`);
  return found[0] as string;
}

/** Lines of `root`/src outside the kind's folder that name its type as a string literal or import its authenticator. */
function leaks(root: string, type: string): string[] {
  const folder = folderOf(root, type);
  const authn = join(root, 'src', 'authn');
  // Quoted as a value; a doc comment's `type` in backticks is prose.
  const literal = new RegExp(`['"]${type}['"]`);
  const authenticatorImport = new RegExp(`from '[./]*/authn/${relative(authn, folder)}/[^']*-authenticator\\.js'`);
  return sources(join(root, 'src'))
    .filter((file) => !file.startsWith(folder + '/') && file !== join(authn, 'kinds.ts'))
    .flatMap((file) => readFileSync(file, 'utf8').split('\n').flatMap((text, i) =>
      literal.test(text) || authenticatorImport.test(text) ? [`${relative(root, file)}:${i + 1}: ${text.trim()}`] : []));
}

describe('authenticator kinds are contained in their folders', () => {
  for (const kind of AUTHENTICATOR_KINDS) {
    it(`${kind.type}: no source outside its folder branches on its type or imports its authenticator`, () => {
      assert.deepEqual(leaks(ROOT, kind.type), []);
    });
  }

  it('the check finds a branch on a type, and an import of its authenticator, outside the folder', () => {
    const root = mkdtempSync(join(tmpdir(), 'kinds-contained-'));
    try {
      mkdirSync(join(root, 'src', 'authn', 'guest'), { recursive: true });
      mkdirSync(join(root, 'src', 'config'), { recursive: true });
      writeFileSync(join(root, 'src', 'authn', 'guest', 'kind.ts'), "export const guestKind = { type: 'guest' };\n");
      writeFileSync(join(root, 'src', 'authn', 'guest', 'guest-authenticator.ts'), "export const type = 'guest';\n");
      writeFileSync(join(root, 'src', 'authn', 'kinds.ts'), "import { guestKind } from './guest/kind.js';\n");
      writeFileSync(join(root, 'src', 'config', 'compile.ts'), [
        "import { GuestAuthenticator } from '../authn/guest/guest-authenticator.js';",
        'const ok = a.alwaysAdmits;',
        "if (a.type === 'guest') last();",
      ].join('\n'));
      assert.deepEqual(leaks(root, 'guest'), [
        "src/config/compile.ts:1: import { GuestAuthenticator } from '../authn/guest/guest-authenticator.js';",
        "src/config/compile.ts:3: if (a.type === 'guest') last();",
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
