// Policy test files: YAML lists of requests and the decisions the gateway must make on them, read
// strictly (unknown keys, wrong types and duplicated names are errors with file:line), bounded in
// size, number of cases and aliases, and turned into the requests `explain` runs.
import { open } from 'node:fs/promises';
import { isIP } from 'node:net';
import { basename, dirname, extname, join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, type ConfigProblem } from '../config/errors.js';
import { PATTERN_MESSAGE, formatted } from '../config/schema-parts.js';
import { schemaProblems } from '../config/schema-problems.js';
import { yamlLocator } from '../config/yaml-locate.js';
import type { ExplainIdentity, ExplainRequest } from '../explain/explain.js';
import { AJV_CODE } from '../lib/ajv-code.js';

/** Bounds of what a test file may hold; documented in docs/policy-tests.md. */
export const TEST_FILE_LIMITS = Object.freeze({
  /** A larger file is refused before it is parsed. */
  maxFileBytes: 4 * 1024 * 1024,
  /** Cases in one file. */
  maxCases: 10_000,
  /** Cases over every file of one run. */
  maxCasesTotal: 50_000,
  /** Header fields of one request. */
  maxHeaders: 1000,
  maxHeaderValueChars: 16_384,
  maxTargetChars: 16_384,
  maxBodyChars: 1024 * 1024,
  /** YAML aliases expanded in one file (a "billion laughs" file is refused). */
  maxAliases: 100,
});

/** The address a request comes from when its case does not say. */
export const DEFAULT_FROM = '192.0.2.10';

/** What a case expects the gateway to decide. */
export interface Expectation {
  /** allow: the request is forwarded (or a served route answers it with an allowing response); deny: the gateway ends it with a denial. */
  readonly decision: 'allow' | 'deny';
  readonly status?: number;
  readonly code?: string;
  readonly route?: string;
  readonly rule?: string;
}

/** One test case, with where it is written. */
export interface PolicyCase {
  readonly name: string;
  readonly file: string;
  readonly line: number;
  readonly request: ExplainRequest;
  readonly expect: Expectation;
}

const HEADER_NAME = "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,1024}$";
const Text = (maxLength: number, minLength = 0) => Type.String({ minLength, maxLength });
const HeaderFieldName = formatted(HEADER_NAME, "an HTTP header name (letters, digits and !#$%&'*+.^_`|~-), up to 1024 characters");
// No client can send CR, LF or NUL in a header value (the HTTP parser refuses them): neither can a case.
const HeaderValue = formatted(`^[^\\r\\n\\x00]{0,${TEST_FILE_LIMITS.maxHeaderValueChars}}$`, `text without CR, LF or NUL, up to ${TEST_FILE_LIMITS.maxHeaderValueChars} characters (quote numbers: "2")`);
const strictObject = <T extends Parameters<typeof Type.Object>[0]>(props: T) => Type.Object(props, { additionalProperties: false });

const IdentitySchema = strictObject({
  sub: Text(256, 1),
  roles: Type.Optional(Type.Array(Text(256), { maxItems: 1000 })),
  scopes: Type.Optional(Type.Array(Text(256), { maxItems: 1000 })),
  tenant: Type.Optional(Type.Union([Text(256), Type.Null()])),
  method: Type.Optional(Text(64, 1)),
  keyId: Type.Optional(Type.Union([Text(256), Type.Null()])),
  tier: Type.Optional(Type.Union([Text(256), Type.Null()])),
  claims: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

const CaseSchema = strictObject({
  name: Text(200, 1),
  request: strictObject({
    method: formatted("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,32}$", 'an HTTP method (a token such as GET or PATCH), up to 32 characters'),
    target: Text(TEST_FILE_LIMITS.maxTargetChars, 1),
    headers: Type.Optional(Type.Union([
      Type.Record(HeaderFieldName, HeaderValue, { maxProperties: TEST_FILE_LIMITS.maxHeaders }),
      Type.Array(Type.Array(Type.String(), { minItems: 2, maxItems: 2, description: '[name, value]' }), { maxItems: TEST_FILE_LIMITS.maxHeaders }),
    ])),
    from: Type.Optional(Text(64, 1)),
    body: Type.Optional(Text(TEST_FILE_LIMITS.maxBodyChars)),
    at: Type.Optional(formatted('^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})$',
      'an ISO 8601 time with Z or an offset (2026-11-30T10:00:00Z)')),
  }),
  identity: Type.Optional(IdentitySchema),
  expect: strictObject({
    decision: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
    status: Type.Optional(Type.Integer({ minimum: 100, maximum: 599 })),
    code: Type.Optional(formatted('^[a-z][a-z0-9_]{0,63}$', 'a problem code (lower case letters, digits and _)')),
    route: Type.Optional(Text(128, 1)),
    rule: Type.Optional(Text(128, 1)),
  }),
});

/** The JSON Schema of a test file (docs/policy-tests.md describes it). */
export const TestFileSchema = strictObject({
  tests: Type.Array(CaseSchema, { maxItems: TEST_FILE_LIMITS.maxCases }),
});

type RawFile = Static<typeof TestFileSchema>;
type RawCase = RawFile['tests'][number];

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true, code: AJV_CODE });
ajv.addKeyword({ keyword: PATTERN_MESSAGE, schemaType: 'string' });
const validate = ajv.compile<RawFile>(TestFileSchema);

/** A test file cannot be read or is not valid: every problem with file:line (exit 2). */
export class TestFileError extends ConfigError {
  override readonly name = 'TestFileError';
}

/**
 * Where the tests of a config live when `--tests` is not given: `<name>.tests.yaml` beside
 * `<name>.yaml` (gateway.yaml → gateway.tests.yaml).
 */
export function besideConfig(configFile: string): string {
  const extension = extname(configFile);
  return join(dirname(configFile), `${basename(configFile, extension)}.tests.yaml`);
}

/** Reads test files in order; names must be unique over all of them. Throws TestFileError. */
export async function loadTestFiles(files: readonly string[]): Promise<PolicyCase[]> {
  const cases: PolicyCase[] = [];
  const problems: ConfigProblem[] = [];
  const seen = new Map<string, PolicyCase>();
  for (const file of files) {
    let loaded: PolicyCase[];
    try {
      loaded = parseTestFile(await readBounded(file), file);
    } catch (err) {
      if (err instanceof ConfigError) { problems.push(...err.problems); continue; }
      throw err;
    }
    for (const c of loaded) {
      const earlier = seen.get(c.name);
      if (earlier !== undefined) {
        problems.push({ file: c.file, line: c.line, column: 1, option: 'name', message: `"${c.name}" is already the name of a case (${earlier.file}:${earlier.line}); give each case its own name` });
        continue;
      }
      seen.set(c.name, c);
      cases.push(c);
    }
    if (cases.length > TEST_FILE_LIMITS.maxCasesTotal) {
      problems.push({ file, line: 0, column: 0, option: '', message: `more than ${TEST_FILE_LIMITS.maxCasesTotal} cases over all test files; split the run` });
      break;
    }
  }
  if (problems.length > 0) throw new TestFileError(problems);
  return cases;
}

/** The text of a file, read up to the limit and no further (a device that never ends is refused at the limit). */
async function readBounded(file: string): Promise<string> {
  const max = TEST_FILE_LIMITS.maxFileBytes;
  try {
    const handle = await open(file, 'r');
    try {
      const buf = Buffer.alloc(max + 1);
      let size = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buf, size, buf.length - size, null);
        if (bytesRead === 0) break;
        size += bytesRead;
        if (size > max) throw new Error(`larger than ${max} bytes; split the cases over several files`);
      }
      return buf.subarray(0, size).toString('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new TestFileError([{ file, line: 0, column: 0, option: '', message: `cannot read test file: ${(err as Error).message}` }]);
  }
}

/** Parses and validates one test file's text. Throws TestFileError listing every problem. */
export function parseTestFile(text: string, file: string): PolicyCase[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false, strict: true });
  const yamlErrors = [...doc.errors, ...doc.warnings];
  if (yamlErrors.length > 0) {
    throw new TestFileError(yamlErrors.map((e) => {
      const pos = lines.linePos(e.pos[0]);
      return { file, line: pos.line, column: pos.col, option: '', message: e.message.split('\n')[0] ?? e.message };
    }));
  }
  const problem = yamlLocator(doc, lines, file);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: TEST_FILE_LIMITS.maxAliases });
  } catch (err) {
    throw new TestFileError([problem([], `cannot be read: ${(err as Error).message.split('\n')[0] ?? ''}`)]);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new TestFileError([{ file, line: 1, column: 1, option: '', message: 'a test file is a mapping with one key, tests: a list of cases' }]);
  }
  if (!validate(raw)) throw new TestFileError(schemaProblems(validate.errors ?? [], TestFileSchema, problem));
  const problems: ConfigProblem[] = [];
  const cases: PolicyCase[] = [];
  const names = new Map<string, number>();
  raw.tests.forEach((c, i) => {
    const line = problem(['tests', i], '').line;
    const at = (path: (string | number)[], message: string): void => { problems.push(problem(['tests', i, ...path], message)); };
    const earlier = names.get(c.name);
    if (earlier !== undefined) at(['name'], `"${c.name}" is already the name of the case at line ${earlier}; give each case its own name`);
    names.set(c.name, line);
    const request = requestOf(c, at);
    if (request !== null) cases.push({ name: c.name, file, line, request, expect: expectationOf(c) });
  });
  if (problems.length > 0) throw new TestFileError(problems);
  return cases;
}

/** The request a case describes, or null after reporting what is wrong with it. */
function requestOf(c: RawCase, at: (path: (string | number)[], message: string) => void): ExplainRequest | null {
  const r = c.request;
  let ok = true;
  const from = r.from ?? DEFAULT_FROM;
  if (isIP(from) === 0) { at(['request', 'from'], 'must be an IP address (192.0.2.10 or 2001:db8::1)'); ok = false; }
  const headers: [string, string][] = [];
  if (Array.isArray(r.headers)) {
    r.headers.forEach(([name = '', value = ''], j) => {
      if (!new RegExp(HEADER_NAME).test(name)) { at(['request', 'headers', j, 0], 'must be an HTTP header name (letters, digits and !#$%&\'*+.^_`|~-)'); ok = false; }
      else if (/[\r\n\0]/.test(value) || value.length > TEST_FILE_LIMITS.maxHeaderValueChars) { at(['request', 'headers', j, 1], `must be text without CR, LF or NUL, up to ${TEST_FILE_LIMITS.maxHeaderValueChars} characters`); ok = false; }
      else headers.push([name, value]);
    });
  } else if (r.headers !== undefined) {
    for (const [name, value] of Object.entries(r.headers)) headers.push([name, value]);
  }
  let atMs: number | undefined;
  if (r.at !== undefined) {
    atMs = Date.parse(r.at);
    if (!Number.isFinite(atMs)) { at(['request', 'at'], 'must be a real time (2026-11-30T10:00:00Z)'); ok = false; }
  }
  const framing = parserRefusal(headers);
  if (framing !== null) { at(['request', 'headers'], `${framing}: the HTTP parser refuses such a request with 400 before any stage runs, so no case can state it (test it against a running gateway)`); ok = false; }
  if (!ok) return null;
  // A body without framing is sent with its length, as a client would send it.
  if (r.body !== undefined && !headers.some(([n]) => /^(content-length|transfer-encoding)$/i.test(n))) {
    headers.push(['Content-Length', String(Buffer.byteLength(r.body))]);
  }
  return {
    method: r.method,
    target: r.target,
    headers,
    from,
    ...(c.identity === undefined ? {} : { identity: identityOf(c.identity) }),
    ...(r.body === undefined ? {} : { body: r.body }),
    ...(atMs === undefined ? {} : { at: atMs }),
  };
}

/**
 * Framing that Node's HTTP parser refuses at the listener (RFC 9112 §6.3: request smuggling), so the
 * stages `explain` runs would never see it: null when the request is one a client can deliver.
 */
function parserRefusal(headers: readonly (readonly [string, string])[]): string | null {
  const lengths = headers.filter(([n]) => n.toLowerCase() === 'content-length').map(([, v]) => v.trim());
  const chunked = headers.some(([n]) => n.toLowerCase() === 'transfer-encoding');
  if (lengths.length > 0 && chunked) return 'Content-Length with Transfer-Encoding';
  if (lengths.length > 1) return 'Content-Length given more than once';
  if (lengths.length === 1 && !/^[0-9]{1,15}$/.test(lengths[0] ?? '')) return 'a Content-Length that is not a decimal number';
  return null;
}

function identityOf(i: NonNullable<RawCase['identity']>): ExplainIdentity {
  return {
    sub: i.sub,
    ...(i.roles === undefined ? {} : { roles: i.roles }),
    ...(i.scopes === undefined ? {} : { scopes: i.scopes }),
    ...(i.tenant === undefined ? {} : { tenant: i.tenant }),
    ...(i.method === undefined ? {} : { method: i.method }),
    ...(i.keyId === undefined ? {} : { keyId: i.keyId }),
    ...(i.tier === undefined ? {} : { tier: i.tier }),
    ...(i.claims === undefined ? {} : { claims: i.claims }),
  };
}

function expectationOf(c: RawCase): Expectation {
  const e = c.expect;
  return {
    decision: e.decision,
    ...(e.status === undefined ? {} : { status: e.status }),
    ...(e.code === undefined ? {} : { code: e.code }),
    ...(e.route === undefined ? {} : { route: e.route }),
    ...(e.rule === undefined ? {} : { rule: e.rule }),
  };
}
