/**
 * The request bodies of `/v1/chat/completions` and `/v1/completions`, checked field by field into
 * what a session takes. Every field OpenAI defines is either mapped, accepted at its default value
 * only, or refused with a 400 naming it; a field OpenAI does not define is a 400 too (as OpenAI's own
 * API answers "Unrecognized request argument supplied"), so nothing a client asks for is silently
 * ignored.
 */
import type { ChatMessage, ChatTool, ChatToolCall } from '../chat.js';
import type { JsonSchema } from '../grammar/index.js';
import type { GenerateOptions } from '../session.js';
import { badRequest, unsupported } from './api-error.js';

/** Sampling and stopping options shared by both endpoints (signal excluded: the server adds it). */
export type SamplingOptions = Omit<GenerateOptions, 'signal'>;

/** What both endpoints' requests have in common, checked. */
interface BaseRequest {
  /** The `model` field, as sent. */
  model: string;
  stream: boolean;
  /** `stream_options.include_usage`: a last chunk with `usage` and no choices. */
  includeUsage: boolean;
  sampling: SamplingOptions;
}

/** A checked `/v1/chat/completions` request. */
export interface ChatRequest extends BaseRequest {
  messages: ChatMessage[];
  /** `chat_template_kwargs.enable_thinking` (vLLM's and llama.cpp's extension). */
  enableThinking: boolean | undefined;
  /** The other `chat_template_kwargs`. */
  templateVars: Record<string, unknown>;
  /** Tools offered to the model (after `tool_choice`: none when it is `'none'`, the named one when it names one). */
  tools: ChatTool[];
  /** `'required'` when `tool_choice` is `'required'` or names a function. */
  toolChoice: 'auto' | 'required';
  /** `response_format`: the schema the answer must validate against (`{ type: 'object' }` for `json_object`). */
  jsonSchema: JsonSchema | undefined;
}

/** A checked `/v1/completions` request. */
export interface CompletionRequest extends BaseRequest {
  /** Text, or token ids of the served model's vocabulary. */
  prompt: string | number[];
}

/** OpenAI's fields both endpoints share, and the extensions (`top_k`, `min_p`, `repetition_penalty`) vLLM and llama.cpp accept. */
const commonFields = [
  'model', 'stream', 'stream_options', 'max_tokens', 'temperature', 'top_p', 'n', 'stop', 'seed',
  'presence_penalty', 'frequency_penalty', 'logit_bias', 'logprobs', 'user',
  'top_k', 'min_p', 'repetition_penalty',
] as const;

const chatFields = [
  ...commonFields, 'messages', 'max_completion_tokens', 'top_logprobs', 'tools', 'tool_choice', 'parallel_tool_calls',
  'response_format', 'store', 'metadata', 'reasoning_effort', 'chat_template_kwargs',
] as const;

const completionFields = [...commonFields, 'prompt', 'echo', 'suffix', 'best_of'] as const;

type Body = Record<string, unknown>;

/** `1.5 (number)`, `"x" (string)`: the received value in messages. */
function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return `${text.length > 60 ? `${text.slice(0, 57)}...` : text} (${value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value})`;
}

function isObject(value: unknown): value is Body {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Parses a request body's text; anything but a JSON object is a 400. */
export function parseJsonObject(text: string): Body {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw badRequest(`We could not parse the JSON body of your request: ${(err as Error).message}`, null, 'invalid_json');
  }
  if (!isObject(value)) throw badRequest(`The request body must be a JSON object, but received ${shown(value)}`, null, 'invalid_json');
  return value;
}

function checkFields(body: Body, allowed: readonly string[]): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw badRequest(`Unrecognized request argument supplied: ${key}`, key, 'unknown_parameter');
  }
}

/** Present and not null: OpenAI clients send `null` for "not set". */
function given(body: Body, key: string): boolean {
  return body[key] !== undefined && body[key] !== null;
}

function number(body: Body, key: string, min: number, max: number): number | undefined {
  if (!given(body, key)) return undefined;
  const v = body[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw badRequest(`Invalid value for '${key}': expected a number in [${min}, ${max}] but received ${shown(v)}`, key, 'invalid_value');
  }
  return v;
}

function integer(body: Body, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (!given(body, key)) return undefined;
  const v = body[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
    throw badRequest(`Invalid value for '${key}': expected ${range} but received ${shown(v)}`, key, 'invalid_value');
  }
  return v;
}

function boolean(body: Body, key: string): boolean | undefined {
  if (!given(body, key)) return undefined;
  const v = body[key];
  if (typeof v !== 'boolean') throw badRequest(`Invalid value for '${key}': expected a boolean but received ${shown(v)}`, key, 'invalid_type');
  return v;
}

/** A field accepted only at its neutral value (`isNeutral`), refused otherwise. */
function onlyNeutral(body: Body, key: string, isNeutral: (v: unknown) => boolean, what: string): void {
  if (given(body, key) && !isNeutral(body[key])) throw unsupported(key, what);
}

/** The fields both endpoints share. */
function parseBase(body: Body, defaultMaxTokens: number | undefined): BaseRequest {
  const model = body.model;
  if (typeof model !== 'string' || model.length === 0) {
    throw badRequest(`Missing required parameter: 'model' (a non-empty string; received ${shown(model)})`, 'model', 'missing_required_parameter');
  }
  const stream = boolean(body, 'stream') ?? false;
  let includeUsage = false;
  if (given(body, 'stream_options')) {
    if (!stream) throw badRequest("'stream_options' is only allowed when 'stream' is true", 'stream_options', 'invalid_value');
    const so = body.stream_options;
    if (!isObject(so)) throw badRequest(`Invalid value for 'stream_options': expected an object but received ${shown(so)}`, 'stream_options', 'invalid_type');
    for (const key of Object.keys(so)) {
      if (key !== 'include_usage') throw badRequest(`Unrecognized argument in 'stream_options': ${key}`, `stream_options.${key}`, 'unknown_parameter');
    }
    includeUsage = boolean(so, 'include_usage') ?? false;
  }
  const n = integer(body, 'n', 1, 128);
  if (n !== undefined && n !== 1) throw unsupported('n', `n = ${n} (more than one choice per request)`);
  onlyNeutral(body, 'presence_penalty', (v) => v === 0, 'presence_penalty other than 0 (use repetition_penalty)');
  onlyNeutral(body, 'frequency_penalty', (v) => v === 0, 'frequency_penalty other than 0 (use repetition_penalty)');
  onlyNeutral(body, 'logit_bias', (v) => isObject(v) && Object.keys(v).length === 0, 'logit_bias');
  if (given(body, 'user') && typeof body.user !== 'string') throw badRequest(`Invalid value for 'user': expected a string but received ${shown(body.user)}`, 'user', 'invalid_type');

  const sampling: SamplingOptions = {};
  const maxTokens = integer(body, 'max_tokens', 1) ?? defaultMaxTokens;
  if (maxTokens !== undefined) sampling.maxTokens = maxTokens;
  const temperature = number(body, 'temperature', 0, 2);
  if (temperature !== undefined) sampling.temperature = temperature;
  const topP = number(body, 'top_p', 0, 1);
  if (topP !== undefined) sampling.topP = topP;
  const topK = integer(body, 'top_k', 0);
  if (topK !== undefined) sampling.topK = topK;
  const minP = number(body, 'min_p', 0, 1);
  if (minP !== undefined) sampling.minP = minP;
  const repetitionPenalty = number(body, 'repetition_penalty', Number.MIN_VALUE, 10);
  if (repetitionPenalty !== undefined) sampling.repeatPenalty = repetitionPenalty;
  const seed = integer(body, 'seed', Number.MIN_SAFE_INTEGER);
  // OpenAI takes any 64-bit seed; the sampler takes 32 bits: the same seed always maps the same way.
  if (seed !== undefined) sampling.seed = Number(BigInt.asUintN(32, BigInt(seed)));
  if (given(body, 'stop')) {
    const stop = body.stop;
    const list = typeof stop === 'string' ? [stop] : stop;
    if (!Array.isArray(list) || list.length > 4 || list.some((s) => typeof s !== 'string' || s.length === 0)) {
      throw badRequest(`Invalid value for 'stop': expected a non-empty string or an array of up to 4 non-empty strings but received ${shown(stop)}`, 'stop', 'invalid_value');
    }
    if (list.length > 0) sampling.stop = list as string[];
  }
  return { model, stream, includeUsage, sampling };
}

/** One message's `content`: a string, or an array of text parts (joined); null only where allowed. */
function messageContent(value: unknown, param: string, nullable: boolean): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) {
    if (nullable) return '';
    throw badRequest(`Missing required parameter: '${param}'`, param, 'missing_required_parameter');
  }
  if (Array.isArray(value)) {
    return value
      .map((part: unknown, i) => {
        if (!isObject(part) || typeof part.type !== 'string') throw badRequest(`Invalid content part at '${param}[${i}]': expected { type, ... } but received ${shown(part)}`, `${param}[${i}]`, 'invalid_type');
        if (part.type !== 'text') throw unsupported(`${param}[${i}].type`, `Content part type '${part.type}' (text only)`);
        if (typeof part.text !== 'string') throw badRequest(`Invalid value for '${param}[${i}].text': expected a string but received ${shown(part.text)}`, `${param}[${i}].text`, 'invalid_type');
        return part.text;
      })
      .join('');
  }
  throw badRequest(`Invalid value for '${param}': expected a string or an array of text parts but received ${shown(value)}`, param, 'invalid_type');
}

const messageRoles = ['system', 'developer', 'user', 'assistant', 'tool'] as const;

function parseMessages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw badRequest(`Invalid value for 'messages': expected a non-empty array but received ${shown(value)}`, 'messages', value === undefined ? 'missing_required_parameter' : 'invalid_value');
  }
  return value.map((m: unknown, i): ChatMessage => {
    const param = `messages[${i}]`;
    if (!isObject(m)) throw badRequest(`Invalid value for '${param}': expected an object but received ${shown(m)}`, param, 'invalid_type');
    const role = m.role;
    if (typeof role !== 'string' || !(messageRoles as readonly string[]).includes(role)) {
      throw badRequest(`Invalid value for '${param}.role': expected one of ${messageRoles.map((r) => `'${r}'`).join(', ')} but received ${shown(role)}`, `${param}.role`, 'invalid_value');
    }
    const allowed = ['role', 'content', 'name', ...(role === 'assistant' ? ['reasoning_content', 'tool_calls', 'refusal'] : []), ...(role === 'tool' ? ['tool_call_id'] : [])];
    for (const key of Object.keys(m)) {
      if (!allowed.includes(key)) throw badRequest(`Unrecognized argument in '${param}': ${key}`, `${param}.${key}`, 'unknown_parameter');
    }
    if (given(m, 'name') && typeof m.name !== 'string') throw badRequest(`Invalid value for '${param}.name': expected a string but received ${shown(m.name)}`, `${param}.name`, 'invalid_type');
    // Templates know system/user/assistant/tool; OpenAI's newer 'developer' role is the system prompt.
    const message: ChatMessage = { role: role === 'developer' ? 'system' : role, content: messageContent(m.content, `${param}.content`, role === 'assistant') };
    if (given(m, 'reasoning_content')) message.reasoning = messageContent(m.reasoning_content, `${param}.reasoning_content`, false);
    if (given(m, 'name')) message.name = m.name as string;
    if (given(m, 'tool_calls')) message.tool_calls = parseToolCalls(m.tool_calls, `${param}.tool_calls`);
    if (role === 'tool') {
      if (typeof m.tool_call_id !== 'string' || m.tool_call_id.length === 0) {
        throw badRequest(`Missing required parameter: '${param}.tool_call_id' (a non-empty string)`, `${param}.tool_call_id`, 'missing_required_parameter');
      }
      message.tool_call_id = m.tool_call_id;
    }
    return message;
  });
}

/** An assistant message's `tool_calls`: `[{ id, type: 'function', function: { name, arguments } }]`. */
function parseToolCalls(value: unknown, param: string): ChatToolCall[] {
  if (!Array.isArray(value)) throw badRequest(`Invalid value for '${param}': expected an array but received ${shown(value)}`, param, 'invalid_type');
  return value.map((c: unknown, i): ChatToolCall => {
    const f = isObject(c) ? c.function : undefined;
    if (!isObject(c) || typeof c.id !== 'string' || c.type !== 'function' || !isObject(f) || typeof f.name !== 'string' || typeof f.arguments !== 'string') {
      throw badRequest(`Invalid value for '${param}[${i}]': expected { id: string, type: 'function', function: { name: string, arguments: string } } but received ${shown(c)}`, `${param}[${i}]`, 'invalid_value');
    }
    return { id: c.id, type: 'function', function: { name: f.name, arguments: f.arguments } };
  });
}

/** `tools`: `[{ type: 'function', function: { name, description?, parameters?, strict? } }]`. */
function parseTools(value: unknown): ChatTool[] {
  if (!Array.isArray(value)) throw badRequest(`Invalid value for 'tools': expected an array but received ${shown(value)}`, 'tools', 'invalid_type');
  return value.map((t: unknown, i): ChatTool => {
    const f = isObject(t) ? t.function : undefined;
    if (!isObject(t) || t.type !== 'function' || !isObject(f) || typeof f.name !== 'string' || f.name.length === 0
      || (given(f, 'description') && typeof f.description !== 'string') || (given(f, 'parameters') && !isObject(f.parameters))) {
      throw badRequest(`Invalid value for 'tools[${i}]': expected { type: 'function', function: { name: string, description?: string, parameters?: object } } but received ${shown(t)}`, `tools[${i}]`, 'invalid_value');
    }
    const tool: ChatTool = { type: 'function', function: { name: f.name } };
    if (given(f, 'description')) tool.function.description = f.description as string;
    if (given(f, 'parameters')) tool.function.parameters = f.parameters as Record<string, unknown>;
    return tool;
  });
}

/** `tools`, `tool_choice` and `parallel_tool_calls`, as chat() takes them. */
function parseToolOptions(body: Body): { tools: ChatTool[]; toolChoice: 'auto' | 'required' } {
  let tools = given(body, 'tools') ? parseTools(body.tools) : [];
  let toolChoice: 'auto' | 'required' = 'auto';
  if (given(body, 'tool_choice')) {
    const choice = body.tool_choice;
    if (tools.length === 0) throw badRequest("'tool_choice' is only allowed when 'tools' are specified", 'tool_choice', 'invalid_value');
    if (choice === 'none') tools = [];
    else if (choice === 'required') toolChoice = 'required';
    else if (choice !== 'auto') {
      const name = isObject(choice) && choice.type === 'function' && isObject(choice.function) ? choice.function.name : undefined;
      if (typeof name !== 'string') {
        throw badRequest(`Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or { type: 'function', function: { name } } but received ${shown(choice)}`, 'tool_choice', 'invalid_value');
      }
      tools = tools.filter((t) => t.function.name === name);
      if (tools.length === 0) throw badRequest(`Invalid value for 'tool_choice': no tool named '${name}' in 'tools'`, 'tool_choice', 'invalid_value');
      toolChoice = 'required';
    }
  }
  const parallel = boolean(body, 'parallel_tool_calls');
  // With 'auto' the model may answer with several calls; one call is guaranteed only when required.
  if (parallel === false && tools.length > 0 && toolChoice !== 'required') throw unsupported('parallel_tool_calls', "parallel_tool_calls false with tool_choice 'auto'");
  return { tools, toolChoice };
}

/** `response_format` as the JSON Schema the answer must validate against (undefined: free text). */
function parseResponseFormat(body: Body): JsonSchema | undefined {
  if (!given(body, 'response_format')) return undefined;
  const rf = body.response_format;
  if (!isObject(rf) || typeof rf.type !== 'string') {
    throw badRequest(`Invalid value for 'response_format': expected { type: 'text' | 'json_object' | 'json_schema' } but received ${shown(rf)}`, 'response_format', 'invalid_type');
  }
  if (rf.type === 'text') return undefined;
  if (rf.type === 'json_object') return { type: 'object' };
  if (rf.type !== 'json_schema') {
    throw badRequest(`Invalid value for 'response_format.type': expected 'text', 'json_object' or 'json_schema' but received ${shown(rf.type)}`, 'response_format.type', 'invalid_value');
  }
  const js = rf.json_schema;
  if (!isObject(js) || typeof js.name !== 'string' || js.name.length === 0) {
    throw badRequest(`Invalid value for 'response_format.json_schema': expected { name: string, schema?: object, strict?: boolean } but received ${shown(js)}`, 'response_format.json_schema', 'invalid_value');
  }
  if (given(js, 'schema') && !isObject(js.schema) && typeof js.schema !== 'boolean') {
    throw badRequest(`Invalid value for 'response_format.json_schema.schema': expected a JSON Schema object but received ${shown(js.schema)}`, 'response_format.json_schema.schema', 'invalid_type');
  }
  return given(js, 'schema') ? (js.schema as JsonSchema) : {};
}

/** Checks a `/v1/chat/completions` body. */
export function parseChatRequest(body: Body): ChatRequest {
  checkFields(body, chatFields);
  const messages = parseMessages(body.messages);
  const maxCompletion = integer(body, 'max_completion_tokens', 1);
  const base = parseBase(body, undefined);
  if (maxCompletion !== undefined) {
    if (given(body, 'max_tokens') && body.max_tokens !== maxCompletion) {
      throw badRequest("'max_tokens' and 'max_completion_tokens' disagree; send one of them", 'max_completion_tokens', 'invalid_value');
    }
    base.sampling.maxTokens = maxCompletion;
  }
  onlyNeutral(body, 'logprobs', (v) => v === false, 'logprobs');
  onlyNeutral(body, 'top_logprobs', (v) => v === 0, 'top_logprobs');
  onlyNeutral(body, 'store', (v) => v === false, 'store');
  onlyNeutral(body, 'metadata', (v) => isObject(v) && Object.keys(v).length === 0, 'metadata');
  onlyNeutral(body, 'reasoning_effort', () => false, 'reasoning_effort (use chat_template_kwargs.enable_thinking)');
  const { tools, toolChoice } = parseToolOptions(body);
  const jsonSchema = parseResponseFormat(body);
  let enableThinking: boolean | undefined;
  let templateVars: Record<string, unknown> = {};
  if (given(body, 'chat_template_kwargs')) {
    const kw = body.chat_template_kwargs;
    if (!isObject(kw)) throw badRequest(`Invalid value for 'chat_template_kwargs': expected an object but received ${shown(kw)}`, 'chat_template_kwargs', 'invalid_type');
    const { enable_thinking: thinking, ...rest } = kw;
    if (thinking !== undefined) enableThinking = boolean(kw, 'enable_thinking');
    templateVars = rest;
  }
  return { ...base, messages, enableThinking, templateVars, tools, toolChoice, jsonSchema };
}

/** OpenAI's default `max_tokens` for `/v1/completions`. */
export const defaultCompletionMaxTokens = 16;

/** Checks a `/v1/completions` body. */
export function parseCompletionRequest(body: Body): CompletionRequest {
  checkFields(body, completionFields);
  const base = parseBase(body, defaultCompletionMaxTokens);
  onlyNeutral(body, 'logprobs', (v) => v === 0, 'logprobs');
  onlyNeutral(body, 'echo', (v) => v === false, 'echo');
  onlyNeutral(body, 'suffix', (v) => v === '', 'suffix (fill-in-the-middle)');
  onlyNeutral(body, 'best_of', (v) => v === 1, 'best_of other than 1');
  let prompt = body.prompt;
  // One prompt per request: a one-element list is that prompt.
  if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === 'string' || Array.isArray(prompt[0]))) prompt = prompt[0];
  const isTokens = Array.isArray(prompt) && prompt.length > 0 && prompt.every((t) => typeof t === 'number' && Number.isInteger(t) && t >= 0);
  if (!(typeof prompt === 'string' && prompt.length > 0) && !isTokens) {
    if (Array.isArray(prompt) && prompt.length > 1 && prompt.every((p) => typeof p === 'string' || Array.isArray(p))) {
      throw unsupported('prompt', 'More than one prompt per request');
    }
    throw badRequest(`Invalid value for 'prompt': expected a non-empty string or a non-empty array of token ids but received ${shown(prompt)}`, 'prompt', prompt === undefined ? 'missing_required_parameter' : 'invalid_value');
  }
  return { ...base, prompt: prompt as string | number[] };
}
