// Settings read from the environment by the bench's runners.

/** An integer ≥ `min` from `process.env[name]` (a trailing "s" is allowed), or `fallback` when unset; throws on anything else. */
export function intEnv(name, fallback, min) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw.replace(/s$/, ''));
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer ≥ ${min}, got "${raw}"`);
  return value;
}
