import { declaresLength, hasUndeclaredBody } from '../http/body-framing.js';
import { deny, type Denial } from '../pipeline/denials.js';
import type { Exchange, Explained, Stage, StageResult } from '../pipeline/exchange.js';
import { bodyHasBytes, receiveBody } from '../proxy/forward.js';
import type { RequestContract } from '../validation/contract.js';
import { boundedPointer, readJsonBody } from '../validation/json-body.js';
import { acceptedMediaType } from '../validation/media-type.js';

/** A denial that names where in the request it failed (the problem's `pointer`). */
function at(code: 'invalid_body' | 'schema_violation', pointer: string, reason: string): Denial {
  return { code, reason, pointer: boundedPointer(pointer) };
}

/**
 * Request validation against the route's contract (`validate`, or an OpenAPI operation): the
 * parameters; then, for a request with a body, its media type and charset (415); then a JSON body,
 * received whole (at most maxBodyBytes, see receiveBody), is read within the JSON limits (400
 * invalid_body) and checked against its schema (422 schema_violation). Both name the failing
 * location as a JSON pointer; neither says anything of the values. The received bytes are kept in
 * `ex.body` and forwarded exactly as they arrived.
 */
export function validateStage(contract: RequestContract): Stage {
  const check = (ex: Exchange): StageResult | Promise<StageResult> => {
    if (contract.parameters !== null) {
      const refused = contract.parameters(ex);
      if (refused !== undefined) return refused;
    }
    const req = ex.req;
    const length = req.headers['content-length'];
    const undeclared = hasUndeclaredBody(req);
    const hasBody = undeclared || declaresLength(length);
    if (!hasBody) return contract.bodyRequired ? at('invalid_body', '', `${contract.source}: the request has no body and one is required`) : undefined;
    if (contract.mediaTypes === null) return undefined;
    const media = acceptedMediaType(req.headers['content-type'], contract.mediaTypes);
    if ('problem' in media) return deny('unsupported_media_type', `${contract.source}: ${media.problem}`);
    if (!media.rule.json) {
      // Streamed unread; a required body of unknown length must still show a byte (an empty chunked body has none).
      if (!contract.bodyRequired || !undeclared) return undefined;
      return bodyHasBytes(ex).then((has) => {
        if (has === true) return undefined;
        if (has === false) return at('invalid_body', '', `${contract.source}: the request body is empty and one is required`);
        return has ?? deny('bad_request', 'the client closed the connection while sending the request body');
      });
    }
    // A coded body (gzip, br) is not the JSON it declares; RFC 7694 §3: 415 for a coding not supported.
    const coding = req.headers['content-encoding'];
    if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') return deny('unsupported_media_type', `${contract.source}: a JSON body with a content coding cannot be validated`);
    return receiveBody(ex).then((received) => {
      if (Buffer.isBuffer(received)) return judge(ex, received);
      // undefined: the client went away mid-body (`ex.abandoned`: the verdict is not answered and
      // the record says abort); the request still ends here, with nothing forwarded.
      return received ?? deny('bad_request', 'the client closed the connection while sending the request body');
    });
  };

  /** Reads and checks a received JSON body; it is forwarded only if it passes. */
  const judge = (ex: Exchange, body: Buffer): StageResult => {
    if (body.length === 0) return contract.bodyRequired ? at('invalid_body', '', `${contract.source}: the request body is empty and one is required`) : keep(ex, body);
    const read = readJsonBody(body, contract.json);
    if (!read.ok) return at('invalid_body', read.pointer, `${contract.source}: ${read.reason}`);
    const failure = contract.body?.(read.value) ?? null;
    if (failure !== null) return at('schema_violation', failure.pointer, `${contract.source}: ${failure.reason}`);
    return keep(ex, body);
  };

  return {
    name: 'validate',
    run: check,
    async explain(ex): Promise<Explained> {
      // The explained request's body is all there (pushed whole into its stream): read it as is.
      const result = await check(ex);
      if (result !== undefined) return { result, note: '' };
      return { result, note: ex.body === null ? `${contract.source}: no body to read; parameters conform` : `${contract.source}: body of ${ex.body.length} bytes conforms` };
    },
  };
}

function keep(ex: Exchange, body: Buffer): undefined {
  ex.body = body;
  return undefined;
}
