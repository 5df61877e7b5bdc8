/**
 * JSON Schema → GBNF: the grammar of (compact) JSON texts that a schema accepts.
 *
 * Supported: `type` (one or a list), `properties` / `required` / `additionalProperties`, `enum`,
 * `const`, `items` / `prefixItems` with `minItems` / `maxItems`, `anyOf`, `oneOf` (as anyOf: its
 * branches should not overlap), `allOf` of one schema, `$ref` to `#`, `#/$defs/…` or
 * `#/definitions/…` (recursion allowed), strings with `minLength` / `maxLength`, `pattern` (a
 * regular expression subset, see regex.ts) or `format` (`date`, `time`, `date-time`, `uuid`,
 * `email`), integers with `minimum` / `maximum` / `exclusiveMinimum` / `exclusiveMaximum`, and
 * numbers with those bounds. Annotations (`title`, `description`, `default`, …) are ignored; any
 * other keyword is refused with `ERR_UNSUPPORTED` rather than silently not enforced.
 *
 * The grammar is sound, not complete: every text it allows validates, but some valid texts are
 * not produced. Objects list their properties in schema order, optional ones may be left out, and
 * extra properties appear only when `additionalProperties` is `true` or a schema (never with a
 * declared name); whitespace is one optional space after `:` and `,`; bounded numbers have no
 * exponent, and their fractions stay inside the bounds.
 */
import { MoerunError } from '../errors.js';
import { gbnfLiteral, regexToGbnf, stringCharRule } from './regex.js';

/** A JSON Schema (draft 2020-12 / draft 7 style): an object, or `true` (anything). */
export type JsonSchema = boolean | { readonly [keyword: string]: unknown };

/** Keywords that only annotate. */
const ANNOTATIONS = new Set([
  '$schema', '$id', '$comment', '$anchor', 'title', 'description', 'default', 'examples', 'deprecated', 'readOnly',
  'writeOnly', '$defs', 'definitions', 'contentMediaType', 'contentEncoding', 'discriminator', 'nullable',
]);
/** Keywords the compiler enforces. */
const ENFORCED = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'enum', 'const', 'items', 'prefixItems', 'minItems',
  'maxItems', 'anyOf', 'oneOf', 'allOf', '$ref', 'minLength', 'maxLength', 'pattern', 'format', 'minimum', 'maximum',
  'exclusiveMinimum', 'exclusiveMaximum',
]);
const TYPES = ['object', 'array', 'string', 'integer', 'number', 'boolean', 'null'] as const;
type JsonType = (typeof TYPES)[number];

/** Digits an unbounded integer may have (more would lose precision as a JS number anyway). */
const MAX_INT_DIGITS = 16;

function unsupported(path: string, message: string): MoerunError {
  return new MoerunError('ERR_UNSUPPORTED', `jsonSchema${path}: ${message}`);
}
function malformed(path: string, message: string): MoerunError {
  return new MoerunError('ERR_INVALID_ARGUMENT', `jsonSchema${path}: ${message}`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Fixed rules, added to the grammar when first used. */
const PRIMITIVES: Record<string, string> = {
  sp: '" "?',
  char: stringCharRule,
  string: '"\\"" char* "\\""',
  integer: `"-"? ("0" | [1-9] [0-9]{0,${MAX_INT_DIGITS - 1}})`,
  number: `"-"? ("0" | [1-9] [0-9]{0,${MAX_INT_DIGITS - 1}}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?`,
  boolean: '"true" | "false"',
  null: '"null"',
  value: 'object | array | string | number | boolean | null',
  object: '"{" (string ":" sp value ("," sp string ":" sp value)*)? "}"',
  array: '"[" (value ("," sp value)*)? "]"',
  'hex': '[0-9a-fA-F]',
  'date': '[0-9]{4} "-" (("01" | "03" | "05" | "07" | "08" | "10" | "12") "-" ("0" [1-9] | [12] [0-9] | "3" [01]) | ("04" | "06" | "09" | "11") "-" ("0" [1-9] | [12] [0-9] | "30") | "02-" ("0" [1-9] | "1" [0-9] | "2" [0-8]))',
  'time': '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])',
  'date-time': 'date "T" time',
  'uuid': 'hex{8} "-" hex{4} "-" hex{4} "-" hex{4} "-" hex{12}',
  'email': '[a-z0-9_]{1,20} ("." [a-z0-9_]{1,20}){0,2} "@" ([a-z0-9] [a-z0-9-]{0,20} "."){1,3} [a-z]{2,6}',
};
/** Which primitives a primitive uses. */
const PRIMITIVE_DEPS: Record<string, string[]> = {
  string: ['char'],
  value: ['object', 'array', 'string', 'number', 'boolean', 'null'],
  object: ['string', 'sp', 'value'],
  array: ['value', 'sp'],
  'date-time': ['date', 'time'],
  uuid: ['hex'],
};
const FORMATS = ['date', 'time', 'date-time', 'uuid', 'email'];

class SchemaCompiler {
  /** Rule name → body, in the order they were made. */
  private readonly rules = new Map<string, string>();
  /** $ref → the rule its schema compiles to. */
  private readonly refs = new Map<string, string>();

  constructor(private readonly rootSchema: JsonSchema) {}

  compile(): string {
    const body = this.schema(this.rootSchema, '', 'root');
    const lines = [`root ::= ${body}`];
    for (const [name, rule] of this.rules) lines.push(`${name} ::= ${rule}`);
    return lines.join('\n') + '\n';
  }

  private primitive(name: string): string {
    if (!this.rules.has(name)) {
      this.rules.set(name, PRIMITIVES[name]!);
      for (const d of PRIMITIVE_DEPS[name] ?? []) this.primitive(d);
    }
    return name;
  }

  /** A fresh rule name from a hint (GBNF names are [a-zA-Z0-9-]). */
  private fresh(hint: string): string {
    const base = (hint.replace(/[^a-zA-Z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'r').slice(0, 40);
    let name = base;
    for (let i = 2; this.rules.has(name) || name in PRIMITIVES || name === 'root'; i++) name = `${base}-${i}`;
    this.rules.set(name, '');  // reserve
    return name;
  }

  private define(hint: string, body: string): string {
    const name = this.fresh(hint);
    this.rules.set(name, body);
    return name;
  }

  /** A GBNF expression (parenthesized when it has alternatives) for `schema`. */
  private schema(schema: unknown, path: string, hint: string): string {
    if (schema === true) return this.primitive('value');
    if (schema === false) throw unsupported(path, 'the schema `false` accepts nothing');
    if (!isObject(schema)) throw malformed(path, `expected a schema object but received ${JSON.stringify(schema)}`);
    for (const k of Object.keys(schema)) {
      if (!ENFORCED.has(k) && !ANNOTATIONS.has(k) && !(k.startsWith('x-'))) throw unsupported(path, `the keyword '${k}' is not supported`);
    }
    if (schema.$ref !== undefined) {
      const others = Object.keys(schema).filter((k) => k !== '$ref' && ENFORCED.has(k));
      if (others.length > 0) throw unsupported(path, `'$ref' next to ${others.map((k) => `'${k}'`).join(', ')} is not supported`);
      return this.ref(schema.$ref, path);
    }
    if (schema.const !== undefined) return gbnfLiteral(JSON.stringify(schema.const));
    if (schema.enum !== undefined) {
      if (!Array.isArray(schema.enum) || schema.enum.length === 0) throw malformed(path, "'enum' must be a non-empty array");
      return `(${schema.enum.map((v) => gbnfLiteral(JSON.stringify(v))).join(' | ')})`;
    }
    for (const k of ['anyOf', 'oneOf'] as const) {
      if (schema[k] !== undefined) {
        const branches = schema[k];
        if (!Array.isArray(branches) || branches.length === 0) throw malformed(path, `'${k}' must be a non-empty array`);
        const rest = { ...schema };
        delete rest[k];
        const restHasType = Object.keys(rest).some((r) => ENFORCED.has(r));
        if (restHasType) throw unsupported(path, `'${k}' next to other constraints is not supported`);
        return `(${branches.map((b, i) => this.schema(b, `${path}.${k}[${i}]`, `${hint}-${i}`)).join(' | ')})`;
      }
    }
    if (schema.allOf !== undefined) {
      if (!Array.isArray(schema.allOf) || schema.allOf.length !== 1) throw unsupported(path, "'allOf' is supported with exactly one schema");
      return this.schema(schema.allOf[0], `${path}.allOf[0]`, hint);
    }
    let types: JsonType[];
    if (schema.type === undefined) {
      types = this.inferTypes(schema);
    } else {
      const list = Array.isArray(schema.type) ? schema.type : [schema.type];
      for (const t of list) if (!TYPES.includes(t as JsonType)) throw malformed(path, `unknown type ${JSON.stringify(t)}`);
      if (list.length === 0) throw malformed(path, "'type' is an empty list");
      types = list as JsonType[];
    }
    const alts = types.map((t) => this.typed(t, schema, path, types.length > 1 ? `${hint}-${t}` : hint));
    return alts.length === 1 ? alts[0]! : `(${alts.join(' | ')})`;
  }

  /** Types implied by the keywords present (no `type`): all of them if none says. */
  private inferTypes(schema: Record<string, unknown>): JsonType[] {
    const has = (...ks: string[]): boolean => ks.some((k) => schema[k] !== undefined);
    const out: JsonType[] = [];
    if (has('properties', 'required', 'additionalProperties')) out.push('object');
    if (has('items', 'prefixItems', 'minItems', 'maxItems')) out.push('array');
    if (has('minLength', 'maxLength', 'pattern', 'format')) out.push('string');
    if (has('minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum')) out.push('number');
    return out.length > 0 ? out : [...TYPES];
  }

  private typed(type: JsonType, s: Record<string, unknown>, path: string, hint: string): string {
    switch (type) {
      case 'boolean': return this.primitive('boolean');
      case 'null': return this.primitive('null');
      case 'string': return this.string(s, path, hint);
      case 'integer': return this.integer(s, path);
      case 'number': return this.number(s, path);
      case 'array': return this.array(s, path, hint);
      case 'object': return this.object(s, path, hint);
    }
  }

  private ref(ref: unknown, path: string): string {
    if (typeof ref !== 'string') throw malformed(path, "'$ref' must be a string");
    const known = this.refs.get(ref);
    if (known) return known;
    if (ref !== '#' && !ref.startsWith('#/')) throw unsupported(path, `only local references ('#/...') are supported, not '${ref}'`);
    let target: unknown = this.rootSchema;
    for (const raw of ref === '#' ? [] : ref.slice(2).split('/')) {
      const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      if (!isObject(target) || !(key in target)) throw malformed(path, `'$ref' ${ref} points at nothing`);
      target = target[key];
    }
    const name = this.fresh(`ref-${ref.split('/').pop() || 'root'}`);
    this.refs.set(ref, name);
    this.rules.set(name, this.schema(target, ref.slice(1), name));
    return name;
  }

  private string(s: Record<string, unknown>, path: string, hint: string): string {
    const min = this.count(s, 'minLength', path) ?? 0;
    const max = this.count(s, 'maxLength', path);
    if (max !== undefined && max < min) throw unsupported(path, 'maxLength < minLength: no string fits');
    if (s.format !== undefined) {
      if (typeof s.format !== 'string' || !FORMATS.includes(s.format)) throw unsupported(path, `format ${JSON.stringify(s.format)} is not supported (supported: ${FORMATS.join(', ')})`);
      if (s.pattern !== undefined || s.minLength !== undefined || s.maxLength !== undefined) throw unsupported(path, "'format' with 'pattern' or lengths is not supported");
      return `"\\"" ${this.primitive(s.format)} "\\""`;
    }
    if (s.pattern !== undefined) {
      if (typeof s.pattern !== 'string') throw malformed(path, "'pattern' must be a string");
      if (s.minLength !== undefined || s.maxLength !== undefined) throw unsupported(path, "'pattern' with 'minLength' / 'maxLength' is not supported");
      this.primitive('char');
      return this.define(`${hint}-pattern`, `"\\"" ${regexToGbnf(s.pattern, path)} "\\""`);
    }
    if (min === 0 && max === undefined) return this.primitive('string');
    this.primitive('char');
    return `"\\"" char{${min},${max ?? ''}} "\\""`;
  }

  private count(s: Record<string, unknown>, k: string, path: string): number | undefined {
    const v = s[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw malformed(path, `'${k}' must be a non-negative integer`);
    if (v > 2000) throw unsupported(path, `'${k}' ${v} is over 2000, the grammar's repetition limit`);
    return v;
  }

  private bounds(s: Record<string, unknown>, path: string): { lo: number; loStrict: boolean; hi: number; hiStrict: boolean } {
    const num = (k: string): number | undefined => {
      const v = s[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || !Number.isFinite(v)) throw malformed(path, `'${k}' must be a finite number`);
      return v;
    };
    let lo = -Infinity, hi = Infinity, loStrict = false, hiStrict = false;
    const min = num('minimum'), xmin = num('exclusiveMinimum'), max = num('maximum'), xmax = num('exclusiveMaximum');
    if (min !== undefined) lo = min;
    if (xmin !== undefined && xmin >= lo) [lo, loStrict] = [xmin, true];
    if (max !== undefined) hi = max;
    if (xmax !== undefined && xmax <= hi) [hi, hiStrict] = [xmax, true];
    return { lo, loStrict, hi, hiStrict };
  }

  private integer(s: Record<string, unknown>, path: string): string {
    const b = this.bounds(s, path);
    if (b.lo === -Infinity && b.hi === Infinity) return this.primitive('integer');
    const lo = b.loStrict ? Math.floor(b.lo) + 1 : Math.ceil(b.lo);
    const hi = b.hiStrict ? Math.ceil(b.hi) - 1 : Math.floor(b.hi);
    if (lo > hi) throw unsupported(path, 'no integer lies within the bounds');
    return intRange(lo, hi);
  }

  private number(s: Record<string, unknown>, path: string): string {
    const b = this.bounds(s, path);
    if (b.lo === -Infinity && b.hi === Infinity) return this.primitive('number');
    // Integers in range, then k.f (f without trailing zeros, so k < k.f < k + 1) for k >= 0 with
    // lo <= k and k + 1 <= hi, and -m.f (-(m+1) < -m.f < -m) with lo <= -(m+1) and -m <= hi.
    const ilo = b.loStrict ? Math.floor(b.lo) + 1 : Math.ceil(b.lo);
    const ihi = b.hiStrict ? Math.ceil(b.hi) - 1 : Math.floor(b.hi);
    const alts: string[] = [];
    if (ilo <= ihi) alts.push(intRange(ilo, ihi));
    const frac = '"." [0-9]{0,6} [1-9]';
    const kLo = Math.max(0, Math.ceil(b.lo)), kHi = Math.floor(b.hi) - 1;
    if (kLo <= kHi) alts.push(`${magnitudeRange(kLo, kHi)} ${frac}`);
    const mLo = Math.max(0, Math.ceil(-b.hi)), mHi = Math.floor(-b.lo) - 1;
    if (mLo <= mHi) alts.push(`"-" ${magnitudeRange(mLo, mHi)} ${frac}`);
    if (alts.length === 0) throw unsupported(path, 'no number lies within the bounds');
    return `(${alts.join(' | ')})`;
  }

  private array(s: Record<string, unknown>, path: string, hint: string): string {
    const min = this.count(s, 'minItems', path) ?? 0;
    const max = this.count(s, 'maxItems', path);
    if (max !== undefined && max < min) throw unsupported(path, 'maxItems < minItems: no array fits');
    const prefix = s.prefixItems === undefined ? [] : s.prefixItems;
    if (!Array.isArray(prefix)) throw malformed(path, "'prefixItems' must be an array");
    const sep = `"," ${this.primitive('sp')}`;
    // Each element is an expression; element i is required when i < min.
    const elems: string[] = prefix.map((p, i) => this.schema(p, `${path}.prefixItems[${i}]`, `${hint}-${i}`));
    const total = max === undefined ? Infinity : max;
    if (elems.length > total) elems.length = total;
    const rest = s.items === false ? undefined : this.schema(s.items ?? true, `${path}.items`, `${hint}-item`);
    if (rest === undefined && min > elems.length) throw unsupported(path, 'minItems exceeds the prefixItems allowed');
    // Build from the end: tail(i) is "elements i.. of the array, each preceded by a comma".
    const restMin = Math.max(0, min - elems.length);
    const restMax = total - elems.length;
    let body: string;
    if (elems.length === 0) {
      // The first element has no comma before it.
      if (rest === undefined || restMax === 0) return '"[" "]"';
      const item = this.define(`${hint}-first`, rest);
      const more = restMax === Infinity ? `(${sep} ${item})*` : restMax > 1 ? `(${sep} ${item}){${Math.max(0, restMin - 1)},${restMax - 1}}` : '';
      body = restMin > 0 ? `${item} ${more}` : `(${item} ${more})?`;
      return `"[" ${body} "]"`;
    }
    let inner = '';
    if (rest !== undefined && restMax > 0) {
      const item = this.define(`${hint}-item`, rest);
      inner = `(${sep} ${item}){${restMin},${restMax === Infinity ? '' : restMax}}`;
    }
    for (let i = elems.length - 1; i >= 1; i--) {
      const part = `${sep} ${elems[i]} ${inner}`;
      inner = i < min ? part : `(${part})?`;
    }
    body = `${elems[0]} ${inner}`;
    return min > 0 ? `"[" ${body} "]"` : `"[" (${body})? "]"`;
  }

  private object(s: Record<string, unknown>, path: string, hint: string): string {
    const props = s.properties === undefined ? {} : s.properties;
    if (!isObject(props)) throw malformed(path, "'properties' must be an object");
    const required = s.required === undefined ? [] : s.required;
    if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) throw malformed(path, "'required' must be an array of strings");
    const extra = s.additionalProperties;
    const names = [...Object.keys(props)];
    for (const r of required as string[]) if (!names.includes(r)) names.push(r);
    const sp = this.primitive('sp');
    const entries = names.map((n) => {
      const schema = n in props ? props[n] : isObject(extra) ? extra : true;
      const value = this.schema(schema, `${path}.properties.${n}`, `${hint}-${n}`);
      return { required: (required as string[]).includes(n), rule: this.define(`${hint}-${n}-kv`, `${gbnfLiteral(JSON.stringify(n))} ":" ${sp} ${value}`) };
    });
    // Extra properties: a key that is none of the declared names, then the extra schema's value.
    let extraKv: string | undefined;
    if (extra === true || isObject(extra)) {
      const key = this.keyNotIn(names, hint);
      const value = this.schema(extra, `${path}.additionalProperties`, `${hint}-extra`);
      extraKv = this.define(`${hint}-extra-kv`, `${key} ":" ${sp} ${value}`);
    } else if (extra !== undefined && extra !== false) {
      throw malformed(path, "'additionalProperties' must be a boolean or a schema");
    }
    // first(k): properties k.. with none written yet; rest(k): some already written (comma first).
    let first = extraKv ? `(${extraKv} ("," ${sp} ${extraKv})*)?` : '';
    let rest = extraKv ? `("," ${sp} ${extraKv})*` : '';
    for (let k = entries.length - 1; k >= 0; k--) {
      const e = entries[k]!;
      const firstBody = e.required ? `${e.rule} ${rest}` : `${e.rule} ${rest} | ${first || '""'}`;
      first = this.define(`${hint}-first-${k}`, firstBody);
      if (k > 0) rest = this.define(`${hint}-rest-${k}`, e.required ? `"," ${sp} ${e.rule} ${rest}` : `"," ${sp} ${e.rule} ${rest} | ${rest || '""'}`);
    }
    return `"{" ${first} "}"`;
  }

  /** A JSON string that is none of `names`, written without escapes. */
  private keyNotIn(names: readonly string[], hint: string): string {
    const safe = '[^"\\\\\\x00-\\x1F\\x7F]';
    // A trie of the names: at each node, end here (if not a name), or a character that leaves
    // the trie (then anything), or a trie character (then that child's rule).
    type Node = { children: Map<number, Node>; end: boolean };
    const root: Node = { children: new Map(), end: false };
    for (const n of names) {
      let node = root;
      for (const ch of n) {
        const cp = ch.codePointAt(0)!;
        let next = node.children.get(cp);
        if (!next) node.children.set(cp, (next = { children: new Map(), end: false }));
        node = next;
      }
      node.end = true;
    }
    const anyTail = `${safe}*`;
    const emit = (node: Node, depth: number): string => {
      const alts: string[] = [];
      if (!node.end && depth > 0) alts.push('""');
      const kids = [...node.children.keys()];
      const outside = kids.length === 0 ? safe : `[^"\\\\\\x00-\\x1F\\x7F${kids.map(classChar).join('')}]`;
      alts.push(`${outside} ${anyTail}`);
      for (const [cp, child] of node.children) {
        if (cp < 0x20 || cp === 0x22 || cp === 0x5c || cp === 0x7f) continue;  // needs an escape: never written
        alts.push(`${gbnfLiteral(String.fromCodePoint(cp))} ${emit(child, depth + 1)}`);
      }
      return this.define(`${hint}-key`, alts.join(' | '));
    };
    return `"\\"" ${emit(root, 0)} "\\""`;
  }
}

/** A code point written inside a GBNF character class. */
function classChar(cp: number): string {
  if (cp === 0x5d || cp === 0x5b || cp === 0x5c || cp === 0x2d || cp === 0x5e || cp === 0x22) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, '0')}`;
  return String.fromCodePoint(cp);
}

/** GBNF for the decimal integers lo..hi (±Infinity for unbounded), without leading zeros. */
export function intRange(lo: number, hi: number): string {
  const alts: string[] = [];
  if (lo < 0) {
    const mHi = -lo, mLo = Math.max(1, -hi);
    if (mLo <= mHi) alts.push(`"-" ${magnitudeRange(mLo, mHi)}`);
  }
  if (hi >= 0) alts.push(magnitudeRange(Math.max(0, lo), hi));
  return alts.length === 1 ? alts[0]! : `(${alts.join(' | ')})`;
}

/** GBNF for lo..hi (0 <= lo <= hi, hi may be Infinity) in decimal without leading zeros. */
function magnitudeRange(lo: number, hi: number): string {
  const alts: string[] = [];
  const loLen = String(lo).length;
  if (hi === Infinity) {
    if (loLen >= MAX_INT_DIGITS) throw new MoerunError('ERR_UNSUPPORTED', `jsonSchema: integer bound ${lo} has too many digits`);
    alts.push(sameLength(String(lo), '9'.repeat(loLen)));
    alts.push(`[1-9] [0-9]{${loLen},${MAX_INT_DIGITS - 1}}`);
  } else {
    if (!Number.isSafeInteger(hi)) throw new MoerunError('ERR_UNSUPPORTED', `jsonSchema: integer bound ${hi} is not a safe integer`);
    const hiLen = String(hi).length;
    for (let len = loLen; len <= hiLen; len++) {
      const a = len === loLen ? String(lo) : '1' + '0'.repeat(len - 1);
      const b = len === hiLen ? String(hi) : '9'.repeat(len);
      alts.push(sameLength(a, b));
    }
  }
  return alts.length === 1 ? alts[0]! : `(${alts.join(' | ')})`;
}

/** GBNF for the digit strings a..b of equal length. */
function sameLength(a: string, b: string): string {
  if (a.length === 0) return '""';
  if (a === b) return `"${a}"`;
  if (/^0*$/.test(a.slice(1)) && /^9*$/.test(b.slice(1))) {
    const head = a[0] === b[0] ? `"${a[0]}"` : `[${a[0]}-${b[0]}]`;
    return a.length === 1 ? head : `${head} [0-9]{${a.length - 1}}`;
  }
  if (a[0] === b[0]) return `"${a[0]}" ${sameLength(a.slice(1), b.slice(1))}`;
  const n = a.length - 1;
  const alts = [`"${a[0]}" ${sameLength(a.slice(1), '9'.repeat(n))}`];
  const d0 = Number(a[0]) + 1, d1 = Number(b[0]) - 1;
  if (d0 <= d1) alts.push(`${d0 === d1 ? `"${d0}"` : `[${d0}-${d1}]`} [0-9]{${n}}`);
  alts.push(`"${b[0]}" ${sameLength('0'.repeat(n), b.slice(1))}`);
  return `(${alts.join(' | ')})`;
}

/**
 * Compiles a JSON Schema to GBNF text (start rule `root`); see the file comment for what is
 * supported and how.
 * @throws MoerunError `ERR_INVALID_ARGUMENT` for a malformed schema, `ERR_UNSUPPORTED` for a
 *   keyword or combination it cannot enforce.
 */
export function compileJsonSchema(schema: JsonSchema): string {
  if (typeof schema !== 'boolean' && !isObject(schema)) throw malformed('', `expected a schema object but received ${JSON.stringify(schema)}`);
  return new SchemaCompiler(schema).compile();
}
