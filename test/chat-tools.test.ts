// Tool calls: finding a template's tool-call syntax, parsing real-looking model outputs of each
// family (Qwen3/QwQ/Ling 2.0 `<tool_call>`, DeepSeek R1 and V3.1, Llama 3.1) into calls, streamed
// split at every position; rendering tools, tool calls and results through the real templates and
// parsing back what the template writes for an assistant's call; and chat() end to end on
// synthetic Qwen3-MoE and Llama models carrying Qwen3's and Llama 3.1's templates (toolChoice
// 'required' through the grammar, then the call and its result as the next turn).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, MoerunError, renderChatTemplate, toolCallSyntaxOf, type ChatMessage, type ChatTool, type Model } from 'moerun';
import { AnswerSplitter, ThinkSplitter } from '../lib/chat.js';
import { requiredToolCallGrammar, ToolCallParser, type ToolCall, type ToolCallSyntax } from '../lib/chat/tool-calls.js';
import { writeGguf } from '../lib/gguf/writer.js';
import { makeModelParts, makeModelSpec } from '../scripts/make-model.js';
import { readGgufInfo } from '../lib/index.js';
import { StreamingDetokenizer, Tokenizer } from '../lib/tokenizer/index.js';
import { hasData } from './helpers/run.js';
import { sharedDir } from './helpers/shared.js';

const fixture = (name: string): string => readFileSync(path.join(__dirname, 'fixtures/templates', name), 'utf8');
const templates = {
  qwen3: fixture('Qwen-Qwen3-0.6B.jinja'),
  qwq: fixture('Qwen-QwQ-32B.jinja'),
  r1: fixture('deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja'),
  llama31: fixture('meta-llama-Llama-3.1-8B-Instruct.jinja'),
  ling2: fixture('inclusionAI-Ling-1T.jinja'),
};

const tools: ChatTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather of a city.',
      parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Zürich'] }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city'] },
    },
  },
  { type: 'function', function: { name: 'search', description: 'Searches the web.', parameters: { type: 'object', properties: { query: { type: 'string', maxLength: 12 } }, required: ['query'] } } },
];

/** Calls without their random ids, arguments parsed, for comparison. */
const plain = (calls: readonly ToolCall[]) => calls.map((c) => ({ name: c.name, arguments: JSON.parse(c.arguments) as unknown }));

/** Runs the parser over `pieces` then flush: all text and all calls. */
function parse(syntax: ToolCallSyntax, pieces: readonly string[]): { text: string; calls: ToolCall[] } {
  const p = new ToolCallParser(syntax);
  let text = '';
  const calls: ToolCall[] = [];
  for (const piece of [...pieces.map((s) => p.push(s)), p.flush()]) {
    text += piece.text;
    calls.push(...piece.toolCalls);
  }
  return { text, calls };
}

interface Case {
  syntax: ToolCallSyntax;
  output: string;
  text: string;
  calls: { name: string; arguments: unknown }[];
}

// Outputs as the models write them (the formats of their templates and of llama.cpp's parsers).
const cases: Record<string, Case> = {
  'Qwen3: text, then two calls': {
    syntax: 'hermes',
    output: 'Let me check both.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}\n</tool_call>\n<tool_call>\n{"name": "search", "arguments": {"query": "crêpes \\"best\\" 🥞"}}\n</tool_call>',
    text: 'Let me check both.\n\n',
    calls: [{ name: 'get_weather', arguments: { city: 'Zürich', unit: 'celsius' } }, { name: 'search', arguments: { query: 'crêpes "best" 🥞' } }],
  },
  'QwQ / Ling 2.0: a call whose closing tag never came (stopped at end of turn)': {
    syntax: 'hermes',
    output: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n',
    text: '',
    calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }],
  },
  'hermes: arguments given as a JSON string': {
    syntax: 'hermes',
    output: '<tool_call>{"name": "search", "arguments": "{\\"query\\": \\"x\\"}"}</tool_call>',
    text: '',
    calls: [{ name: 'search', arguments: { query: 'x' } }],
  },
  'hermes: a block that is not a call stays text': {
    syntax: 'hermes',
    output: 'Use <tool_call>not json</tool_call> like this, 1 < 2.',
    text: 'Use <tool_call>not json</tool_call> like this, 1 < 2.',
    calls: [],
  },
  'hermes: plain text with angle brackets': {
    syntax: 'hermes',
    output: 'a <b> c <tool d',
    text: 'a <b> c <tool d',
    calls: [],
  },
  'DeepSeek R1: two calls in ```json blocks': {
    syntax: 'deepseek',
    output: 'Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"city": "Paris"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{"query": "météo"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    text: 'Checking.',
    calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }, { name: 'search', arguments: { query: 'météo' } }],
  },
  'DeepSeek V3.1: name<｜tool▁sep｜>arguments': {
    syntax: 'deepseek',
    output: '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Zürich"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    text: '',
    calls: [{ name: 'get_weather', arguments: { city: 'Zürich' } }],
  },
  'DeepSeek: a call without the section marker': {
    syntax: 'deepseek',
    output: '<｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{"query": "q"}\n```<｜tool▁call▁end｜>',
    text: '',
    calls: [{ name: 'search', arguments: { query: 'q' } }],
  },
  'DeepSeek: plain answer': {
    syntax: 'deepseek',
    output: 'The answer is 42 <｜ not a marker.',
    text: 'The answer is 42 <｜ not a marker.',
    calls: [],
  },
  'Llama 3.1: the whole answer is a JSON call with "parameters"': {
    syntax: 'llama3',
    output: '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}',
    text: '',
    calls: [{ name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } }],
  },
  'Llama 3.1: <|python_tag|> with JSON': {
    syntax: 'llama3',
    output: '<|python_tag|>{"name": "search", "parameters": {"query": "moerun"}}',
    text: '',
    calls: [{ name: 'search', arguments: { query: 'moerun' } }],
  },
  'Llama 3.1: a built-in tool call': {
    syntax: 'llama3',
    output: '<|python_tag|>brave_search.call(query="Zürich weather", count=3)',
    text: '',
    calls: [{ name: 'brave_search', arguments: { query: 'Zürich weather', count: 3 } }],
  },
  'Llama 3.1: a plain answer': {
    syntax: 'llama3',
    output: 'It is sunny in Paris {probably}.',
    text: 'It is sunny in Paris {probably}.',
    calls: [],
  },
  'Llama 3.1: JSON that is not a call stays text': {
    syntax: 'llama3',
    output: '  {"temperature": 21}',
    text: '  {"temperature": 21}',
    calls: [],
  },
};

describe('tool-call syntax of a template', () => {
  it('is found from the template text for each seed family', () => {
    expect(toolCallSyntaxOf(templates.qwen3)).toBe('hermes');
    expect(toolCallSyntaxOf(templates.qwq)).toBe('hermes');
    expect(toolCallSyntaxOf(templates.ling2)).toBe('hermes');
    expect(toolCallSyntaxOf(templates.r1)).toBe('deepseek');
    expect(toolCallSyntaxOf(templates.llama31)).toBe('llama3');
    expect(toolCallSyntaxOf('{% for m in messages %}{{ m.content }}{% endfor %}')).toBeUndefined();
  });
});

describe('tool-call parsers on real-looking outputs', () => {
  for (const [name, c] of Object.entries(cases)) {
    it(`${name}: at once, split at every position, and one character at a time`, () => {
      const whole = parse(c.syntax, [c.output]);
      expect(whole.text).toBe(c.text);
      expect(plain(whole.calls)).toEqual(c.calls);
      for (const call of whole.calls) expect(call.id).toMatch(/^call_[A-Za-z0-9]{24}$/);
      const chars = Array.from(c.output);
      for (let i = 0; i <= chars.length; i++) {
        const split = parse(c.syntax, [chars.slice(0, i).join(''), chars.slice(i).join('')]);
        expect({ at: i, text: split.text, calls: plain(split.calls) }).toEqual({ at: i, text: c.text, calls: c.calls });
      }
      const byChar = parse(c.syntax, chars);
      expect({ text: byChar.text, calls: plain(byChar.calls) }).toEqual({ text: c.text, calls: c.calls });
    });
  }

  it('hands out text as soon as it cannot be markup, and a call as soon as it closes', () => {
    const p = new ToolCallParser('hermes');
    expect(p.push('Hello <to')).toEqual({ text: 'Hello ', toolCalls: [] });
    expect(p.push('ol_call>\n{"name": "search", ')).toEqual({ text: '', toolCalls: [] });
    const closed = p.push('"arguments": {"query": "a"}}\n</tool_call> done');
    expect(plain(closed.toolCalls)).toEqual([{ name: 'search', arguments: { query: 'a' } }]);
    expect(closed.text).toBe(' done');
    const llama = new ToolCallParser('llama3');
    expect(llama.push('  ')).toEqual({ text: '', toolCalls: [] });
    expect(llama.push('Sure, ')).toEqual({ text: '  Sure, ', toolCalls: [] });
  });

  it('special-token markers the detokenizer drops are put back by token id (DeepSeek)', () => {
    const ids = new Map([[101, '<｜tool▁calls▁begin｜>'], [102, '<｜tool▁call▁begin｜>'], [103, '<｜tool▁sep｜>'], [104, '<｜tool▁call▁end｜>'], [105, '<｜tool▁calls▁end｜>']]);
    const split = new AnswerSplitter(new ThinkSplitter(true), 'deepseek', ids);
    const stream: [string, number][] = [
      ['I should look it up.', 1], ['</think>', 2], ['\n\n', 3], ['', 101], ['', 102], ['function', 4], ['', 103], ['get_weather\n```json\n{"city": ', 5],
      ['"Paris"}\n```', 6], ['', 104], ['', 105],
    ];
    const pieces = [...stream.flatMap(([text, token]) => split.push(text, token)), ...split.flush()];
    expect(pieces.map((p) => p.reasoning).join('')).toBe('I should look it up.');
    expect(pieces.map((p) => p.text).join('')).toBe('\n\n');
    expect(plain(pieces.flatMap((p) => p.toolCalls ?? []))).toEqual([{ name: 'get_weather', arguments: { city: 'Paris' } }]);
  });
});

// Real vocabularies (llama.cpp's conformance files): a model's answer tokenized as the model would
// write it, detokenized one token at a time as chat() does (special tokens dropped), then split.
const vocabDir = path.join(sharedDir() ?? '/nonexistent', 'vocab');
const vocab = (name: string) => path.join(vocabDir, `ggml-vocab-${name}.gguf`);
const haveVocabs = hasData(existsSync(vocab('llama-bpe')) && existsSync(vocab('qwen2')), `llama.cpp's vocab files (${vocabDir})`, 'chat-tools.test');

describe.runIf(haveVocabs)('tool calls streamed token by token through real vocabularies', () => {
  async function answerThrough(name: string, syntax: ToolCallSyntax, output: string, rename: Record<number, string> = {}) {
    const metadata = { ...(await readGgufInfo(vocab(name))).metadata };
    const tokens = [...(metadata['tokenizer.ggml.tokens'] as string[])];
    for (const [id, text] of Object.entries(rename)) tokens[Number(id)] = text;
    const tok = Tokenizer.fromGgufMetadata({ ...metadata, 'tokenizer.ggml.tokens': tokens });
    const markers = AnswerSplitter.markerTokens(syntax, tok);
    const split = new AnswerSplitter(new ThinkSplitter(), syntax, markers);
    const detok = new StreamingDetokenizer(tok);
    const pieces = Array.from(tok.tokenize(output, { special: true, addBos: false })).flatMap((id) => split.push(detok.push(id), id));
    pieces.push(...split.push(detok.flush(), -1), ...split.flush());
    return { markers, text: pieces.map((p) => p.text).join(''), calls: plain(pieces.flatMap((p) => p.toolCalls ?? [])) };
  }

  it("Llama 3.1: <|python_tag|> is a control token the detokenizer drops; it is put back for the parser", async () => {
    // Llama 3.1's vocabulary is Llama 3's (the conformance file) with control token 128010 named <|python_tag|>.
    // A built-in tool's call: without the tag put back it would be plain text.
    const r = await answerThrough('llama-bpe', 'llama3', '<|python_tag|>brave_search.call(query="Zürich")', { 128010: '<|python_tag|>' });
    expect([...r.markers.values()]).toEqual(['<|python_tag|>']);
    expect(r.calls).toEqual([{ name: 'brave_search', arguments: { query: 'Zürich' } }]);
    expect(r.text).toBe('');
  });

  it('Qwen2/Qwen3: <tool_call> arrives as text (not a control token) and parses', async () => {
    const r = await answerThrough('qwen2', 'hermes', 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>');
    expect(r.calls).toEqual([{ name: 'get_weather', arguments: { city: 'Paris' } }]);
    expect(r.text).toBe('Checking.\n');
  });
});

describe("toolChoice 'required': the grammar of one call", () => {
  it('<tool_call> syntax: accepts a call of a given tool with schema-valid arguments, nothing else', () => {
    const g = requiredToolCallGrammar('hermes', tools, undefined);
    expect(g.matches('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>')).toBe(true);
    expect(g.matches('<tool_call>\n{"name": "search", "arguments": {"query": "crêpes"}}\n</tool_call>')).toBe(true);
    expect(g.matches('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>')).toBe(false);  // not in the enum
    expect(g.matches('<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>')).toBe(false);  // no such tool
    expect(g.matches('<tool_call>\n{"name": "search", "arguments": {}}\n</tool_call>')).toBe(false);  // query is required
    expect(g.matches('Sure! <tool_call>\n{"name": "search", "arguments": {"query": "x"}}\n</tool_call>')).toBe(false);
  });

  it('Llama 3 syntax: the bare JSON call with "parameters"', () => {
    const g = requiredToolCallGrammar('llama3', tools, undefined);
    expect(g.matches('{"name": "get_weather", "parameters": {"city": "Zürich", "unit": "celsius"}}')).toBe(true);
    expect(g.matches('{"name": "get_weather", "arguments": {"city": "Zürich"}}')).toBe(false);
  });

  it('is refused where it cannot be built', () => {
    expect(() => requiredToolCallGrammar('deepseek', tools, undefined)).toThrow(/toolChoice 'required' is supported for the <tool_call> .* not for deepseek/);
    expect(() => requiredToolCallGrammar(undefined, tools, undefined)).toThrow(/not for a template without a known tool-call syntax/);
    expect(() => requiredToolCallGrammar('hermes', [], undefined)).toThrow(/needs tools/);
    expect(() => requiredToolCallGrammar('hermes', tools, { type: 'object' })).toThrow(/cannot be combined with grammar or jsonSchema/);
  });
});

// The text of an assistant turn, between the family's assistant header and its end-of-turn marker.
const turns: Record<keyof typeof templates, { header: string; end: string }> = {
  qwen3: { header: '<|im_start|>assistant\n', end: '<|im_end|>' },
  qwq: { header: '<|im_start|>assistant\n', end: '<|im_end|>' },
  ling2: { header: '<role>ASSISTANT</role>', end: '<|role_end|>' },
  r1: { header: '<｜Assistant｜>', end: '<｜end▁of▁sentence｜>' },
  llama31: { header: '<|start_header_id|>assistant<|end_header_id|>\n\n', end: '<|eot_id|>' },
};

describe('tools through the real templates', () => {
  const call = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city": "Zürich", "unit": "celsius"}' } };
  const conversation: ChatMessage[] = [
    { role: 'system', content: 'You are helpful.' },
    { role: 'user', content: 'Weather in Zürich?' },
    { role: 'assistant', content: null, tool_calls: [call] },
    { role: 'tool', tool_call_id: 'call_1', name: 'get_weather', content: '{"temperature": 21}' },
    { role: 'user', content: 'Thanks! And now?' },
  ];

  for (const [family, template] of Object.entries(templates) as [keyof typeof templates, string][]) {
    it(`${family}: tool definitions and the tool result are rendered; the assistant's call, as the template writes it, parses back`, () => {
      const text = renderChatTemplate(template, conversation, { tools });
      if (family !== 'r1') expect(text).toContain('get_weather');  // R1's template does not describe tools
      expect(text).toMatch(/temperature\\?": 21/);  // Llama 3.1 writes the result as a JSON string
      // The assistant turn that carries the call, parsed as the model's own output would be.
      const history = renderChatTemplate(template, conversation.slice(0, 3), { tools, addGenerationPrompt: false });
      const { header, end } = turns[family];
      const start = history.indexOf(header) + header.length;
      const stop = history.indexOf(end, start);
      const turn = history.slice(start, stop < 0 ? undefined : stop);
      const syntax = toolCallSyntaxOf(template)!;
      const split = new AnswerSplitter(new ThinkSplitter(), syntax);
      const pieces = [...split.push(turn, -1), ...split.flush()];
      expect(plain(pieces.flatMap((p) => p.toolCalls ?? []))).toEqual([{ name: 'get_weather', arguments: { city: 'Zürich', unit: 'celsius' } }]);
      expect(pieces.map((p) => p.text).join('').trim()).toBe('');
    });
  }

  it('refuses bad tools and tool calls with clear errors', () => {
    const user: ChatMessage[] = [{ role: 'user', content: 'hi' }];
    expect(() => renderChatTemplate(templates.qwen3, [{ role: 'assistant', content: null, tool_calls: [{ ...call, function: { name: 'x', arguments: '{bad' } }] }]))
      .toThrow(/Expected JSON text for messages\[0\]\.tool_calls\[0\]\.function\.arguments/);
    expect(() => renderChatTemplate(templates.qwen3, user, { tools })).not.toThrow();
  });
});

// Synthetic models carrying a real family's template, as converted GGUFs do.
const families = [
  { name: "a synthetic Qwen3-MoE model with Qwen3's template", arch: 'qwen3moe', template: templates.qwen3, markup: '<tool_call>' },
  { name: "a synthetic Llama model with Llama 3.1's template", arch: 'llama', template: templates.llama31, markup: '{"name"' },
] as const;

for (const family of families) describe(`chat() with tools on ${family.name}`, () => {
  let dir: string;
  let model: Model;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'moerun-tools-'));
    const file = path.join(dir, `${family.arch}-tools.gguf`);
    const options = { arch: family.arch, out: file, tokenizer: 'bpe', nVocab: 1024, nExpert: family.arch === 'qwen3moe' ? 4 : 0, nExpertUsed: family.arch === 'qwen3moe' ? 2 : 0, seed: 7 } as const;
    const spec = makeModelSpec(options);
    const { metadata } = makeModelParts(options);  // the same metadata, as a list to extend
    await writeGguf(file, { ...spec, metadata: [...metadata, ['tokenizer.chat_template', family.template]] });
    model = await loadModel(file, { threads: 2 });
  });
  afterAll(async () => {
    await model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const messages: ChatMessage[] = [{ role: 'user', content: 'What is the weather in Paris?' }];

  it("toolChoice 'required': one call of a given tool, with arguments its schema accepts, no markup in text; the call and its result make the next turn", async () => {
    const session = model.createSession({ contextSize: 2048 });
    const stream = session.chat(messages, { tools, toolChoice: 'required', maxTokens: 300, temperature: 0.8, seed: 3 });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const calls = chunks.flatMap((c) => c.toolCalls ?? []);
    expect(calls).toHaveLength(1);
    const [only] = calls;
    expect(['get_weather', 'search']).toContain(only!.name);
    const args = JSON.parse(only!.arguments) as Record<string, unknown>;
    if (only!.name === 'get_weather') expect(['Paris', 'Zürich']).toContain(args.city);
    else expect(typeof args.query).toBe('string');
    const text = chunks.map((c) => c.text).join('');
    expect(text).not.toContain(family.markup);
    expect(text.trim()).toBe('');
    expect(stream.stats!.stopReason).toBe('eog');
    // The next turn: the call in OpenAI's shape and the tool's result, through the template.
    const next = session.chat([
      ...messages,
      { role: 'assistant', content: null, tool_calls: [{ id: only!.id, type: 'function', function: { name: only!.name, arguments: only!.arguments } }] },
      { role: 'tool', tool_call_id: only!.id, name: only!.name, content: '{"temperature": 21}' },
    ], { tools, maxTokens: 4, temperature: 0 });
    await next.collect();
    expect(next.stats!.reusedTokens).toBeGreaterThan(100);  // the first turn's prompt is reused
  });

  it("toolChoice 'auto': tools are rendered into the prompt; whatever the model writes comes out as text or calls", async () => {
    const plainSession = model.createSession({ contextSize: 2048 });
    const withoutTools = plainSession.chat(messages, { maxTokens: 4, temperature: 0 });
    await withoutTools.collect();
    const session = model.createSession({ contextSize: 2048 });
    const stream = session.chat(messages, { tools, maxTokens: 16, temperature: 0 });
    const answer = await stream.collect();
    expect(stream.stats!.promptTokens).toBeGreaterThan(withoutTools.stats!.promptTokens + 50);  // the tools' JSON
    expect(answer.text).not.toContain('<tool_call>');
    expect(Array.isArray(answer.toolCalls)).toBe(true);
  });

  it('validates tools and toolChoice', () => {
    const session = model.createSession({ contextSize: 256 });
    expect(() => session.chat(messages, { tools: [{ type: 'function' }] as never })).toThrow(/Expected \{ type: 'function', function: \{ name: string/);
    expect(() => session.chat(messages, { tools: 'x' as never })).toThrow(/Expected an array of tools for tools/);
    expect(() => session.chat(messages, { tools, toolChoice: 'sometimes' as never })).toThrow(/Expected 'auto' or 'required' for toolChoice/);
    expect(() => session.chat(messages, { toolChoice: 'required' })).toThrow(MoerunError);
    expect(() => session.chat(messages, { tools, toolChoice: 'required', grammar: 'root ::= "x"' })).toThrow(/cannot be combined with grammar/);
  });
});
