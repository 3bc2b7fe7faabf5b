// inCidr checks IPv4 ranges by arithmetic of its own (node's BlockList is the slow part of a rule),
// so it is held to BlockList's answers (lib/ip.ts ipSet) on random and edge addresses and ranges,
// and to refusing what is not an address.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isIPv4 } from 'node:net';
import fc from 'fast-check';
import { isCelError, parse, plan } from '@bufbuild/cel';
import { ruleEnvironment } from '../src/policy/rule-environment.js';
import { ipSet } from '../src/lib/ip.js';

function inCidr(ip: string, cidr: string): unknown {
  return plan(ruleEnvironment(new Set([cidr]), new Set()), parse(`inCidr(ip, ${JSON.stringify(cidr)})`))({ ip });
}

const octet = fc.integer({ min: 0, max: 255 });
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));

describe('inCidr', () => {
  it('agrees with BlockList on random IPv4 addresses and ranges', () => {
    fc.assert(fc.property(ipv4, ipv4, fc.integer({ min: 0, max: 32 }), (address, network, prefix) => {
      const cidr = `${network}/${prefix}`;
      assert.equal(inCidr(address, cidr), ipSet([cidr]).has(address), `${address} in ${cidr}`);
    }), { numRuns: 300 });
  });

  const cases: readonly (readonly [string, string, boolean])[] = [
    ['10.0.0.0', '10.0.0.0/8', true],
    ['10.255.255.255', '10.0.0.0/8', true],
    ['11.0.0.0', '10.0.0.0/8', false],
    ['9.255.255.255', '10.0.0.0/8', false],
    ['255.255.255.255', '0.0.0.0/0', true],
    ['0.0.0.0', '0.0.0.0/0', true],
    ['192.0.2.7', '192.0.2.7', true],
    ['192.0.2.8', '192.0.2.7/32', false],
    // A range written with host bits set covers its network, as BlockList reads it.
    ['10.1.2.3', '10.1.2.200/24', true],
    ['::ffff:10.1.2.3', '10.0.0.0/8', true],
    ['::ffff:a01:203', '10.0.0.0/8', true],
    ['2001:db8::1', '2001:db8::/32', true],
    ['2001:db9::1', '2001:db8::/32', false],
    ['2001:db8::1', '10.0.0.0/8', false],
    ['10.1.2.3', '2001:db8::/32', false],
  ];
  for (const [address, cidr, inside] of cases) {
    it(`${inside ? 'finds' : 'does not find'} ${address} in ${cidr}`, () => assert.equal(inCidr(address, cidr), inside));
  }

  it('reads exactly the dotted quads node:net reads, over strings made of digits and dots (property)', () => {
    const nearAddress = fc.array(fc.constantFrom('0', '1', '2', '5', '9', '.', '.', '25', '255', '256', '00'), { maxLength: 12 }).map((parts) => parts.join(''));
    fc.assert(fc.property(nearAddress, (text) => {
      const result = inCidr(text, '0.0.0.0/0');
      return isIPv4(text) ? result === true : isCelError(result);
    }), { numRuns: 500 });
  });

  for (const address of ['010.1.2.3', '10.1.2', '10.1.2.3.4', ' 10.1.2.3', '10.1.2.256', '10.1.2.-1', '1e1.1.2.3', '', 'localhost', '10.1.2.3/8']) {
    it(`refuses ${JSON.stringify(address)}, which is not an address (an error: the rule fails closed)`, () => {
      const result = inCidr(address, '10.0.0.0/8');
      assert.ok(isCelError(result), `${address}: ${String(result)}`);
    });
  }
});
