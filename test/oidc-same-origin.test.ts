// CSRF on cookie-authenticated routes: a state-changing request passes only when Origin and
// Sec-Fetch-Site show it came from our own pages (or from an origin the route's CORS policy admits
// with credentials), for every spoof-ish spelling of an origin.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crossSiteRefusal, normaliseOrigin } from '../src/authn/oidc/same-origin.js';

const OWN: ReadonlySet<string> = new Set(['https://app.example.com', 'http://localhost:8080']);
const PARTNER = 'https://partner.example.org';
const cors = (origin: string): boolean => origin === PARTNER;

// Node's types say one string per header; with joinDuplicateHeaders off and HTTP/2 a repeated one can arrive as an array.
type Headers = Readonly<Record<string, string | string[]>>;
type Case = readonly [label: string, method: string, headers: Headers, reason?: RegExp];
const refusal = (method: string, headers: Headers, cors: (origin: string) => boolean): string | null =>
  crossSiteRefusal(method, headers, OWN, cors);

const ALLOWED: readonly Case[] = [
  ['GET without any header', 'GET', {}],
  ['HEAD cross-site', 'HEAD', { origin: 'https://evil.com', 'sec-fetch-site': 'cross-site' }],
  ['OPTIONS cross-site', 'OPTIONS', { origin: 'https://evil.com', 'sec-fetch-site': 'cross-site' }],
  ['POST same-origin with own Origin', 'POST', { origin: 'https://app.example.com', 'sec-fetch-site': 'same-origin' }],
  ['POST same-origin without Origin', 'POST', { 'sec-fetch-site': 'same-origin' }],
  ['POST own Origin, no Fetch Metadata (older browser)', 'POST', { origin: 'https://app.example.com' }],
  ['POST own Origin with an upper-case host', 'POST', { origin: 'https://APP.example.com' }],
  ['POST own Origin with the default port spelled out', 'POST', { origin: 'https://app.example.com:443' }],
  ['POST own Origin with an upper-case scheme', 'POST', { origin: 'HTTPS://app.example.com' }],
  ['POST own Origin on a non-default port', 'POST', { origin: 'http://localhost:8080', 'sec-fetch-site': 'same-origin' }],
  ['DELETE cross-site from a CORS-admitted origin', 'DELETE', { origin: PARTNER, 'sec-fetch-site': 'cross-site' }],
  ['PUT same-site from a CORS-admitted origin', 'PUT', { origin: PARTNER, 'sec-fetch-site': 'same-site' }],
  ['PATCH CORS-admitted origin without Fetch Metadata', 'PATCH', { origin: PARTNER }],
  ['a one-element array header', 'POST', { origin: 'https://app.example.com', 'sec-fetch-site': ['same-origin'] }],
];

const REFUSED: readonly Case[] = [
  ['POST cross-site from an unknown origin', 'POST', { origin: 'https://evil.com', 'sec-fetch-site': 'cross-site' }],
  ['POST same-site from a sibling subdomain not admitted by CORS', 'POST', { origin: 'https://evil.example.com', 'sec-fetch-site': 'same-site' }],
  ['POST same-site from our own origin (contradictory)', 'POST', { origin: 'https://app.example.com', 'sec-fetch-site': 'same-site' }],
  ['POST cross-site without Origin', 'POST', { 'sec-fetch-site': 'cross-site' }],
  ['POST same-site without Origin', 'POST', { 'sec-fetch-site': 'same-site' }],
  ['POST same-origin with a foreign Origin', 'POST', { origin: 'https://evil.com', 'sec-fetch-site': 'same-origin' }],
  ['POST Sec-Fetch-Site none', 'POST', { origin: 'https://app.example.com', 'sec-fetch-site': 'none' }, /none/],
  ['POST Sec-Fetch-Site none without Origin', 'POST', { 'sec-fetch-site': 'none' }],
  ['POST Sec-Fetch-Site of an unknown value', 'POST', { origin: 'https://app.example.com', 'sec-fetch-site': 'same-origin-ish' }],
  ['POST Sec-Fetch-Site in upper case', 'POST', { origin: 'https://app.example.com', 'sec-fetch-site': 'SAME-ORIGIN' }],
  ['POST with neither header (curl with a stolen cookie)', 'POST', {}, /bearer token/],
  ['POST Origin null', 'POST', { origin: 'null' }, /null/],
  ['POST Origin null claiming same-origin', 'POST', { origin: 'null', 'sec-fetch-site': 'same-origin' }, /null/],
  ['POST our host as a prefix of another', 'POST', { origin: 'https://app.example.com.evil.com' }],
  ['POST our host as a suffix of another', 'POST', { origin: 'https://evilapp.example.com' }],
  ['POST our origin with a trailing slash', 'POST', { origin: 'https://app.example.com/' }],
  ['POST our origin with a path', 'POST', { origin: 'https://app.example.com/x' }],
  ['POST our origin with user information', 'POST', { origin: 'https://app.example.com@evil.com' }],
  ['POST our host with a trailing dot', 'POST', { origin: 'https://app.example.com.' }],
  ['POST our host over plain http', 'POST', { origin: 'http://app.example.com' }],
  ['POST our host on another port', 'POST', { origin: 'https://app.example.com:8443' }],
  ['POST a port out of range', 'POST', { origin: 'https://app.example.com:65536' }],
  ['POST port zero', 'POST', { origin: 'https://app.example.com:0' }],
  ['POST another scheme', 'POST', { origin: 'file://app.example.com' }],
  ['POST an empty Origin', 'POST', { origin: '' }],
  ['POST Origin with surrounding space', 'POST', { origin: ' https://app.example.com' }],
  ['POST two Origin headers (array)', 'POST', { origin: ['https://app.example.com', 'https://evil.com'] }, /repeated/],
  ['POST two identical Origin headers (array)', 'POST', { origin: ['https://app.example.com', 'https://app.example.com'] }, /repeated/],
  ['POST two Origin headers joined by Node', 'POST', { origin: 'https://app.example.com, https://evil.com' }, /repeated/],
  ['POST two Sec-Fetch-Site headers joined by Node', 'POST', { origin: 'https://app.example.com', 'sec-fetch-site': 'same-origin, cross-site' }, /repeated/],
  ['POST two Sec-Fetch-Site headers (array)', 'POST', { origin: 'https://app.example.com', 'sec-fetch-site': ['same-origin', 'same-origin'] }, /repeated/],
  ['lower-case post is not a safe method', 'post', { origin: 'https://evil.com', 'sec-fetch-site': 'cross-site' }],
  ['lower-case get is not GET (methods are case-sensitive)', 'get', {}],
  ['an unknown method', 'PROPFIND', { origin: 'https://evil.com' }],
  ['a CORS-admitted host with a trailing dot', 'POST', { origin: 'https://partner.example.org.', 'sec-fetch-site': 'cross-site' }],
];

describe('crossSiteRefusal', () => {
  for (const [label, method, headers] of ALLOWED) {
    it(`allows ${label}`, () => {
      assert.equal(refusal(method, headers, cors), null);
    });
  }
  for (const [label, method, headers, why] of REFUSED) {
    it(`refuses ${label}`, () => {
      const reason = refusal(method, headers, cors);
      assert.equal(typeof reason, 'string');
      assert.ok((reason ?? '').length > 0);
      if (why !== undefined) assert.match(reason ?? '', why);
    });
  }

  it('asks the CORS policy with the normalised origin, and only for unsafe methods with an origin not our own', () => {
    const asked: string[] = [];
    const spy = (origin: string): boolean => { asked.push(origin); return false; };
    crossSiteRefusal('GET', { origin: 'https://x.example' }, OWN, spy);
    crossSiteRefusal('POST', { origin: 'HTTPS://Partner.Example.org:443', 'sec-fetch-site': 'cross-site' }, OWN, spy);
    crossSiteRefusal('POST', { origin: 'https://app.example.com' }, OWN, spy);
    crossSiteRefusal('POST', { origin: 'null' }, OWN, spy);
    assert.deepEqual(asked, ['https://partner.example.org']);
  });
});

describe('normaliseOrigin', () => {
  const table: readonly (readonly [string, string | null])[] = [
    ['https://app.example.com', 'https://app.example.com'],
    ['HTTPS://APP.EXAMPLE.COM', 'https://app.example.com'],
    ['https://app.example.com:443', 'https://app.example.com'],
    ['http://app.example.com:80', 'http://app.example.com'],
    ['http://app.example.com:443', 'http://app.example.com:443'],
    ['https://app.example.com:80', 'https://app.example.com:80'],
    ['https://app.example.com:0443', 'https://app.example.com'],
    ['http://127.0.0.1:8080', 'http://127.0.0.1:8080'],
    ['http://[::1]:8080', 'http://[::1]:8080'],
    ['https://[2001:DB8::1]', 'https://[2001:db8::1]'],
    ['https://[not-ip]', null],
    ['https://[::1', null],
    ['null', null],
    ['', null],
    ['https://', null],
    ['https://app.example.com/', null],
    ['https://app.example.com/path', null],
    ['https://app.example.com?', null],
    ['https://app.example.com#', null],
    ['https://user@app.example.com', null],
    ['https://app.example.com.', null],
    ['https://app..example.com', null],
    ['https://-app.example.com', null],
    ['https://app_x.example.com', null],
    ['https://app.example.com:', null],
    ['https://app.example.com:65536', null],
    ['https://app.example.com:123456', null],
    ['https://app.example.com:0', null],
    ['ftp://app.example.com', null],
    ['javascript://app.example.com', null],
    ['https:app.example.com', null],
    ['https:\\\\app.example.com', null],
    ['https://app.example.com, https://evil.com', null],
    ['https://app.example.com\t', null],
    ['https://xn--bcher-kva.example', 'https://xn--bcher-kva.example'],
    ['https://b\u00fccher.example', null],
    [`https://${'a'.repeat(300)}.com`, null],
    [`https://${'a'.repeat(64)}.com`, null],
  ];
  for (const [raw, expected] of table) {
    it(`${JSON.stringify(raw).slice(0, 70)} → ${String(expected)}`, () => {
      assert.equal(normaliseOrigin(raw), expected);
    });
  }
});
