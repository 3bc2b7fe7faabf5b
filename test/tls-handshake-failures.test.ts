// Handshake failures: the fixed table of reasons, and the token bucket that keeps a handshake flood
// from flooding the audit trail (injected clock, no sleeps).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { handshakeFailureReason, RecordBudget, suppressedTail, HANDSHAKE_FAILURE_REASONS } from '../src/tls/handshake-failures.js';
import { ManualClock } from './harness/manual-clock.js';

const err = (code: string, message = '', reason?: string): NodeJS.ErrnoException & { reason?: string } =>
  Object.assign(new Error(message), { code, ...(reason === undefined ? {} : { reason }) });

describe('handshake failure reasons', () => {
  const table: [NodeJS.ErrnoException, string][] = [
    [err('ERR_SSL_UNSUPPORTED_PROTOCOL', 'tls_early_post_process_client_hello:unsupported protocol', 'unsupported protocol'), 'protocol_version'],
    [err('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION'), 'protocol_version'],
    [err('ERR_SSL_WRONG_VERSION_NUMBER'), 'protocol_version'],
    [err('ERR_SSL_NO_SHARED_CIPHER', '', 'no shared cipher'), 'no_shared_cipher'],
    [err('ERR_SSL_HTTP_REQUEST', 'ssl3_get_record:http request', 'http request'), 'http_request'],
    [err('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'), 'unknown_ca'],
    [err('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE'), 'certificate_required'],
    [err('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), 'certificate_required'],
    [err('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE'), 'bad_certificate'],
    [err('ERR_SSL_CERTIFICATE_VERIFY_FAILED'), 'bad_certificate'],
    [err('ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED'), 'certificate_expired'],
    [err('ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED'), 'certificate_revoked'],
    [err('ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE'), 'unsupported_certificate'],
    [err('ERR_TLS_HANDSHAKE_TIMEOUT', 'TLS handshake timeout'), 'timeout'],
    [err('ECONNRESET', 'socket hang up'), 'reset'],
    [err('EPIPE'), 'reset'],
    [err('ERR_SSL_SOMETHING_NEW', 'a message that names nothing known'), 'other'],
  ];
  for (const [e, expected] of table) {
    it(`${e.code ?? ''} is ${expected}`, () => {
      assert.equal(handshakeFailureReason(e), expected);
      assert.ok((HANDSHAKE_FAILURE_REASONS as readonly string[]).includes(expected));
    });
  }
});

describe('handshake failure records are sampled by a token bucket', () => {
  it('writes a burst of the budget, counts the excess, and summarises it in the next record written', () => {
    const clock = new ManualClock();
    const budget = new RecordBudget(10, clock);
    const written = Array.from({ length: 10 }, () => budget.take());
    assert.ok(written.every((s) => s !== null && s.suppressed === 0));
    const start = clock.now();
    for (let i = 0; i < 1234; i++) assert.equal(budget.take(), null);
    clock.advance(99);
    assert.equal(budget.take(), null, 'less than one token back after 99 ms');
    clock.advance(1);
    const next = budget.take();
    assert.deepEqual(next, { suppressed: 1235, since: start });
    assert.equal(suppressedTail(next ?? { suppressed: 0, since: null }), ` … and 1235 more since ${new Date(start).toISOString()}`);
    clock.advance(100);
    assert.deepEqual(budget.take(), { suppressed: 0, since: null });
    assert.equal(suppressedTail({ suppressed: 0, since: null }), '');
  });

  it('never holds more than one second of budget, however long it was idle', () => {
    const clock = new ManualClock();
    const budget = new RecordBudget(5, clock);
    clock.advance(3_600_000);
    const taken = Array.from({ length: 20 }, () => budget.take()).filter((s) => s !== null).length;
    assert.equal(taken, 5);
  });
});
