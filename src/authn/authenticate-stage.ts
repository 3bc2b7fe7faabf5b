import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange, Explained, Stage } from '../pipeline/exchange.js';
import type { Authenticator, AuthOutcome } from './authenticator.js';

type Result = Denial | undefined;
type StageResult = Result | Promise<Result>;

/**
 * Runs a route's authenticators in order. The first whose credential is present decides: it
 * authenticates (the identity is set on the exchange) or denies. When none finds its credential
 * the answer is 401 with one challenge per scheme the route accepts (RFC 9110 §11.6.1).
 */
/** Told of every refused credential (the brute-force guard); may turn the denial into a stricter one. */
export interface FailureCounter {
  failed(ex: Exchange, denial: Denial): Denial | Promise<Denial>;
}

function settleExplained(result: StageResult): Explained | Promise<Explained> {
  const note = (r: Result): Explained => ({ result: r, note: r === undefined ? 'credential verified' : 'credential refused' });
  return result instanceof Promise ? result.then(note) : note(result);
}

export function authenticateStage(authenticators: readonly Authenticator[], failures: FailureCounter | null = null): Stage {
  const challenges = [...new Set(authenticators.flatMap((a) => (a.challenge === null ? [] : [a.challenge])))];
  const missing = deny('unauthenticated', `no credential for ${authenticators.map((a) => a.name).join(', ')}`,
    challenges.length > 0 ? { 'www-authenticate': challenges.join(', ') } : undefined);

  const withLogin = authenticators.filter((a) => a.onMissing !== undefined);
  const decide = (ex: Exchange, authenticator: string, outcome: AuthOutcome): StageResult => {
    // The authenticator's own verdict is counted, before the guard may make the denial stricter.
    ex.tally?.authentication(authenticator, outcome.kind === 'rejected' ? outcome.denial.code : 'authenticated');
    if (outcome.kind === 'rejected') {
      ex.credentialGuess = outcome.guess;
      if (outcome.owner !== undefined) ex.refusedIdentity = outcome.owner;
      return failures === null ? outcome.denial : failures.failed(ex, outcome.denial);
    }
    if (outcome.kind === 'authenticated') ex.identity = outcome.identity;
    return undefined;
  };
  const from = (ex: Exchange, start: number): StageResult => {
    for (let i = start; i < authenticators.length; i++) {
      const authenticator = authenticators[i] as Authenticator;
      const outcome = authenticator.authenticate(ex);
      if (outcome instanceof Promise) return outcome.then((o) => (o.kind === 'absent' ? from(ex, i + 1) : decide(ex, authenticator.name, o)));
      if (outcome.kind !== 'absent') return decide(ex, authenticator.name, outcome);
    }
    ex.tally?.authentication('', 'unauthenticated');
    for (const a of withLogin) {
      const login = a.onMissing?.(ex) ?? null;
      if (login !== null) return login;
    }
    return missing;
  };
  return {
    name: 'authenticate',
    run: (ex) => from(ex, 0),
    // `explain --identity` sets the identity beforehand: the authenticators are not consulted.
    explain: (ex) => (ex.identity !== null
      ? { result: undefined, note: `identity given (${ex.identity.subject}); ${authenticators.map((a) => a.name).join(', ')} not consulted` }
      : settleExplained(from(ex, 0))),
  };
}
