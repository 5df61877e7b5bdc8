/**
 * The chat-template engine: @huggingface/jinja's lexer, parser and interpreter, with
 * llama.cpp's semantics where the two differ, and limits on the work one render may do.
 *
 * Why a subclass and not a new engine: llama.cpp's Jinja engine (common/jinja) is itself a port
 * of huggingface.js's, so both share the grammar, whitespace control and nearly all of the
 * runtime. The differences are a bounded list, each handled below in one place (its own
 * `// llama.cpp:` comment): lenient undefined/none (iterating, measuring and filtering them gives
 * empty values, `+` with a string reads them as ''), `strftime_now` at a chosen time, string
 * repetition, `str.format`, integer keys in dict literals, tuples in `for a, b in ...`, its
 * `tojson` and `string` spellings, `min`/`max`, `default` that also replaces none. The test
 * (test/templates.test.ts) renders llama.cpp's whole `models/templates/` collection through both
 * engines and compares bytes.
 *
 * The value classes are not exported by the package; they are reached once through values it makes.
 */
import { Environment, Interpreter, parse, tokenize } from '@huggingface/jinja';

/** A runtime value of @huggingface/jinja (`type` is the class name, e.g. `'StringValue'`). */
interface RV {
  type: string;
  value: unknown;
  __bool__(): { value: boolean };
  toString(): string;
}
type RVClass = new (value?: unknown) => RV;
/** An AST node: `type` names the node class. */
interface Node {
  type: string;
  [key: string]: unknown;
}

/** Limits on one render, so a template cannot hang or exhaust the process (issue 18). */
export interface RenderLimits {
  /** Time budget, ms, on the render's clock (moerun's chat: the JS thread's CPU time). */
  timeMs: number;
  /** Interpreter steps (expressions and statements evaluated). */
  steps: number;
  /** Longest string (output or intermediate) in UTF-16 code units. */
  outputChars: number;
  /** Most items one `range()`, `split()` or `| list` of a string may make (each makes them all at once). */
  listItems: number;
  /**
   * Deepest nesting of expressions and statements (recursive macros): past it the render stops
   * before the JS stack overflows (which @huggingface/jinja's variable lookup would swallow).
   * The deepest template of llama.cpp's collection needs 34.
   */
  depth: number;
}

export const defaultRenderLimits: RenderLimits = { timeMs: 300, steps: 5_000_000, outputChars: 32 * 1024 * 1024, listItems: 1_000_000, depth: 400 };

/** Thrown when a render exceeds one of its {@link RenderLimits}. */
export class TemplateLimitError extends Error {}

/** Thrown by the template's own `raise_exception(message)`. */
export class TemplateRaisedError extends Error {}

/** @huggingface/jinja's value classes, from values it makes (the package does not export them). */
const classes = (() => {
  const env = new Environment();
  const samples: Record<string, unknown> = { s: '', i: 1, f: 1.5, b: true, n: null, a: [], o: {}, fn: () => undefined };
  for (const [k, v] of Object.entries(samples)) env.set(k, v);
  const cls = (v: unknown) => (v as RV).constructor as RVClass;
  const made = (k: string) => cls(env.lookupVariable(k));
  const tuple = parse(tokenize('{{ (1, 2) }}')) as unknown as { body: Node[] };
  const interp = new Interpreter(env);
  /** The class of what evaluating a `{% break %}` / `{% continue %}` throws. */
  const control = (type: string) => {
    try {
      interp.evaluate({ type } as never, env);
    } catch (err) {
      return (err as object).constructor;
    }
    throw new Error(`@huggingface/jinja: evaluating ${type} did not throw`);
  };
  return {
    String: made('s'), Integer: made('i'), Float: made('f'), Boolean: made('b'), Null: made('n'),
    Array: made('a'), Object: made('o'), Function: made('fn'), Undefined: made('missing'),
    Tuple: cls(interp.evaluate(tuple.body[0] as never, env)),
    BreakControl: control('Break'),
    ContinueControl: control('Continue'),
  };
})();

const str = (s: string) => new classes.String(s);
const int = (n: number) => new classes.Integer(n);
const undefinedValue = () => new classes.Undefined();
const is = (v: RV, c: Exclude<keyof typeof classes, 'BreakControl' | 'ContinueControl'>) => v instanceof classes[c];
const isUndefined = (v: RV) => is(v, 'Undefined');
const isNone = (v: RV) => is(v, 'Null');

/** llama.cpp's `as_string` of a float: six decimals, trailing zeros cut, one kept. */
function floatString(x: number): string {
  let out = x.toFixed(6).replace(/0+$/, '');
  if (out.endsWith('.')) out += '0';
  return out;
}

/** llama.cpp's text of a value where it prints one (`{{ x }}`, `~`, `| string`). */
function valueText(v: RV): string {
  switch (v.type) {
    case 'StringValue': return v.value as string;
    case 'IntegerValue': return String(v.value);
    case 'FloatValue': return floatString(v.value as number);
    case 'BooleanValue': return v.value ? 'True' : 'False';
    case 'NullValue': return 'None';
    case 'UndefinedValue': return '';
    case 'ArrayValue': return `[${(v.value as RV[]).map(repr).join(', ')}]`;
    case 'TupleValue': {
      const items = v.value as RV[];
      return `(${items.map(repr).join(', ')}${items.length === 1 ? ',' : ''})`;
    }
    case 'ObjectValue':
    case 'KeywordArgumentsValue':
      return `{${[...(v.value as Map<unknown, RV>)].map(([k, x]) => `${repr(keyValue(k))}: ${repr(x)}`).join(', ')}}`;
    default: return v.toString();
  }
}

/** What `{{ v }}` writes (llama.cpp's `gather_string_parts`). */
function printed(v: RV): string {
  switch (v.type) {
    case 'StringValue': case 'IntegerValue': case 'FloatValue': case 'BooleanValue': return valueText(v);
    case 'ArrayValue': case 'TupleValue': return (v.value as RV[]).map(printed).join('');
    default: return '';
  }
}

/** llama.cpp's `value_to_string_repr`: strings quoted Python-style (JSON when they hold a quote). */
function repr(v: RV): string {
  if (is(v, 'String')) {
    const s = v.value as string;
    return s.includes("'") ? toJson(v) : `'${s}'`;
  }
  if (isUndefined(v)) return 'Undefined';
  return valueText(v);
}

/** JSON string escaping as llama.cpp writes it: control characters as \u00XX, the rest as is. */
function jsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    switch (ch) {
      case '"': out += '\\"'; break;
      case '\\': out += '\\\\'; break;
      case '\b': out += '\\b'; break;
      case '\f': out += '\\f'; break;
      case '\n': out += '\\n'; break;
      case '\r': out += '\\r'; break;
      case '\t': out += '\\t'; break;
      default: out += ch < ' ' ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}` : ch;
    }
  }
  return out + '"';
}

/**
 * llama.cpp's `tojson`: `indent` < 0 writes one line; any indent >= 0 breaks lines. Default
 * separators `', '` and `': '` on one line, `','` and `': '` when indented.
 */
function toJson(v: RV, indent = -1, itemSep = indent < 0 ? ', ' : ',', keySep = ': ', level = 0): string {
  const nl = indent >= 0 ? '\n' : '';
  const pad = (n: number) => (indent > 0 ? ' '.repeat(n * indent) : '');
  switch (v.type) {
    case 'NullValue':
    case 'UndefinedValue': return 'null';
    case 'BooleanValue': return v.value ? 'true' : 'false';
    case 'IntegerValue': return String(v.value);
    case 'FloatValue': return cppDouble(v.value as number);
    case 'StringValue': return jsonString(v.value as string);
    case 'ArrayValue':
    case 'TupleValue': {
      const items = v.value as RV[];
      if (items.length === 0) return '[]';
      return `[${nl}${items.map((x, i) => pad(level + 1) + toJson(x, indent, itemSep, keySep, level + 1) + (i < items.length - 1 ? itemSep : '') + nl).join('')}${pad(level)}]`;
    }
    case 'ObjectValue':
    case 'KeywordArgumentsValue':
    case 'NamespaceValue': {
      const entries = [...(v.value as Map<unknown, RV>)];
      if (entries.length === 0) return '{}';
      return `{${nl}${entries.map(([k, x], i) => pad(level + 1) + jsonString(String(k)) + keySep + toJson(x, indent, itemSep, keySep, level + 1) + (i < entries.length - 1 ? itemSep : '') + nl).join('')}${pad(level)}}`;
    }
    default: return 'null';
  }
}

/** A double as C++'s `ostream << double` writes it: 6 significant digits, %g style. */
function cppDouble(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const exp = Math.floor(Math.log10(Math.abs(Number(x.toPrecision(6)))));
  if (exp < -4 || exp >= 6) {
    const [m, e] = x.toExponential(5).split('e');
    const mant = m!.includes('.') ? m!.replace(/0+$/, '').replace(/\.$/, '') : m!;
    const en = Number(e);
    return `${mant}e${en < 0 ? '-' : '+'}${String(Math.abs(en)).padStart(2, '0')}`;
  }
  const s = x.toFixed(Math.max(0, 5 - exp));
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

const weekdays = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** C's `strftime` in the C locale on local time (what llama.cpp's `strftime_now` calls). */
export function strftime(format: string, d: Date): string {
  const p2 = (n: number) => String(n).padStart(2, '0');
  const dayOfYear = Math.floor((Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) - Date.UTC(d.getFullYear(), 0, 1)) / 86400000) + 1;
  return format.replace(/%([a-zA-Z%])/g, (whole, c: string) => {
    switch (c) {
      case 'Y': return String(d.getFullYear());
      case 'y': return p2(d.getFullYear() % 100);
      case 'm': return p2(d.getMonth() + 1);
      case 'd': return p2(d.getDate());
      case 'e': return String(d.getDate()).padStart(2, ' ');
      case 'B': return months[d.getMonth()]!;
      case 'b': case 'h': return months[d.getMonth()]!.slice(0, 3);
      case 'A': return weekdays[d.getDay()]!;
      case 'a': return weekdays[d.getDay()]!.slice(0, 3);
      case 'H': return p2(d.getHours());
      case 'I': return p2(d.getHours() % 12 || 12);
      case 'M': return p2(d.getMinutes());
      case 'S': return p2(d.getSeconds());
      case 'p': return d.getHours() < 12 ? 'AM' : 'PM';
      case 'j': return String(dayOfYear).padStart(3, '0');
      case 'F': return `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())}`;
      case 'T': return `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
      case 'D': return `${p2(d.getMonth() + 1)}/${p2(d.getDate())}/${p2(d.getFullYear() % 100)}`;
      case '%': return '%';
      default: return whole;
    }
  });
}

/** Filters llama.cpp defines on undefined: the empty value of the type each returns. */
const undefinedFilters: Record<string, () => RV> = {};
for (const f of ['capitalize', 'join', 'lower', 'replace', 'safe', 'string', 'strip', 'title', 'truncate', 'upper']) undefinedFilters[f] = () => str('');
for (const f of ['items', 'list', 'map', 'reject', 'rejectattr', 'reverse', 'select', 'selectattr', 'sort', 'unique']) undefinedFilters[f] = () => new classes.Array([]);
for (const f of ['length', 'sum', 'wordcount']) undefinedFilters[f] = () => int(0);
for (const f of ['first', 'last', 'max', 'min']) undefinedFilters[f] = undefinedValue;
/** Filters llama.cpp defines on none. */
const noneFilters: Record<string, () => RV> = { string: () => str('None'), safe: () => str('None') };
for (const f of ['items', 'map', 'reject', 'rejectattr', 'select', 'selectattr', 'unique']) noneFilters[f] = () => new classes.Array([]);
const filterAliases: Record<string, string> = { count: 'length', d: 'default', e: 'escape', trim: 'strip' };

/** A value the interpreter hands back unevaluated (see {@link LlamaInterpreter.evaluateFor}). */
const valueNode = (value: RV): Node => ({ type: 'MoerunValue', value });

/** A dict's key as a value: integer keys (from `{1: 'a'}`) stay integers. */
const keyValue = (k: unknown): RV => (typeof k === 'number' ? int(k) : str(k as string));

/** A dict's (key, value) pairs, as two-item lists. */
const entries = (o: RV): RV[] => [...(o.value as Map<unknown, RV>)].map(([k, v]) => new classes.Array([keyValue(k), v]));

/** Orders (key, value) pairs by key: numbers before strings, strings case-insensitively (dictsort). */
function compareKeys(a: RV[], b: RV[]): number {
  const x = a[0]!.value;
  const y = b[0]!.value;
  if (typeof x === 'number' && typeof y === 'number') return x - y;
  if (typeof x === 'number') return -1;
  if (typeof y === 'number') return 1;
  const [p, q] = [String(x).toLowerCase(), String(y).toLowerCase()];
  return p < q ? -1 : p > q ? 1 : 0;
}

/** Methods llama.cpp gives values that @huggingface/jinja does not. */
function methodOf(object: RV, name: string, limits: RenderLimits): RV | undefined {
  const fn = (f: (args: RV[]) => RV) => new classes.Function(f);
  if (is(object, 'String')) {
    const s = object.value as string;
    switch (name) {
      case 'split':
        // @huggingface/jinja's own split, once the parts are known to be few enough.
        return fn((args) => {
          const sep = args[0] && is(args[0], 'String') ? (args[0].value as string) : undefined;
          checkListItems(countParts(s, sep, limits.listItems + 1), 'split()', limits);
          const builtin = (object as unknown as { builtins: Map<string, RV> }).builtins.get('split')!;
          return (builtin.value as (a: RV[]) => RV)(args);
        });
      case 'format':
        // Only `{}` placeholders, filled in order.
        return fn((args) => {
          let i = 0;
          return str(s.replace(/\{\}/g, () => (args[i] ? valueText(args[i++]!) : '')));
        });
      case 'strip': case 'lstrip': case 'rstrip':
        return fn(([chars]) => str(strip(s, chars && is(chars, 'String') ? (chars.value as string) : ' \t\n\r\f\v', name !== 'rstrip', name !== 'lstrip')));
    }
  } else if (is(object, 'Array')) {
    const items = object.value as RV[];
    switch (name) {
      case 'append':
        return fn(([x]) => (items.push(x ?? undefinedValue()), object));
      case 'pop':
        return fn(([at]) => {
          const i = at ? (at.value as number) : -1;
          const k = i < 0 ? items.length + i : i;
          if (k < 0 || k >= items.length) throw new Error(`pop index ${i} out of range for a list of ${items.length}`);
          return items.splice(k, 1)[0]!;
        });
    }
  } else if (is(object, 'Object')) {
    const map = object.value as Map<unknown, RV>;
    switch (name) {
      case 'get':
        return fn(([key, fallback]) => map.get(key?.value) ?? fallback ?? new classes.Null(null));
      case 'items':
        return fn(() => new classes.Array(entries(object)));
      case 'keys':
        return fn(() => new classes.Array([...map.keys()].map(keyValue)));
    }
  }
  return undefined;
}

/** Python's `str.strip(chars)` family. */
function strip(s: string, chars: string, left: boolean, right: boolean): string {
  let a = 0;
  let b = s.length;
  if (left) while (a < b && chars.includes(s[a]!)) a++;
  if (right) while (b > a && chars.includes(s[b - 1]!)) b--;
  return s.slice(a, b);
}

/** A JS value (JSON-like) as a runtime value, by @huggingface/jinja's own conversion. */
function runtimeValue(v: unknown): RV {
  const scratch = new Environment();
  scratch.set('v', v);
  return scratch.lookupVariable('v') as unknown as RV;
}

/** A compiled template. */
export class JinjaTemplate {
  readonly #program: unknown;

  /** Parses `source` (lstrip_blocks and trim_blocks on, as llama.cpp and transformers do). */
  constructor(source: string) {
    this.#program = parse(tokenize(source, { lstrip_blocks: true, trim_blocks: true }));
  }

  /**
   * Renders with `context` as globals. `now` is the time `strftime_now` formats (local time, as
   * llama.cpp's does); `clock` (ms) measures `limits.timeMs` (default: wall time). Throws
   * {@link TemplateLimitError} past a limit, {@link TemplateRaisedError} from `raise_exception`,
   * and plain errors for what the template does wrong.
   */
  render(context: Record<string, unknown>, options: { now?: Date; limits?: Partial<RenderLimits>; clock?: () => number } = {}): string {
    const limits = { ...defaultRenderLimits, ...options.limits };
    const now = options.now ?? new Date();
    const env = new Environment();
    const set = (name: string, value: RV) => env.setVariable(name, value as never);
    for (const [k, v] of Object.entries({ false: false, true: true, none: null, False: false, True: true, None: null })) set(k, runtimeValue(v));
    const fn = (f: (args: RV[]) => RV) => new classes.Function(f);
    set('raise_exception', fn((args) => {
      throw new TemplateRaisedError(args[0] ? valueText(args[0]) : 'raise_exception');
    }));
    set('strftime_now', fn((args) => str(strftime(args[0] ? valueText(args[0]) : '', now))));
    set('range', fn((args) => rangeValue(args, limits)));
    // The context's values may replace the globals above (as in llama.cpp); undefined ones stay unset.
    for (const [k, v] of Object.entries(context)) if (v !== undefined) set(k, runtimeValue(v));
    const interpreter = new LlamaInterpreter(env, limits, options.clock ?? (() => performance.now()));
    return printed(interpreter.run(this.#program as never));
  }
}

/** How many parts `s.split(sep)` makes (whitespace runs without `sep`), counting up to `max`. */
function countParts(s: string, sep: string | undefined, max: number): number {
  let parts = 1;
  if (sep) {
    for (let at = s.indexOf(sep); at >= 0 && parts < max; at = s.indexOf(sep, at + sep.length)) parts++;
  } else {
    const space = /\s+/g;
    while (space.exec(s) && parts < max) parts++;
  }
  return parts;
}

/** Stops a render whose one operation would make more than `limits.listItems` items. */
function checkListItems(count: number, what: string, limits: RenderLimits): void {
  if (count > limits.listItems) throw new TemplateLimitError(`${what} makes more than ${limits.listItems} items`);
}

/** llama.cpp's `range(stop)` / `range(start, stop[, step])`. */
function rangeValue(args: RV[], limits: RenderLimits): RV {
  const n = args.map((a) => {
    if (!is(a, 'Integer')) throw new Error(`range() expects integers, got ${a.type}`);
    return a.value as number;
  });
  const [start, stop, step] = n.length === 1 ? [0, n[0]!, 1] : [n[0]!, n[1]!, n[2] ?? 1];
  if (step === 0) throw new Error('range() step must not be zero');
  const count = Math.max(0, Math.ceil((stop - start) / step));
  checkListItems(count, 'range()', limits);
  const out: RV[] = [];
  for (let i = 0; i < count; i++) out.push(int(start + i * step));
  return new classes.Array(out);
}

/** The methods of @huggingface/jinja's Interpreter this file overrides or calls (private in its types). */
interface BaseInterpreter {
  evaluate(node: Node | undefined, env: Environment): RV;
  run(program: never): RV;
  evaluateBinaryExpression(node: Node, env: Environment): RV;
  evaluateFor(node: Node, env: Environment): RV;
  evaluateMemberExpression(node: Node, env: Environment): RV;
  evaluateBlock(statements: Node[], env: Environment): RV;
  applyFilter(operand: RV, filterNode: Node, env: Environment): RV;
}

/** The interpreter with llama.cpp's semantics and the render limits. */
class LlamaInterpreter extends (Interpreter as unknown as new (env: Environment) => BaseInterpreter) {
  readonly #limits: RenderLimits;
  readonly #clock: () => number;
  readonly #deadline: number;
  #steps = 0;
  #depth = 0;

  constructor(env: Environment, limits: RenderLimits, clock: () => number) {
    super(env);
    this.#limits = limits;
    this.#clock = clock;
    this.#deadline = clock() + limits.timeMs;
  }

  /** Counts a step; past the step or time budget, stops the render. */
  #checkLimits(): void {
    if (++this.#steps > this.#limits.steps) {
      throw new TemplateLimitError(`the template ran over ${this.#limits.steps} steps`);
    }
    // A step can be costly (a long string made, a big list), so the clock is read often.
    if ((this.#steps & 15) === 0 && this.#clock() > this.#deadline) {
      throw new TemplateLimitError(`the template ran over ${this.#limits.timeMs} ms`);
    }
  }

  #checkLength(s: string): void {
    if (s.length > this.#limits.outputChars) throw new TemplateLimitError(`the template made a string over ${this.#limits.outputChars} characters`);
  }

  override evaluate(node: Node | undefined, env: Environment): RV {
    this.#checkLimits();
    if (!node) return undefinedValue();
    if (node.type === 'MoerunValue') return node.value as RV;
    if (++this.#depth > this.#limits.depth) {
      throw new TemplateLimitError(`the template nested deeper than ${this.#limits.depth} levels (runaway recursion?)`);
    }
    let result: RV;
    try {
      result = node.type === 'ObjectLiteral' ? this.#objectLiteral(node, env) : super.evaluate(node, env);
    } finally {
      this.#depth--;
    }
    if (is(result, 'String')) this.#checkLength(result.value as string);
    return result;
  }

  // llama.cpp: dict literal keys may be integers (`{16384: 'x'}`); other keys are kept as text.
  #objectLiteral(node: Node, env: Environment): RV {
    const map = new Map<unknown, RV>();
    for (const [k, v] of node.value as Map<Node, Node>) {
      const key = this.evaluate(k, env);
      map.set(is(key, 'Integer') ? key.value : valueText(key), this.evaluate(v, env));
    }
    return new classes.Object(map);
  }

  override evaluateBinaryExpression(node: Node, env: Environment): RV {
    const op = (node.operator as { value: string }).value;
    if (op === 'and' || op === 'or' || op === '==' || op === '!=') return super.evaluateBinaryExpression(node, env);
    const left = this.evaluate(node.left as Node, env);
    const right = this.evaluate(node.right as Node, env);
    const nullish = (v: RV) => isUndefined(v) || isNone(v);
    // llama.cpp: `+` / `~` of a string and none/undefined reads the missing side as ''.
    if ((op === '+' || op === '~') && ((nullish(left) && is(right, 'String')) || (nullish(right) && is(left, 'String')))) {
      return str((nullish(left) ? '' : valueText(left)) + (nullish(right) ? '' : valueText(right)));
    }
    // llama.cpp: `~` (and `+` with a string) print the other side with its own spelling.
    if (op === '~' || (op === '+' && (is(left, 'String') || is(right, 'String')) && !nullish(left) && !nullish(right))) {
      return str(valueText(left) + valueText(right));
    }
    // llama.cpp: `'ab' * 3` repeats a string.
    if (op === '*' && ((is(left, 'String') && is(right, 'Integer')) || (is(left, 'Integer') && is(right, 'String')))) {
      const [s, n] = is(left, 'String') ? [left.value as string, right.value as number] : [right.value as string, left.value as number];
      if (n <= 0) return str('');
      if (s.length * n > this.#limits.outputChars) throw new TemplateLimitError(`the template made a string over ${this.#limits.outputChars} characters`);
      return str(s.repeat(n));
    }
    return super.evaluateBinaryExpression({ ...node, left: valueNode(left), right: valueNode(right) }, env);
  }

  /**
   * `{% for %}`, as @huggingface/jinja runs it (the body shares one scope across iterations; `loop`
   * has index, index0, revindex, revindex0, first, last, length, previtem, nextitem; `else` runs
   * when nothing iterated), but with the limits checked at every item: its own version builds a
   * scope per item before the first iteration, out of reach of the limits (1.3 s for 100k items).
   * llama.cpp: iterating undefined iterates nothing; a dict iterates its (key, value) pairs, one
   * loop variable taking the key; `for a, b in` unpacks tuples.
   */
  override evaluateFor(node: Node, env: Environment): RV {
    const scope = new Environment(env);
    const iterableNode = node.iterable as Node;
    const test = iterableNode.type === 'SelectExpression' ? (iterableNode.test as Node) : undefined;
    let iterable = this.evaluate(test ? (iterableNode.lhs as Node) : iterableNode, scope);
    if (isUndefined(iterable)) iterable = new classes.Array([]);
    const loopvar = node.loopvar as Node;
    const unpack = loopvar.type === 'TupleLiteral';
    if (is(iterable, 'Object')) {
      const pairs = entries(iterable);
      iterable = new classes.Array(unpack ? pairs : pairs.map((p) => (p.value as RV[])[0]!));
    }
    if (!is(iterable, 'Array')) throw new Error(`Expected iterable or object type in for loop: got ${iterable.type}`);
    const bind = (target: Environment, item: RV) => {
      if (!unpack) return target.setVariable(loopvar.value as string, item as never);
      const names = loopvar.value as Node[];
      if (!is(item, 'Array')) throw new Error(`Cannot unpack non-iterable type: ${item.type}`);
      const parts = item.value as RV[];
      if (parts.length !== names.length) throw new Error(`Too ${names.length > parts.length ? 'few' : 'many'} items to unpack`);
      names.forEach((n, j) => {
        if (n.type !== 'Identifier') throw new Error(`Cannot unpack non-identifier type: ${n.type}`);
        target.setVariable(n.value as string, parts[j] as never);
      });
    };
    let items = iterable.value as RV[];
    if (test) {
      items = items.filter((item) => {
        const itemScope = new Environment(scope);
        bind(itemScope, item);
        return this.evaluate(test, itemScope).__bool__().value;
      });
    }
    let out = '';
    let iterated = false;
    for (let i = 0; i < items.length; i++) {
      this.#checkLimits();
      scope.setVariable('loop', new classes.Object(new Map<string, RV>([
        ['index', int(i + 1)], ['index0', int(i)], ['revindex', int(items.length - i)], ['revindex0', int(items.length - i - 1)],
        ['first', new classes.Boolean(i === 0)], ['last', new classes.Boolean(i === items.length - 1)], ['length', int(items.length)],
        ['previtem', i > 0 ? items[i - 1]! : undefinedValue()], ['nextitem', i < items.length - 1 ? items[i + 1]! : undefinedValue()],
      ])) as never);
      bind(scope, items[i]!);
      try {
        out += this.evaluateBlock(node.body as Node[], scope).value as string;
      } catch (err) {
        if (err instanceof classes.ContinueControl) continue;
        if (err instanceof classes.BreakControl) break;
        throw err;
      } finally {
        this.#checkLength(out);
      }
      iterated = true;
    }
    if (!iterated) out += this.evaluateBlock((node.defaultBlock as Node[] | undefined) ?? [], scope).value as string;
    return str(out);
  }

  // llama.cpp: output prints strings, numbers and booleans (True/False); a list prints its items
  // one after another; none, undefined and dicts print nothing.
  override evaluateBlock(statements: Node[], env: Environment): RV {
    let out = '';
    for (const statement of statements) {
      out += printed(this.evaluate(statement, env));
      this.#checkLength(out);
    }
    return str(out);
  }

  // llama.cpp: a value's methods are its filters (`s.format(x)`, `list.append(x)`, `d.get(k)`),
  // and a dict literal's integer keys are looked up by integer.
  override evaluateMemberExpression(expr: Node, env: Environment): RV {
    const object = this.evaluate(expr.object as Node, env);
    const propertyNode = expr.property as Node;
    if (expr.computed && propertyNode.type === 'SliceExpression') return super.evaluateMemberExpression({ ...expr, object: valueNode(object) }, env);
    const property = expr.computed ? this.evaluate(propertyNode, env) : propertyNode.type === 'IntegerLiteral' ? int(propertyNode.value as number) : str(propertyNode.value as string);
    if (is(object, 'Object') && is(property, 'Integer')) return (object.value as Map<unknown, RV>).get(property.value) ?? undefinedValue();
    if (is(property, 'String')) {
      const name = property.value as string;
      const method = methodOf(object, name, this.#limits);
      if (method && !(is(object, 'Object') && (object.value as Map<string, RV>).has(name))) return method;
    }
    return super.evaluateMemberExpression({ ...expr, object: valueNode(object), property: valueNode(property), computed: true }, env);
  }

  override applyFilter(operand: RV, filterNode: Node, env: Environment): RV {
    const callee = filterNode.type === 'CallExpression' ? (filterNode.callee as Node) : filterNode;
    const name = filterAliases[callee.value as string] ?? (callee.value as string);
    const argNodes = filterNode.type === 'CallExpression' ? (filterNode.args as Node[]) : [];
    const args = () => argNodes.filter((a) => a.type !== 'KeywordArgumentExpression').map((a) => this.evaluate(a, env));
    if (name === 'default') {
      // llama.cpp: default replaces none as well as undefined (or anything falsy with boolean=true).
      const [fallback, boolean] = args();
      const missing = boolean?.__bool__().value ? !operand.__bool__().value : isUndefined(operand) || isNone(operand);
      return missing ? fallback ?? str('') : operand;
    }
    if (isUndefined(operand) && undefinedFilters[name]) return undefinedFilters[name]();
    if (name === 'list' && is(operand, 'String')) checkListItems((operand.value as string).length, '| list', this.#limits);
    if (isNone(operand) && noneFilters[name]) return noneFilters[name]();
    if (name === 'tojson') {
      // Positional arguments after the value: ensure_ascii, indent, separators.
      const positional = args();
      const kw = this.#kwargs(argNodes, env);
      const indentArg = kw.get('indent') ?? positional[1];
      const indent = indentArg && is(indentArg, 'Integer') ? (indentArg.value as number) : -1;
      const seps = kw.get('separators') ?? positional[2];
      const sepList = seps && is(seps, 'Array') ? (seps.value as RV[]).map(valueText) : [];
      let out = toJson(operand, indent, sepList[0] ?? (indent < 0 ? ', ' : ','), sepList[1] ?? ': ');
      if ((kw.get('ensure_ascii') ?? positional[0])?.__bool__().value) out = out.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
      return str(out);
    }
    if (name === 'string') return str(is(operand, 'Integer') || is(operand, 'Float') ? toJson(operand) : valueText(operand));
    if ((name === 'items' || name === 'dictsort') && is(operand, 'Object')) {
      const items = entries(operand);
      if (name === 'dictsort') items.sort((a, b) => compareKeys(a.value as RV[], b.value as RV[]));
      return new classes.Array(items);
    }
    if ((name === 'min' || name === 'max') && is(operand, 'Array')) {
      const items = operand.value as RV[];
      if (items.length === 0) return undefinedValue();
      return items.reduce((best, x) => ((name === 'min' ? (x.value as number) < (best.value as number) : (x.value as number) > (best.value as number)) ? x : best));
    }
    return super.applyFilter(operand, filterNode, env);
  }

  #kwargs(argNodes: Node[], env: Environment): Map<string, RV> {
    const out = new Map<string, RV>();
    for (const a of argNodes) if (a.type === 'KeywordArgumentExpression') out.set((a.key as { value: string }).value, this.evaluate(a.value as Node, env));
    return out;
  }
}
