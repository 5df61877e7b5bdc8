/**
 * Chat: rendering a model's Jinja chat template (`tokenizer.chat_template`) with
 * `@huggingface/jinja`, the template's own stop tokens, and splitting streamed text into the
 * answer and the `<think>…</think>` reasoning.
 */
import { Environment, Template } from '@huggingface/jinja';
import { MoerunError } from './errors.js';
import type { Tokenizer } from './tokenizer/index.js';
import { describe, invalid } from './validate.js';

/** One message of a conversation. */
export interface ChatMessage {
  /** `'system'`, `'user'`, `'assistant'` (or another role the template knows, e.g. `'tool'`). */
  role: string;
  /** The message text. */
  content: string;
  /** An assistant message's reasoning, for templates that render it (`reasoning_content`). */
  reasoning?: string;
}

/** Options of {@link renderChatTemplate}. */
export interface RenderChatTemplateOptions {
  /** End with the assistant header so the model answers next. Default true. */
  addGenerationPrompt?: boolean;
  /** Text of the BOS token (`bos_token`). Default ''. */
  bosToken?: string;
  /** Text of the EOS token (`eos_token`). Default ''. */
  eosToken?: string;
  /** Further template variables, e.g. `{ enable_thinking: false }`. */
  vars?: Record<string, unknown>;
}

const templateCache = new Map<string, Template>();

/**
 * @huggingface/jinja 0.5 ignores the argument of `str.strip/lstrip/rstrip(chars)` and always strips
 * whitespace, unlike Python and llama.cpp's Jinja: Qwen3's and QwQ's `content.lstrip('\n')` would
 * eat the leading spaces of a message. Wrap its string builtins so a `chars` argument is honoured.
 */
function patchStripBuiltins(): void {
  type Runtime = { value: unknown };
  const env = new Environment();
  env.set('s', '');
  const sample = (env as unknown as { variables: Map<string, object> }).variables.get('s');
  const proto = sample && Object.getPrototypeOf(sample);
  const desc = proto && Object.getOwnPropertyDescriptor(proto, 'builtins');
  if (!sample || !desc?.get || (proto as { moerunPatched?: boolean }).moerunPatched) return;
  const original = desc.get;
  const StringValue = sample.constructor as new (v: string) => Runtime;
  const strip = (s: string, chars: string, left: boolean, right: boolean): string => {
    let a = 0;
    let b = s.length;
    if (left) while (a < b && chars.includes(s[a]!)) a++;
    if (right) while (b > a && chars.includes(s[b - 1]!)) b--;
    return s.slice(a, b);
  };
  Object.defineProperty(proto, 'builtins', {
    configurable: true,
    get(this: Runtime) {
      const map = original.call(this) as Map<string, Runtime>;
      const fn = map.get('strip');
      if (!fn || (map as { moerun?: boolean }).moerun) return map;
      const FunctionValue = fn.constructor as new (f: (args: Runtime[]) => Runtime) => Runtime;
      for (const [name, left, right] of [['strip', true, true], ['lstrip', true, false], ['rstrip', false, true]] as const) {
        const builtin = map.get(name)!;
        map.set(name, new FunctionValue((args: Runtime[]) => {
          const chars = args[0]?.value;
          if (typeof chars !== 'string') return (builtin.value as (a: Runtime[]) => Runtime)(args);
          return new StringValue(strip(this.value as string, chars, left, right));
        }));
      }
      (map as { moerun?: boolean }).moerun = true;
      return map;
    },
  });
  (proto as { moerunPatched?: boolean }).moerunPatched = true;
}
patchStripBuiltins();

/**
 * @huggingface/jinja prints booleans as `true`/`false`; Python's Jinja and llama.cpp's print
 * `True`/`False` for `{{ flag }}`. Not covered: `flag | string` and `'x' ~ flag` / `'x' + flag` still give `true`.
 */
function patchBooleanOutput(): void {
  const env = new Environment();
  env.set('b', true);
  const sample = (env as unknown as { variables: Map<string, object> }).variables.get('b');
  const proto = sample && (Object.getPrototypeOf(sample) as { toString(): string; moerunPatched?: boolean; type?: string });
  if (!proto || (sample as { type?: string }).type !== 'BooleanValue' || Object.prototype.hasOwnProperty.call(proto, 'moerunPatched')) return;
  Object.defineProperty(proto, 'toString', {
    configurable: true,
    writable: true,
    value(this: { value: boolean }) {
      return this.value ? 'True' : 'False';
    },
  });
  Object.defineProperty(proto, 'moerunPatched', { value: true });
}
patchBooleanOutput();

function compile(source: string): Template {
  let t = templateCache.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (err) {
      throw new MoerunError('ERR_BAD_FORMAT', `chat template: cannot parse it: ${(err as Error).message}`, { cause: err });
    }
    if (templateCache.size >= 16) templateCache.delete(templateCache.keys().next().value!);
    templateCache.set(source, t);
  }
  return t;
}

/** Checks a messages array: a non-empty array of `{ role, content }` with string fields. @internal */
export function checkMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw invalid(`Expected a non-empty array of messages for messages but received ${describe(messages)}`);
  }
  messages.forEach((m: unknown, i) => {
    const o = m as Partial<ChatMessage> | null;
    if (o === null || typeof o !== 'object' || typeof o.role !== 'string' || o.role.length === 0 || typeof o.content !== 'string') {
      throw invalid(`Expected { role: string, content: string } for messages[${i}] but received ${describe(m)}`);
    }
    if (o.reasoning !== undefined && typeof o.reasoning !== 'string') {
      throw invalid(`Expected a string for messages[${i}].reasoning but received ${describe(o.reasoning)}`);
    }
  });
  return messages as ChatMessage[];
}

/**
 * Renders a Jinja chat template the way llama.cpp's `--jinja` path does: `messages`,
 * `add_generation_prompt`, `bos_token`, `eos_token`, plus `vars`. An assistant message's
 * `reasoning` is passed as `reasoning_content`.
 */
export function renderChatTemplate(template: string, messages: readonly ChatMessage[], options: RenderChatTemplateOptions = {}): string {
  const t = compile(template);
  const msgs = messages.map((m) => (m.reasoning === undefined ? { role: m.role, content: m.content } : { role: m.role, content: m.content, reasoning_content: m.reasoning }));
  try {
    return t.render({
      ...options.vars,
      messages: msgs,
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: options.bosToken ?? '',
      eos_token: options.eosToken ?? '',
    });
  } catch (err) {
    throw new MoerunError('ERR_INVALID_ARGUMENT', `chat template: rendering failed: ${(err as Error).message}`, { cause: err });
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
