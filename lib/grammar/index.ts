/**
 * Constrained output: a {@link Grammar} (GBNF text, or a JSON Schema compiled to it) that
 * `generate()` and `chat()` enforce by masking the logits before each token is sampled.
 */
import { MoerunError } from '../errors.js';
import { describe } from '../validate.js';
import { parseGbnf } from './gbnf.js';
import { compileJsonSchema, type JsonSchema } from './json-schema.js';
import { GrammarProgram, matchesPrefix, matchesText } from './matcher.js';

export { compileJsonSchema, type JsonSchema } from './json-schema.js';

/** Options of {@link Grammar}'s constructor. */
export interface GrammarOptions {
  /** The start rule's name. Default `'root'`. */
  root?: string;
}

/**
 * A compiled grammar, reusable across generations and sessions (its matcher states and token
 * masks are cached and shared, so a second generation under the same grammar starts warm).
 *
 * @example
 * const yesNo = new Grammar('root ::= ("yes" | "no") "."');
 * const answer = await session.generate('Is the sky blue? ', { grammar: yesNo }).text();
 */
export class Grammar {
  /** The GBNF text. */
  readonly source: string;
  /** The start rule's name. */
  readonly root: string;
  /** @internal The matcher program. */
  readonly program: GrammarProgram;

  /**
   * Parses GBNF text (llama.cpp's grammar format).
   * @throws MoerunError `ERR_INVALID_ARGUMENT` for a syntax error (with its line), an undefined
   *   rule, a missing start rule, or left recursion.
   */
  constructor(gbnf: string, options?: GrammarOptions) {
    if (typeof gbnf !== 'string') throw new MoerunError('ERR_INVALID_ARGUMENT', `Expected a GBNF string for grammar but received ${describe(gbnf)}`);
    const root = options?.root ?? 'root';
    if (typeof root !== 'string' || root.length === 0) throw new MoerunError('ERR_INVALID_ARGUMENT', `Expected a rule name for root but received ${describe(root)}`);
    this.source = gbnf;
    this.root = root;
    this.program = new GrammarProgram(parseGbnf(gbnf, root));
    if (this.program.start().stacks.length === 0) throw new MoerunError('ERR_INVALID_ARGUMENT', 'grammar: the start rule matches nothing');
  }

  /**
   * The grammar of the JSON texts a schema accepts (see {@link compileJsonSchema} for the
   * supported keywords).
   * @throws MoerunError `ERR_INVALID_ARGUMENT` for a malformed schema, `ERR_UNSUPPORTED` for a
   *   keyword the compiler cannot enforce.
   */
  static fromJsonSchema(schema: JsonSchema): Grammar {
    return new Grammar(compileJsonSchema(schema));
  }

  /** Whether `text` as a whole matches the grammar. */
  matches(text: string): boolean {
    return matchesText(this.program, text);
  }

  /** Whether `text` can be continued into a match (every prefix of a match is one). */
  matchesPrefix(text: string): boolean {
    return matchesPrefix(this.program, text);
  }
}

/**
 * Grammars compiled from the text or schema of recent calls, most recent last: a server passing
 * the same `response_format` on every request keeps its matcher states and cached masks.
 */
const recent = new Map<string, Grammar>();
const RECENT_GRAMMARS = 32;

function remembered(key: string, compile: () => Grammar): Grammar {
  let g = recent.get(key);
  if (g) recent.delete(key);
  else g = compile();
  recent.set(key, g);
  if (recent.size > RECENT_GRAMMARS) recent.delete(recent.keys().next().value!);
  return g;
}

/**
 * The grammar a generate()/chat() call asked for: `grammar` (a {@link Grammar} or GBNF text) or
 * `jsonSchema`, at most one of them. Text and schemas seen recently reuse their compiled grammar.
 * @internal
 */
export function grammarOption(grammar: unknown, jsonSchema: unknown): Grammar | undefined {
  if (grammar !== undefined && jsonSchema !== undefined) {
    throw new MoerunError('ERR_INVALID_ARGUMENT', 'Expected at most one of grammar and jsonSchema but received both');
  }
  if (grammar !== undefined) {
    if (grammar instanceof Grammar) return grammar;
    if (typeof grammar === 'string') return remembered(`gbnf:${grammar}`, () => new Grammar(grammar));
    throw new MoerunError('ERR_INVALID_ARGUMENT', `Expected a Grammar or a GBNF string for grammar but received ${describe(grammar)}`);
  }
  if (jsonSchema !== undefined) {
    if (jsonSchema === null || (typeof jsonSchema !== 'object' && typeof jsonSchema !== 'boolean')) {
      throw new MoerunError('ERR_INVALID_ARGUMENT', `Expected a JSON Schema (an object) for jsonSchema but received ${describe(jsonSchema)}`);
    }
    let key: string;
    try {
      key = `schema:${JSON.stringify(jsonSchema)}`;
    } catch {
      throw new MoerunError('ERR_INVALID_ARGUMENT', 'Expected a JSON Schema (plain JSON data) for jsonSchema, but it cannot be serialized (a cycle?)');
    }
    return remembered(key, () => Grammar.fromJsonSchema(jsonSchema as JsonSchema));
  }
  return undefined;
}
