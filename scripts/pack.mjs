// `npm pack` / `npm publish` hooks. prepack: remove dist (the package is built from scratch, so no
// output of a deleted source can ship) and lock the dependency tree the tests ran with into
// npm-shrinkwrap.json (npm honours it when installing the package; package-lock.json is for the
// checkout only). postpack: remove that copy again.
import { copyFileSync, rmSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const step = process.argv[2];
if (step === 'prepack') {
  rmSync(new URL('dist', root), { recursive: true, force: true });
  copyFileSync(new URL('package-lock.json', root), new URL('npm-shrinkwrap.json', root));
} else if (step === 'postpack') {
  rmSync(new URL('npm-shrinkwrap.json', root), { force: true });
} else {
  console.error('usage: node scripts/pack.mjs prepack|postpack');
  process.exit(2);
}
