// Preloaded with `node --import` into a child process (the CLI, a gateway) to run it as on a
// machine whose clock is off: Date.now() returns the real time plus PORTCULLIS_TEST_CLOCK_SKEW_MS.
import { fileURLToPath } from 'node:url';

const skewMs = Number(process.env.PORTCULLIS_TEST_CLOCK_SKEW_MS ?? '0');
if (Number.isFinite(skewMs) && skewMs !== 0) {
  const realNow = Date.now.bind(Date);
  Date.now = () => realNow() + skewMs;
}

/** Environment for a child process whose clock is `skewMs` off. */
export function skewedClockEnv(skewMs: number): NodeJS.ProcessEnv {
  const self = fileURLToPath(import.meta.url);
  return { NODE_OPTIONS: `--import=${self}`, PORTCULLIS_TEST_CLOCK_SKEW_MS: String(skewMs) };
}
