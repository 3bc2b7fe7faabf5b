// Preloaded with `node --import` into a child process (the CLI, a gateway) to run it as on a
// machine whose clock is off: Date.now() returns the real time plus PORTCULLIS_TEST_CLOCK_SKEW_MS.
// With PORTCULLIS_TEST_CLOCK_STEP_MS, each SIGUSR2 moves that clock forward by the step and says so
// on stdout (`test clock advanced to <skew>`): a test moves a gateway process's time without waiting.
import { fileURLToPath } from 'node:url';

let skewMs = Number(process.env.PORTCULLIS_TEST_CLOCK_SKEW_MS ?? '0');
const stepMs = Number(process.env.PORTCULLIS_TEST_CLOCK_STEP_MS ?? '0');
if (Number.isFinite(skewMs) && (skewMs !== 0 || stepMs !== 0)) {
  const realNow = Date.now.bind(Date);
  Date.now = () => realNow() + skewMs;
}
if (Number.isFinite(stepMs) && stepMs > 0) {
  process.on('SIGUSR2', () => {
    skewMs += stepMs;
    process.stdout.write(`test clock advanced to ${skewMs}\n`);
  });
}

/** Environment for a child process whose clock is `skewMs` off, and moves `stepMs` forward at each SIGUSR2. */
export function skewedClockEnv(skewMs: number, stepMs = 0): NodeJS.ProcessEnv {
  const self = fileURLToPath(import.meta.url);
  return { NODE_OPTIONS: `--import=${self}`, PORTCULLIS_TEST_CLOCK_SKEW_MS: String(skewMs), ...(stepMs > 0 ? { PORTCULLIS_TEST_CLOCK_STEP_MS: String(stepMs) } : {}) };
}
