/**
 * Tool calls in a model's answer: which syntax a chat template teaches (found in the template's
 * text), and a streaming parser that takes the answer text as it arrives and splits it into plain
 * text and complete tool calls, never letting tool-call markup through as text.
 *
 * Syntaxes (what the models write):
 * - `hermes` (Qwen3, QwQ, Qwen2.5, Ling 2.0, Hermes): `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`,
 *   one block per call.
 * - `deepseek` (R1, V3): `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>`;
 *   V3.1 and later write `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>`.
 * - `llama3` (Llama 3.1 / 3.2 / 3.3): the whole answer is `{"name": ..., "parameters": {...}}`, or
 *   `<|python_tag|>` then such JSON or a built-in tool's `brave_search.call(query="...")`.
 */
import { randomBytes } from 'node:crypto';
import { MoerunError } from '../errors.js';
import { compileJsonSchema, Grammar } from '../grammar/index.js';

/** A tool call the model made. */
export interface ToolCall {
  /** An id for this call (`call_` + 24 characters), to answer it with a `'tool'` message. */
  id: string;
  /** The tool's name. */
  name: string;
  /** The arguments as a JSON text (OpenAI's convention), e.g. `'{"city":"Paris"}'`. */
  arguments: string;
}

/** The tool-call syntaxes moerun parses. */
export type ToolCallSyntax = 'hermes' | 'deepseek' | 'llama3';

/** The syntax a chat template teaches its model, from markers in its text; undefined if none. */
export function toolCallSyntaxOf(template: string): ToolCallSyntax | undefined {
  if (template.includes('<｜tool▁calls▁begin｜>') || template.includes('<｜tool▁call▁begin｜>')) return 'deepseek';
  if (template.includes('<tool_call>')) return 'hermes';
  if (template.includes('<|python_tag|>') || (template.includes('<|start_header_id|>') && template.includes('"parameters"'))) return 'llama3';
  return undefined;
}

/** The markers of a syntax that may be single special tokens, which the detokenizer would drop. */
export function toolCallMarkers(syntax: ToolCallSyntax): string[] {
  switch (syntax) {
    case 'hermes': return ['<tool_call>', '</tool_call>'];
    case 'deepseek': return [dsCallsBegin, dsCallsEnd, dsCallBegin, dsCallEnd, dsSep];
    case 'llama3': return [pythonTag];
  }
}

const dsCallsBegin = '<｜tool▁calls▁begin｜>';
const dsCallsEnd = '<｜tool▁calls▁end｜>';
const dsCallBegin = '<｜tool▁call▁begin｜>';
const dsCallEnd = '<｜tool▁call▁end｜>';
const dsSep = '<｜tool▁sep｜>';
const pythonTag = '<|python_tag|>';

/** What {@link ToolCallParser} hands out: plain text and the calls completed, in order (text first). */
export interface ToolCallPiece {
  text: string;
  toolCalls: ToolCall[];
}

const idChars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A fresh tool-call id, `call_` + 24 random letters and digits. */
export function newToolCallId(): string {
  return 'call_' + Array.from(randomBytes(24), (b) => idChars[b % idChars.length]).join('');
}

/** A name and arguments value as a call, or undefined if they are not one. */
function callOf(name: unknown, args: unknown): ToolCall | undefined {
  if (typeof name !== 'string' || name.length === 0) return undefined;
  if (args === undefined) args = {};
  // A model that writes the arguments as a JSON string gives that text as is, if it is JSON.
  if (typeof args === 'string') {
    try {
      JSON.parse(args);
    } catch {
      return undefined;
    }
    return { id: newToolCallId(), name, arguments: args };
  }
  if (args === null || typeof args !== 'object' || Array.isArray(args)) return undefined;
  return { id: newToolCallId(), name, arguments: JSON.stringify(args) };
}

/** `{"name": ..., "arguments"|"parameters": {...}}` as a call. */
function jsonCall(text: string): ToolCall | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  return callOf(o.name, 'arguments' in o ? o.arguments : o.parameters);
}

/** One DeepSeek call: `[function<｜tool▁sep｜>]NAME\n```json\nARGS\n``` ` (R1, V3) or `NAME<｜tool▁sep｜>ARGS` (V3.1+). */
function deepseekCall(body: string): ToolCall | undefined {
  const sep = body.indexOf(dsSep);
  if (sep < 0) return undefined;
  const before = body.slice(0, sep).trim();
  const after = body.slice(sep + dsSep.length);
  if (before === 'function') {
    const m = /^([^\n]+)\n```(?:json)?\n([\s\S]*?)\n?```\s*$/.exec(after);
    if (!m) return undefined;
    return callOf(m[1]!.trim(), parseJson(m[2]!));
  }
  return callOf(before, parseJson(after.trim()));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A Llama 3.1 built-in tool call, `brave_search.call(query="x", n=3)`, as a call. */
function pythonCall(text: string): ToolCall | undefined {
  const m = /^\s*([A-Za-z_]\w*)\.call\(([\s\S]*)\)\s*$/.exec(text);
  if (!m) return undefined;
  const args: Record<string, unknown> = {};
  const argRe = /\s*([A-Za-z_]\w*)\s*=\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|-?\d+(?:\.\d+)?|True|False|true|false)\s*(,|$)/y;
  let at = 0;
  const list = m[2]!;
  while (at < list.length) {
    argRe.lastIndex = at;
    const a = argRe.exec(list);
    if (!a) return undefined;
    const raw = a[2]!;
    args[a[1]!] = raw.startsWith("'") ? raw.slice(1, -1).replace(/\\(.)/g, '$1')
      : raw.startsWith('"') ? JSON.parse(raw)
      : /^(True|true)$/.test(raw) ? true : /^(False|false)$/.test(raw) ? false : Number(raw);
    at = argRe.lastIndex;
  }
  return callOf(m[1], args);
}

/** The longest suffix of `s` that starts one of `markers` (held back: it may complete later). */
function partialMarkerSuffix(s: string, markers: readonly string[]): number {
  let keep = 0;
  for (const marker of markers) {
    for (let k = Math.min(marker.length - 1, s.length); k > keep; k--) {
      if (s.endsWith(marker.slice(0, k))) {
        keep = k;
        break;
      }
    }
  }
  return keep;
}

/**
 * Splits streamed answer text into text and tool calls for one syntax. Text that may be the start
 * of a marker is held back until it is decided; a tool-call block is held until it is complete,
 * then handed out as a call. A block that does not parse is handed out as the text it was.
 */
export class ToolCallParser {
  readonly #syntax: ToolCallSyntax;
  #held = '';
  /** Inside a tool-call block (after its opening marker). */
  #inBlock = false;
  /** Llama 3: the answer so far is only whitespace, so a `{` may start a bare JSON call. */
  #atStart = true;
  /** Llama 3: the answer began with `{`: held to the end, a call if it parses. */
  #bareJson = false;

  constructor(syntax: ToolCallSyntax) {
    this.#syntax = syntax;
  }

  /** Takes the next piece of answer text; returns what can be handed out now. */
  push(text: string): ToolCallPiece {
    const out: ToolCallPiece = { text: '', toolCalls: [] };
    this.#held += text;
    switch (this.#syntax) {
      case 'hermes': this.#hermes(out); break;
      case 'deepseek': this.#deepseek(out); break;
      case 'llama3': this.#llama3(out); break;
    }
    return out;
  }

  /** Ends the stream: a block left open is parsed if it is complete JSON, else handed out as text. */
  flush(): ToolCallPiece {
    const out: ToolCallPiece = { text: '', toolCalls: [] };
    const rest = this.#held;
    this.#held = '';
    if (this.#syntax === 'llama3' && (this.#bareJson || this.#inBlock)) {
      const body = rest.trim();
      const call = jsonCall(body) ?? pythonCall(body);
      if (call) out.toolCalls.push(call);
      else out.text = (this.#inBlock ? pythonTag : '') + rest;
    } else if (this.#inBlock && this.#syntax === 'hermes') {
      const call = jsonCall(rest.trim());
      if (call) out.toolCalls.push(call);
      else out.text = '<tool_call>' + rest;
    } else if (this.#inBlock) {
      // DeepSeek: the calls that closed are out; an unfinished one is handed out as text.
      out.text = rest.trim() ? rest : '';
    } else {
      out.text = rest;
    }
    this.#inBlock = false;
    this.#bareJson = false;
    return out;
  }

  /** `<tool_call>` blocks amid text, each parsed as a JSON call when its `</tool_call>` arrives. */
  #hermes(out: ToolCallPiece): void {
    const [open, close] = ['<tool_call>', '</tool_call>'];
    for (;;) {
      if (!this.#inBlock) {
        const at = this.#held.indexOf(open);
        if (at < 0) {
          const keep = partialMarkerSuffix(this.#held, [open]);
          out.text += this.#held.slice(0, this.#held.length - keep);
          this.#held = this.#held.slice(this.#held.length - keep);
          return;
        }
        out.text += this.#held.slice(0, at);
        this.#held = this.#held.slice(at + open.length);
        this.#inBlock = true;
      }
      const end = this.#held.indexOf(close);
      if (end < 0) return;
      const body = this.#held.slice(0, end);
      this.#held = this.#held.slice(end + close.length);
      this.#inBlock = false;
      const call = jsonCall(body.trim());
      if (call) out.toolCalls.push(call);
      else out.text += open + body + close;
    }
  }

  /** DeepSeek: calls between `<｜tool▁calls▁begin｜>` and `<｜tool▁calls▁end｜>`, each handed out at its `<｜tool▁call▁end｜>`. */
  #deepseek(out: ToolCallPiece): void {
    for (;;) {
      if (!this.#inBlock) {
        const opens = [dsCallsBegin, dsCallBegin];
        const found = opens.map((o) => this.#held.indexOf(o)).filter((i) => i >= 0);
        const at = found.length > 0 ? Math.min(...found) : -1;
        if (at < 0) {
          const keep = partialMarkerSuffix(this.#held, opens);
          out.text += this.#held.slice(0, this.#held.length - keep);
          this.#held = this.#held.slice(this.#held.length - keep);
          return;
        }
        out.text += this.#held.slice(0, at);
        // A call without the section marker (R1 sometimes omits it) opens the section too.
        this.#held = this.#held.startsWith(dsCallsBegin, at) ? this.#held.slice(at + dsCallsBegin.length) : this.#held.slice(at);
        this.#inBlock = true;
      }
      const trimmed = this.#held.trimStart();
      if (trimmed.startsWith(dsCallsEnd)) {
        this.#held = trimmed.slice(dsCallsEnd.length);
        this.#inBlock = false;
        continue;
      }
      const end = this.#held.indexOf(dsCallEnd);
      if (end < 0) return;
      let body = this.#held.slice(0, end).trimStart();
      this.#held = this.#held.slice(end + dsCallEnd.length);
      if (body.startsWith(dsCallBegin)) body = body.slice(dsCallBegin.length);
      const call = deepseekCall(body);
      if (call) out.toolCalls.push(call);
      else out.text += dsCallBegin + body + dsCallEnd;
    }
  }

  /** Llama 3: a `{` starting the answer holds it to the end; `<|python_tag|>` starts a call that runs to the end. */
  #llama3(out: ToolCallPiece): void {
    if (this.#bareJson || this.#inBlock) return;
    if (this.#atStart) {
      const lead = this.#held.trimStart();
      if (lead.length === 0) return;  // only whitespace so far: undecided
      this.#atStart = false;
      if (lead.startsWith('{')) {
        this.#bareJson = true;
        return;
      }
    }
    const at = this.#held.indexOf(pythonTag);
    if (at >= 0) {
      out.text += this.#held.slice(0, at);
      this.#held = this.#held.slice(at + pythonTag.length);
      this.#inBlock = true;
      return;
    }
    const keep = partialMarkerSuffix(this.#held, [pythonTag]);
    out.text += this.#held.slice(0, this.#held.length - keep);
    this.#held = this.#held.slice(this.#held.length - keep);
  }
}

/** A tool as {@link requiredToolCallGrammar} needs it (OpenAI's shape). */
interface ToolForGrammar {
  function: { name: string; parameters?: Record<string, unknown> };
}

/**
 * `toolChoice: 'required'`: a grammar whose texts are exactly one tool call in `syntax`, naming
 * one of `tools` with arguments its JSON schema accepts. The call's JSON is one schema
 * (`anyOf` over the tools, each `{ name: const, arguments|parameters: schema }`) compiled to GBNF,
 * wrapped in the syntax's markers. @internal
 */
export function requiredToolCallGrammar(syntax: ToolCallSyntax | undefined, tools: readonly ToolForGrammar[], otherGrammar: unknown): Grammar {
  if (tools.length === 0) throw new MoerunError('ERR_INVALID_ARGUMENT', "toolChoice 'required' needs tools");
  if (otherGrammar !== undefined) throw new MoerunError('ERR_INVALID_ARGUMENT', "toolChoice 'required' constrains the answer itself: it cannot be combined with grammar or jsonSchema");
  if (syntax !== 'hermes' && syntax !== 'llama3') {
    throw new MoerunError('ERR_UNSUPPORTED', `toolChoice 'required' is supported for the <tool_call> (Qwen3, QwQ, Ling 2.0) and Llama 3.1 syntaxes, not for ${syntax ?? 'a template without a known tool-call syntax'}`);
  }
  const argsKey = syntax === 'llama3' ? 'parameters' : 'arguments';
  const callSchema = {
    anyOf: tools.map((t) => ({
      type: 'object',
      properties: { name: { const: t.function.name }, [argsKey]: t.function.parameters ?? { type: 'object' } },
      required: ['name', argsKey],
      additionalProperties: false,
    })),
  };
  const json = compileJsonSchema(callSchema);
  if (syntax === 'llama3') return new Grammar(json);
  return new Grammar(`${json}\nmoerun-tool-call ::= "<tool_call>\\n" root "\\n</tool_call>"\n`, { root: 'moerun-tool-call' });
}
