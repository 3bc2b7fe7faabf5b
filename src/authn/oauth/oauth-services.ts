import { randomBytes } from 'node:crypto';
import type { Clock } from '../../lib/clock.js';
import { MemoryRevocations } from './memory-revocations.js';
import type { RevocationList } from './revocations.js';
import { TokenDigester } from './token-digest.js';

/** What every bearer-token authenticator of one config shares: how tokens are digested, and which are revoked. */
export interface OAuthServices {
  readonly digester: TokenDigester;
  readonly revocations: RevocationList;
}

/** The services of a config: digests under a key of this process, revocations held in this process. */
export function compileOAuthServices(clock: Clock): OAuthServices {
  return { digester: new TokenDigester(randomBytes(32)), revocations: new MemoryRevocations(100_000, clock) };
}
