/**
 * Chat: rendering a model's Jinja chat template (`tokenizer.chat_template`) as llama.cpp does
 * (the engine is lib/chat/jinja.ts), tools and tool calls in the conversation, the template's own
 * stop tokens, and splitting streamed text into the answer and the `<think>…</think>` reasoning.
 */
import { MoerunError } from './errors.js';
import { defaultRenderLimits, JinjaTemplate, TemplateLimitError, TemplateRaisedError, type RenderLimits } from './chat/jinja.js';
import { toolCallMarkers, ToolCallParser, type ToolCall, type ToolCallPiece, type ToolCallSyntax } from './chat/tool-calls.js';
import { native } from './native.js';
import type { Tokenizer } from './tokenizer/index.js';
import { describe, invalid } from './validate.js';

export { toolCallSyntaxOf, type ToolCall, type ToolCallSyntax } from './chat/tool-calls.js';

/** A tool call in an assistant message, as OpenAI's API writes it. */
export interface ChatToolCall {
  /** The call's id; a `'tool'` message answers it with the same `tool_call_id`. */
  id: string;
  type: 'function';
  function: {
    name: string;
    /** The arguments as a JSON text (OpenAI's convention), e.g. `'{"city":"Paris"}'`. */
    arguments: string;
  };
}

/** One message of a conversation (OpenAI's shape). */
export interface ChatMessage {
  /** `'system'`, `'user'`, `'assistant'`, `'tool'` (or another role the template knows). */
  role: string;
  /** The message text; may be null on an assistant message that carries `tool_calls`. */
  content: string | null;
  /** An assistant message's reasoning, for templates that render it (`reasoning_content`). */
  reasoning?: string;
  /** An assistant message's tool calls. */
  tool_calls?: ChatToolCall[];
  /** A `'tool'` message: the id of the call it answers. */
  tool_call_id?: string;
  /** A `'tool'` message: the tool's name (some templates print it). */
  name?: string;
}

/** A tool the model may call (OpenAI's shape). */
export interface ChatTool {
  type: 'function';
  function: {
    name: string;
    description?: string;
    /** The arguments' JSON Schema. */
    parameters?: Record<string, unknown>;
  };
}

/** Options of {@link renderChatTemplate}. */
export interface RenderChatTemplateOptions {
  /** End with the assistant header so the model answers next. Default true. */
  addGenerationPrompt?: boolean;
  /** Text of the BOS token (`bos_token`). Default ''. */
  bosToken?: string;
  /** Text of the EOS token (`eos_token`). Default ''. */
  eosToken?: string;
  /** Tools offered to the model (`tools`). */
  tools?: readonly ChatTool[];
  /** Template variable `enable_thinking`. Default true, like llama.cpp. */
  enableThinking?: boolean;
  /** Further template variables, e.g. `{ date_string: '1 Jan 2025' }`; they override the defaults. */
  vars?: Record<string, unknown>;
  /** The time `strftime_now()`, `date_string` and `datetime` show. Default now. */
  now?: Date;
  /**
   * Limits on the render, so a template that loops or expands without bound fails instead of
   * holding the JS thread. Defaults: 300 ms of the JS thread's CPU time and 5M interpreter steps, plus 2 ms and 20k steps per
   * message and tool (an honest template's work grows with the conversation: Qwen3's takes
   * 65-250 ms for 1,000 messages of 600 characters); strings up to 32M characters, lists made at once (`range()`, `split()`) up to 1M items, nesting 400 deep.
   */
  limits?: Partial<RenderLimits>;
}

const templateCache = new Map<string, JinjaTemplate>();

let clock: (() => number) | undefined;

/**
 * The clock of the render limits: the JS thread's CPU time (the addon's), so that a busy machine
 * does not stop an honest render; wall time if the addon cannot load. Found at the first render.
 */
function renderClock(): () => number {
  if (!clock) {
    clock = () => performance.now();
    try {
      const binding = native();
      if (Number.isFinite(binding.threadCpuMs())) clock = () => binding.threadCpuMs();
    } catch {
      // wall time
    }
  }
  return clock;
}

function compile(source: string): JinjaTemplate {
  let t = templateCache.get(source);
  if (!t) {
    try {
      t = new JinjaTemplate(source);
    } catch (err) {
      throw new MoerunError('ERR_BAD_FORMAT', `chat template: cannot parse it: ${(err as Error).message}`, { cause: err });
    }
    if (templateCache.size >= 16) templateCache.delete(templateCache.keys().next().value!);
    templateCache.set(source, t);
  }
  return t;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Checks a messages array: a non-empty array of `{ role, content }` with string fields; an
 * assistant message may carry `tool_calls` (then `content` may be null), a tool message
 * `tool_call_id` and `name`. @internal
 */
export function checkMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw invalid(`Expected a non-empty array of messages for messages but received ${describe(messages)}`);
  }
  messages.forEach((m: unknown, i) => {
    const o = m as Partial<ChatMessage> | null;
    const withCalls = o !== null && typeof o === 'object' && o.tool_calls !== undefined;
    const contentOk = typeof o?.content === 'string' || (withCalls && (o.content === null || o.content === undefined));
    if (o === null || typeof o !== 'object' || typeof o.role !== 'string' || o.role.length === 0 || !contentOk) {
      throw invalid(`Expected { role: string, content: string } for messages[${i}] but received ${describe(m)}`);
    }
    for (const key of ['reasoning', 'tool_call_id', 'name'] as const) {
      if (o[key] !== undefined && typeof o[key] !== 'string') {
        throw invalid(`Expected a string for messages[${i}].${key} but received ${describe(o[key])}`);
      }
    }
    if (withCalls) {
      if (!Array.isArray(o.tool_calls)) throw invalid(`Expected an array for messages[${i}].tool_calls but received ${describe(o.tool_calls)}`);
      o.tool_calls.forEach((c: unknown, j) => {
        const call = c as Partial<ChatToolCall> | null;
        if (!isObject(call) || typeof call.id !== 'string' || !isObject(call.function) || typeof call.function.name !== 'string' || typeof call.function.arguments !== 'string') {
          throw invalid(`Expected { id: string, type: 'function', function: { name: string, arguments: string } } for messages[${i}].tool_calls[${j}] but received ${describe(c)}`);
        }
      });
    }
  });
  return messages as ChatMessage[];
}

/** Checks `tools`: an array of `{ type: 'function', function: { name, description?, parameters? } }`. @internal */
export function checkTools(tools: unknown): ChatTool[] {
  if (!Array.isArray(tools)) throw invalid(`Expected an array of tools for tools but received ${describe(tools)}`);
  tools.forEach((t: unknown, i) => {
    const o = t as Partial<ChatTool> | null;
    const f = isObject(o) ? o.function : undefined;
    if (!isObject(o) || o.type !== 'function' || !isObject(f) || typeof f.name !== 'string' || f.name.length === 0
      || (f.description !== undefined && typeof f.description !== 'string') || (f.parameters !== undefined && !isObject(f.parameters))) {
      throw invalid(`Expected { type: 'function', function: { name: string, description?: string, parameters?: object } } for tools[${i}] but received ${describe(t)}`);
    }
  });
  return tools as ChatTool[];
}

/** Parses a tool call's JSON arguments for the template (llama.cpp passes them as objects). */
function argumentsObject(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new MoerunError('ERR_INVALID_ARGUMENT', `Expected JSON text for ${where} but received ${describe(text)}`, { cause: err });
  }
}

/** A message as the template sees it (llama.cpp's `to_json_oaicompat` plus its argument parsing). */
function templateMessage(m: ChatMessage, i: number): Record<string, unknown> {
  const out: Record<string, unknown> = { role: m.role, content: m.content ?? '' };
  if (m.reasoning !== undefined) out.reasoning_content = m.reasoning;
  if (m.name !== undefined) out.name = m.name;
  if (m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
  if (m.tool_calls !== undefined) {
    out.tool_calls = m.tool_calls.map((c, j) => ({
      id: c.id,
      type: 'function',
      function: { name: c.function.name, arguments: argumentsObject(c.function.arguments, `messages[${i}].tool_calls[${j}].function.arguments`) },
    }));
  }
  return out;
}

const pad2 = (n: number) => String(n).padStart(2, '0');
const monthAbbr = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * Renders a Jinja chat template with the context llama.cpp's `--jinja` path gives it:
 * `messages` (tool-call arguments as objects), `bos_token`, `eos_token`, `enable_thinking`,
 * `tools` when there are any, `datetime` and `date_string`, `add_generation_prompt` (left
 * undefined when false, as llama.cpp does), then `vars`. A render that runs past its limits (a
 * template that loops or expands without bound) throws `ERR_INVALID_ARGUMENT` instead of hanging.
 */
export function renderChatTemplate(template: string, messages: readonly ChatMessage[], options: RenderChatTemplateOptions = {}): string {
  const t = compile(template);
  const now = options.now ?? new Date();
  const context: Record<string, unknown> = {
    messages: messages.map(templateMessage),
    bos_token: options.bosToken ?? '',
    eos_token: options.eosToken ?? '',
    enable_thinking: options.enableThinking ?? true,
    datetime: `${monthAbbr[now.getMonth()]} ${pad2(now.getDate())} ${now.getFullYear()}`,
    date_string: `${pad2(now.getDate())} ${monthAbbr[now.getMonth()]} ${now.getFullYear()}`,
  };
  if (options.tools !== undefined && options.tools.length > 0) context.tools = options.tools;
  Object.assign(context, options.vars);
  if (options.addGenerationPrompt ?? true) context.add_generation_prompt = true;
  const items = messages.length + (options.tools?.length ?? 0);
  const limits = { timeMs: defaultRenderLimits.timeMs + 2 * items, steps: defaultRenderLimits.steps + 20_000 * items, ...options.limits };
  try {
    return t.render(context, { now, limits, clock: renderClock() });
  } catch (err) {
    const why = err instanceof TemplateLimitError ? 'stopped'
      : err instanceof TemplateRaisedError ? 'the template raised an exception'
      : err instanceof RangeError ? 'stopped'
      : 'rendering failed';
    throw new MoerunError('ERR_INVALID_ARGUMENT', `chat template: ${why}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The control token a template writes right after an assistant message (`<|im_end|>`,
 * `<|eot_id|>`, `<|role_end|>`, ...): generation must stop there, even where the GGUF does not
 * mark it as end-of-generation. Found by rendering a probe conversation. @internal
 */
export function templateStopTokens(template: string, tokenizer: Tokenizer, bosToken: string, eosToken: string): number[] {
  const marker = 'MOERUN_PROBE_REPLY';
  let text: string;
  try {
    text = renderChatTemplate(template, [{ role: 'user', content: 'hi' }, { role: 'assistant', content: marker }], {
      addGenerationPrompt: false, bosToken, eosToken,
    });
  } catch {
    return [];
  }
  const at = text.lastIndexOf(marker);
  if (at < 0) return [];
  const after = text.slice(at + marker.length);
  if (after.length === 0) return [];
  const ids = tokenizer.tokenize(after, { special: true, addBos: false });
  const first = ids[0];
  return first !== undefined && tokenizer.isControl(first) ? [first] : [];
}

/** A piece of a chat answer: `text` (the answer) or `reasoning` (inside `<think>…</think>`). */
export interface ThinkPiece {
  text: string;
  reasoning: string;
}

/**
 * Splits streamed text at `<think>` / `</think>` tags (which may arrive split across chunks)
 * into answer text and reasoning. The tags themselves are never emitted. @internal
 */
export class ThinkSplitter {
  #inThink: boolean;
  #held = '';

  /** `startInThink`: the prompt already opened a `<think>` block (DeepSeek R1, QwQ templates). */
  constructor(startInThink = false) {
    this.#inThink = startInThink;
  }

  get inThink(): boolean {
    return this.#inThink;
  }

  /** Takes text and returns the pieces that can be emitted now, in order. */
  push(text: string): ThinkPiece[] {
    const out: ThinkPiece[] = [];
    let buf = this.#held + text;
    this.#held = '';
    for (;;) {
      const tag = this.#inThink ? '</think>' : '<think>';
      const i = buf.indexOf(tag);
      if (i < 0) break;
      this.#emit(out, buf.slice(0, i));
      buf = buf.slice(i + tag.length);
      this.#inThink = !this.#inThink;
    }
    // Hold back a suffix that may be the start of the next tag.
    const tag = this.#inThink ? '</think>' : '<think>';
    let keep = 0;
    for (let k = Math.min(tag.length - 1, buf.length); k > 0; k--) {
      if (buf.endsWith(tag.slice(0, k))) {
        keep = k;
        break;
      }
    }
    this.#held = buf.slice(buf.length - keep);
    this.#emit(out, buf.slice(0, buf.length - keep));
    return out;
  }

  /** Releases held text at the end. */
  flush(): ThinkPiece[] {
    const out: ThinkPiece[] = [];
    this.#emit(out, this.#held);
    this.#held = '';
    return out;
  }

  #emit(out: ThinkPiece[], s: string): void {
    if (s.length === 0) return;
    out.push(this.#inThink ? { text: '', reasoning: s } : { text: s, reasoning: '' });
  }
}

/** True if `prompt` leaves a `<think>` block open (the model starts by reasoning). @internal */
export function promptOpensThink(prompt: string): boolean {
  const open = prompt.lastIndexOf('<think>');
  return open >= 0 && prompt.indexOf('</think>', open) < 0;
}

/** A piece of a chat answer: answer `text`, `reasoning`, and the tool calls completed with it. */
export interface AnswerPiece extends ThinkPiece {
  toolCalls?: ToolCall[];
}

/**
 * Splits a chat answer as it streams: `<think>` reasoning apart from the answer, and (when the
 * conversation offers tools) the answer's tool calls apart from its text. Tool-call markers that
 * are special tokens (DeepSeek's, Llama's `<|python_tag|>`) are dropped by the detokenizer, so
 * their ids are given here and put back as text for the parser. @internal
 */
export class AnswerSplitter {
  readonly #think: ThinkSplitter;
  readonly #tools: ToolCallParser | undefined;
  readonly #markerTokens: ReadonlyMap<number, string>;

  constructor(think: ThinkSplitter, syntax: ToolCallSyntax | undefined, markerTokens: ReadonlyMap<number, string> = new Map()) {
    this.#think = think;
    this.#tools = syntax && new ToolCallParser(syntax);
    this.#markerTokens = markerTokens;
  }

  /** The tool-call markers of `syntax` that are single special tokens of `tokenizer`: id -> text. */
  static markerTokens(syntax: ToolCallSyntax | undefined, tokenizer: Tokenizer): Map<number, string> {
    const out = new Map<number, string>();
    for (const marker of syntax ? toolCallMarkers(syntax) : []) {
      const ids = tokenizer.tokenize(marker, { special: true, addBos: false });
      if (ids.length === 1 && tokenizer.isControl(ids[0]!)) out.set(ids[0]!, marker);
    }
    return out;
  }

  /** Takes the text of one generated token (and the token); returns the pieces to hand out now. */
  push(text: string, token: number): AnswerPiece[] {
    const marker = this.#markerTokens.get(token);
    return this.#split(this.#think.push(marker !== undefined && text === '' ? marker : text));
  }

  /** Releases what is held at the end of the answer. */
  flush(): AnswerPiece[] {
    const out = this.#split(this.#think.flush());
    if (this.#tools) out.push(...nonEmpty([this.#tools.flush()]));
    return out;
  }

  #split(pieces: ThinkPiece[]): AnswerPiece[] {
    if (!this.#tools) return pieces;
    const out: AnswerPiece[] = [];
    for (const p of pieces) {
      if (p.reasoning) out.push(p);
      else out.push(...nonEmpty([this.#tools.push(p.text)]));
    }
    return out;
  }
}

/** Tool-call parser output as answer pieces, dropping empty ones. */
function nonEmpty(pieces: ToolCallPiece[]): AnswerPiece[] {
  return pieces
    .filter((p) => p.text.length > 0 || p.toolCalls.length > 0)
    .map((p) => (p.toolCalls.length > 0 ? { text: p.text, reasoning: '', toolCalls: p.toolCalls } : { text: p.text, reasoning: '' }));
}
