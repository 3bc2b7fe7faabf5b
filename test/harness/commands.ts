import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

/** Whether `name` runs on this machine (`name --version` exits 0). */
export function hasCommand(name: string): boolean {
  return spawnSync(name, ['--version'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

/**
 * Skips the test with one line when `name` is not installed, saying what it would have shown;
 * under `CI=true` a missing command fails the test instead (CI installs it). True when skipped.
 */
export function skipWithout(t: TestContext, name: string, purpose: string): boolean {
  if (hasCommand(name)) return false;
  const line = `${name} is not installed (Debian: apt-get install ${name}): ${purpose}`;
  if (process.env.CI === 'true') throw new Error(line);
  t.skip(line);
  return true;
}
