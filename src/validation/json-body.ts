import { isUtf8 } from 'node:buffer';
import type { JsonLimits } from './contract.js';

/** A JSON body read within its limits, or where and why it was refused. */
export type JsonBody =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly pointer: string; readonly reason: string };

/** Longest JSON pointer sent to a client; a longer one is cut back to the ancestor that fits. */
const MAX_POINTER_CHARS = 1024;

/**
 * Reads a request body as JSON (RFC 8259), strictly and within `limits`, which are enforced before
 * any value is built: nesting depth, members per object, array elements, string length.
 *
 * Refused besides the grammar (RFC 8259 leaves them to implementations, and parsers disagree, so an
 * upstream could read another document than the one validated):
 * - bytes that are not UTF-8 (§8.1), and a byte order mark (§8.1: must not be added);
 * - duplicate member names in one object, compared after unescaping (`"a"` and `"\u0061"`, §4);
 * - the member name `__proto__`, in any spelling (prototype pollution in whoever merges the body);
 * - `\u` escapes of a lone surrogate (§8.2: the string cannot be represented in UTF-8);
 * - a number that is not exactly the double it reads as (RFC 7493 §2.2, see exactDouble).
 *
 * Three steps for a body that passes, each linear in its length:
 * 1. `withinLimits` reads the text once for the limits, lone surrogates and inexact numbers, and
 *    counts the members of every object; it leaves the grammar to the next step.
 * 2. `JSON.parse` checks the grammar and builds the value, which then cannot differ from what was
 *    checked.
 * 3. The value has one own property per member unless two members of an object share a name (the
 *    last one wins), and a `__proto__` member is an own property there whatever its spelling: one
 *    count over the value (`ownMembers`) finds both.
 * A body refused at any step is read again by `Scan`, the strict reader that keeps the path and the
 * member names, to say where and why.
 *
 * The reason names the rule and the character offset, never a value or a member name from the
 * body; the pointer (RFC 6901) is the client's own location and may contain its member names.
 */
export function readJsonBody(bytes: Uint8Array, limits: JsonLimits): JsonBody {
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return refused('', 'a UTF-8 byte order mark starts the body (RFC 8259 §8.1)');
  if (!isUtf8(bytes)) return refused('', 'the body is not valid UTF-8');
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
  const members = withinLimits(text, limits);
  if (members >= 0) {
    let value: unknown;
    let parsed = true;
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      parsed = false;
    }
    if (parsed && (typeof value === 'object' && value !== null ? ownMembers(value) : 0) === members) return { ok: true, value };
  }
  return located(text, limits);
}

/** Why and where a refused body is refused, by the strict reader. */
function located(text: string, limits: JsonLimits): JsonBody {
  const scan = new Scan(text, limits);
  try {
    scan.whitespace();
    if (scan.i >= text.length) scan.fail('no JSON value in the body');
    scan.value();
    scan.whitespace();
    if (scan.i < text.length) scan.fail('data after the JSON value', 0);
  } catch (err) {
    if (err instanceof Refusal) return refused(err.pointer, err.reason);
    throw err;
  }
  // Unreachable: the steps and the strict reader refuse the same bodies (the tests hold them to it). Refused, not trusted.
  return refused('', 'the body was refused by the first reading and accepted by the second');
}

/**
 * Own properties of every object in a parsed value; NaN when one of them is `__proto__`. An
 * object's values are taken in one call (reading them by name would be a lookup per member), and
 * only objects and arrays are visited.
 */
function ownMembers(value: object): number {
  let n = 0;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const element: unknown = value[i];
      if (typeof element === 'object' && element !== null) n += ownMembers(element);
    }
    return n;
  }
  if (Object.hasOwn(value, '__proto__')) return Number.NaN;
  const values: unknown[] = Object.values(value);
  n += values.length;
  for (let i = 0; i < values.length; i++) {
    const member = values[i];
    if (typeof member === 'object' && member !== null) n += ownMembers(member);
  }
  return n;
}

/** Deepest nesting any config may set (the schema's maximum for maxDepth); withinLimits' stacks hold this many. */
const MAX_DEPTH = 1000;
/** Per open object or array (by depth): members (an object) or commas (an array) seen so far. */
const counts = new Int32Array(MAX_DEPTH + 2);
/** Per open object or array (by depth): 1 for an object. */
const objects = new Uint8Array(MAX_DEPTH + 2);

/**
 * The first step of readJsonBody: the limits, lone surrogate escapes and inexact numbers. Returns
 * how many members all objects hold, or -1 when anything is refused (or the text is not JSON
 * enough to tell). Outside strings it reads only brackets, colons, commas and numbers; the grammar
 * is JSON.parse's to check, so on text JSON.parse accepts, every count here is exact: a colon per
 * member, a comma between two elements. A string is skipped to its closing quote by the engine's
 * search; only one with a backslash is read character by character.
 */
function withinLimits(s: string, limits: JsonLimits): number {
  const n = s.length;
  const maxDepth = Math.min(limits.maxDepth, MAX_DEPTH);
  let depth = 0;
  let members = 0;
  // The first backslash at or after the current string, found again only once passed.
  let backslash = s.indexOf('\\');
  if (backslash < 0) backslash = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) {
      let end = s.indexOf('"', i + 1);
      if (end < 0) return -1;
      if (backslash < end) {
        end = escapedStringEnd(s, i, limits.maxStringLength);
        if (end < 0) return -1;
        backslash = s.indexOf('\\', end);
        if (backslash < 0) backslash = n;
      } else if (end - i - 1 > limits.maxStringLength) {
        return -1;
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) return -1;
      counts[depth] = 0;
      objects[depth] = c === 0x7b ? 1 : 0;
    } else if (c === 0x7d || c === 0x5d) {
      if (--depth < 0) return -1;
    } else if (c === 0x3a) {
      if (objects[depth] !== 1) return -1;
      members++;
      if (++(counts[depth] as number) > limits.maxKeys) return -1;
    } else if (c === 0x2c) {
      // n commas: n + 1 elements.
      if (objects[depth] === 0 && depth > 0 && ++(counts[depth] as number) >= limits.maxArrayLength) return -1;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      i = numberEnd(s, i, limits.maxStringLength) - 1;
      if (i < 0) return -1;
    }
  }
  return members;
}

/** The index of the quote ending the string with escapes that starts at `start`, or -1: unterminated, longer than `max` UTF-16 units, or a lone surrogate escape. */
function escapedStringEnd(s: string, start: number, max: number): number {
  const n = s.length;
  let units = 0;
  let j = start + 1;
  while (j < n) {
    const c = s.charCodeAt(j);
    if (c === 0x22) return j;
    if (c === 0x5c) {
      if (s.charCodeAt(j + 1) === 0x75) {
        const unit = hex4(s, j + 2);
        if (unit >= 0xdc00 && unit <= 0xdfff) return -1;
        if (unit >= 0xd800 && unit <= 0xdbff) {
          const low = s.charCodeAt(j + 6) === 0x5c && s.charCodeAt(j + 7) === 0x75 ? hex4(s, j + 8) : -1;
          if (low < 0xdc00 || low > 0xdfff) return -1;
          j += 6;
          units++;
        }
        j += 6;
      } else {
        j += 2;
      }
    } else {
      j++;
    }
    if (++units > max) return -1;
  }
  return -1;
}

/** The index after the number that starts at `start`, or -1: longer than `max` characters, or not exactly a double. */
function numberEnd(s: string, start: number, max: number): number {
  const n = s.length;
  let j = start;
  let exponent = false;
  for (; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x65 || c === 0x45) exponent = true;
    else if (!((c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x2b)) break;
  }
  const length = j - start;
  if (length > max) return -1;
  if ((length > SHORT_EXACT || exponent) && !exactDouble(s.slice(start, j))) return -1;
  return j;
}

function refused(pointer: string, reason: string): JsonBody {
  return { ok: false, pointer, reason };
}

/** Ends a scan (thrown from any depth, caught once in located). */
class Refusal extends Error {
  constructor(readonly pointer: string, readonly reason: string) { super(reason); }
}

/** RFC 6901: `~` is written `~0` and `/` is written `~1`. */
export function pointerSegment(segment: string | number): string {
  if (typeof segment === 'number') return String(segment);
  return segment.includes('~') || segment.includes('/') ? segment.replace(/~/g, '~0').replace(/\//g, '~1') : segment;
}

/** A JSON pointer to `path`; a pointer too long to send names the nearest ancestor that fits. */
export function jsonPointer(path: readonly (string | number)[]): string {
  let out = '';
  for (const segment of path) {
    const next = `${out}/${pointerSegment(segment)}`;
    if (next.length > MAX_POINTER_CHARS) break;
    out = next;
  }
  return out;
}

/** Linear search below this many members, a Set above (most objects are small). */
const LINEAR_KEYS = 16;

/** The strict reader of a refused body (see readJsonBody): the text, the position, and the path to the value being read. */
class Scan {
  i = 0;
  private depth = 0;
  private readonly path: (string | number)[] = [];
  /** Member names seen, per nesting depth (reused by sibling objects at the same depth). */
  private readonly names: string[][] = [];

  constructor(private readonly s: string, private readonly limits: JsonLimits) {}

  /** Ends the scan: the pointer is the current path, less `drop` trailing segments. */
  fail(reason: string, drop = 0): never {
    const path = drop === 0 ? this.path : this.path.slice(0, this.path.length - drop);
    throw new Refusal(jsonPointer(path), `${reason} (at character ${this.i})`);
  }

  whitespace(): void {
    const s = this.s;
    let i = this.i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.i = i;
  }

  value(): void {
    const c = this.s.charCodeAt(this.i);
    if (c === 0x7b) this.object();
    else if (c === 0x5b) this.array();
    else if (c === 0x22) this.string(false);
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) this.number();
    else if (c === 0x74) this.literal('true');
    else if (c === 0x66) this.literal('false');
    else if (c === 0x6e) this.literal('null');
    else this.fail(Number.isNaN(c) ? 'the body ends where a value was expected' : 'unexpected character where a value was expected');
  }

  private enter(): void {
    if (++this.depth > this.limits.maxDepth) this.fail(`nesting deeper than maxDepth (${this.limits.maxDepth})`);
  }

  private object(): void {
    this.enter();
    const s = this.s;
    this.i++;
    this.whitespace();
    if (s.charCodeAt(this.i) === 0x7d) { this.i++; this.depth--; return; }
    const names = (this.names[this.depth] ??= []);
    names.length = 0;
    let set: Set<string> | null = null;
    const path = this.path;
    path.push('');
    const at = path.length - 1;
    let count = 0;
    for (;;) {
      if (s.charCodeAt(this.i) !== 0x22) this.fail('expected a member name', 1);
      if (++count > this.limits.maxKeys) this.fail(`more than maxKeys (${this.limits.maxKeys}) members in one object`, 1);
      const name = this.string(true);
      if (name === '__proto__') { path[at] = name; this.fail('the member name __proto__ is refused'); }
      let duplicate: boolean;
      if (set !== null) duplicate = set.has(name);
      else if (count <= LINEAR_KEYS) duplicate = names.includes(name);
      else { set = new Set(names); duplicate = set.has(name); }
      if (duplicate) { path[at] = name; this.fail('duplicate member name in one object'); }
      if (set !== null) set.add(name);
      else names.push(name);
      path[at] = name;
      this.whitespace();
      if (s.charCodeAt(this.i) !== 0x3a) this.fail('expected : after a member name');
      this.i++;
      this.whitespace();
      this.value();
      this.whitespace();
      const c = s.charCodeAt(this.i);
      if (c === 0x2c) { this.i++; this.whitespace(); continue; }
      if (c === 0x7d) { this.i++; break; }
      this.fail('expected , or } after a member', 1);
    }
    path.pop();
    this.depth--;
  }

  private array(): void {
    this.enter();
    const s = this.s;
    this.i++;
    this.whitespace();
    if (s.charCodeAt(this.i) === 0x5d) { this.i++; this.depth--; return; }
    const path = this.path;
    path.push(0);
    const at = path.length - 1;
    let n = 0;
    for (;;) {
      path[at] = n;
      if (n >= this.limits.maxArrayLength) this.fail(`more than maxArrayLength (${this.limits.maxArrayLength}) elements in one array`);
      this.value();
      n++;
      this.whitespace();
      const c = s.charCodeAt(this.i);
      if (c === 0x2c) { this.i++; this.whitespace(); continue; }
      if (c === 0x5d) { this.i++; break; }
      this.fail('expected , or ] after an element', 1);
    }
    path.pop();
    this.depth--;
  }

  /** Reads a string at `i` (its opening quote); a member name is returned unescaped, a value is only checked. */
  private string(name: boolean): string {
    const s = this.s;
    const start = this.i;
    const max = this.limits.maxStringLength;
    // A failing member name is located at its object; a failing value at itself.
    const drop = name ? 1 : 0;
    let j = start + 1;
    let units = 0;
    let escaped = false;
    for (;;) {
      const c = s.charCodeAt(j);
      if (c === 0x22) break;
      if (Number.isNaN(c)) { this.i = j; this.fail('unterminated string', drop); }
      if (c < 0x20) { this.i = j; this.fail('control character in a string', drop); }
      if (c === 0x5c) {
        escaped = true;
        const e = s.charCodeAt(j + 1);
        if (e === 0x75) {
          const unit = hex4(s, j + 2);
          if (unit < 0) { this.i = j; this.fail('invalid \\u escape', drop); }
          j += 6;
          if (unit >= 0xdc00 && unit <= 0xdfff) { this.i = j - 6; this.fail('\\u escape of a lone low surrogate', drop); }
          if (unit >= 0xd800 && unit <= 0xdbff) {
            const low = s.charCodeAt(j) === 0x5c && s.charCodeAt(j + 1) === 0x75 ? hex4(s, j + 2) : -1;
            if (low < 0xdc00 || low > 0xdfff) { this.i = j - 6; this.fail('\\u escape of a lone high surrogate', drop); }
            j += 6;
            units++;
          }
        } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
          j += 2;
        } else {
          this.i = j;
          this.fail('invalid escape in a string', drop);
        }
      } else {
        j++;
      }
      if (++units > max) { this.i = j; this.fail(`string longer than maxStringLength (${max})`, drop); }
    }
    this.i = j + 1;
    if (!name) return '';
    return escaped ? (JSON.parse(s.slice(start, j + 1)) as string) : s.slice(start + 1, j);
  }

  /** RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`. */
  private number(): void {
    const s = this.s;
    let j = this.i;
    if (s.charCodeAt(j) === 0x2d) j++;
    const first = s.charCodeAt(j);
    if (first === 0x30) j++;
    else if (first >= 0x31 && first <= 0x39) j = digits(s, j + 1);
    else { this.i = j; this.fail('invalid number'); }
    if (s.charCodeAt(j) === 0x2e) {
      const after = digits(s, j + 1);
      if (after === j + 1) { this.i = j; this.fail('invalid number: no digit after the decimal point'); }
      j = after;
    }
    const e = s.charCodeAt(j);
    if (e === 0x65 || e === 0x45) {
      j++;
      const sign = s.charCodeAt(j);
      if (sign === 0x2b || sign === 0x2d) j++;
      const after = digits(s, j);
      if (after === j) { this.i = j; this.fail('invalid number: no digit in the exponent'); }
      j = after;
    }
    if (j - this.i > this.limits.maxStringLength) this.fail(`number longer than maxStringLength (${this.limits.maxStringLength})`);
    if (!exactDouble(s.slice(this.i, j))) this.fail('a number with more precision or magnitude than a double holds (RFC 7493 §2.2)');
    this.i = j;
  }

  private literal(word: 'true' | 'false' | 'null'): void {
    if (!this.s.startsWith(word, this.i)) this.fail('unexpected character where a value was expected');
    this.i += word.length;
  }
}

/**
 * Up to this many characters without an exponent, a number is exact: at most 15 significant digits
 * and 14 decimals, which a double always holds exactly enough to give them back (DBL_DIG).
 */
const SHORT_EXACT = 15;

/**
 * Whether a JSON number (its grammar already checked) is exactly the double JSON.parse builds from
 * it, up to trailing zeros and notation: its significant digits and exponent are those of the
 * shortest text that reads back as the same double. Anything else is rounded by the gateway's
 * parser and read exactly by a decimal one (Python, BigDecimal, json.Number): `100.0000000000000001`
 * passes `maximum: 100` here and is more than 100 upstream, `-1e-400` becomes `-0` and passes
 * `minimum: 0`, `9007199254740993` is read as its neighbour, `1e400` as Infinity (RFC 7493 §2.2).
 */
export function exactDouble(text: string): boolean {
  if (text.length <= SHORT_EXACT && !text.includes('e') && !text.includes('E')) return true;
  const n = Number(text);
  if (!Number.isFinite(n)) return false;
  const written = decimal(text);
  if (n === 0) return written.digits === '';
  const held = decimal(String(n));
  return written.digits === held.digits && written.exponent === held.exponent;
}

/** A number's significant digits (no leading or trailing zeros; '' for zero) and the exponent of its last digit. */
function decimal(text: string): { readonly digits: string; readonly exponent: number } {
  let mantissa = text;
  let exponent = 0;
  const e = text.search(/[eE]/);
  if (e !== -1) {
    mantissa = text.slice(0, e);
    // The exponent's digits are bounded by maxStringLength; beyond ±1e15 they are all one to this comparison.
    exponent = Math.max(-1e15, Math.min(1e15, Number(text.slice(e + 1))));
  }
  if (mantissa.startsWith('-')) mantissa = mantissa.slice(1);
  const point = mantissa.indexOf('.');
  if (point !== -1) {
    exponent -= mantissa.length - point - 1;
    mantissa = mantissa.slice(0, point) + mantissa.slice(point + 1);
  }
  let start = 0;
  while (start < mantissa.length && mantissa.charCodeAt(start) === 0x30) start++;
  let end = mantissa.length;
  while (end > start && mantissa.charCodeAt(end - 1) === 0x30) { end--; exponent++; }
  return { digits: mantissa.slice(start, end), exponent: end === start ? 0 : exponent };
}

function digits(s: string, from: number): number {
  let j = from;
  for (;;) {
    const c = s.charCodeAt(j);
    if (c >= 0x30 && c <= 0x39) j++;
    else return j;
  }
}

/** The UTF-16 unit of four hex digits at `at`, or -1. */
function hex4(s: string, at: number): number {
  let v = 0;
  for (let k = at; k < at + 4; k++) {
    const d = hexDigit(s.charCodeAt(k));
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/** The value of a hex digit's character code, or -1. */
function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** A pointer from elsewhere (a schema validator's instance path), cut back to whole segments if too long to send. */
export function boundedPointer(pointer: string): string {
  if (pointer.length <= MAX_POINTER_CHARS) return pointer;
  const cut = pointer.lastIndexOf('/', MAX_POINTER_CHARS);
  return cut <= 0 ? '' : pointer.slice(0, cut);
}
