// Chat templates (rendered by lib/chat/jinja.ts) against llama.cpp's expectations and against
// llama.cpp's own Jinja renderer (through node-llama-cpp), the <think> splitter, and session.chat()
// on stories260K: KV-cache reuse across turns, errors.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledModelPath, loadModel, renderChatTemplate, type ChatMessage, type Model } from 'moerun';
import { run } from './helpers/run.js';

const fixture = (name: string): string => readFileSync(path.join(__dirname, 'fixtures/templates', name), 'utf8');

// llama.cpp's tests/test-chat-template.cpp conversation.
const conversation: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant' },
  { role: 'user', content: 'Hello' },
  { role: 'assistant', content: 'Hi there' },
  { role: 'user', content: 'Who are you' },
  { role: 'assistant', content: '   I am an assistant   ' },
  { role: 'user', content: 'Another question' },
];

const system0: ChatMessage = { role: 'system', content: 'You are a helpful assistant' };

// test-chat-template.cpp's expected output for ChatML (teknium/OpenHermes-2.5), which Qwen3 and
// QwQ produce for this conversation (no tools, no reasoning in the history).
const chatml =
  '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n' +
  '<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n';

describe('chat templates', () => {
  it('Qwen3: ChatML; enable_thinking=false adds an empty think block; history reasoning is dropped', () => {
    const t = fixture('Qwen-Qwen3-0.6B.jinja');
    expect(renderChatTemplate(t, conversation, { vars: { enable_thinking: true } })).toBe(chatml);
    expect(renderChatTemplate(t, conversation, { vars: { enable_thinking: false } })).toBe(`${chatml}<think>\n\n</think>\n\n`);
    const withThoughts = conversation.map((m, i) => (i === 2 ? { ...m, content: '<think>\nhmm\n</think>\n\nHi there' } : m));
    expect(renderChatTemplate(t, withThoughts)).toBe(chatml);
    expect(renderChatTemplate(t, conversation, { addGenerationPrompt: false })).toBe(chatml.slice(0, -'<|im_start|>assistant\n'.length));
  });

  it('QwQ: ChatML, the answer starts inside <think>', () => {
    const t = fixture('Qwen-QwQ-32B.jinja');
    expect(renderChatTemplate(t, conversation, { vars: { enable_thinking: true } })).toBe(`${chatml}<think>\n`);
    expect(renderChatTemplate(t, conversation, { vars: { enable_thinking: false } })).toBe(`${chatml}<think>\n</think>`);
  });

  it('DeepSeek R1: BOS + system, full-width markers, opens <think>', () => {
    const t = fixture('deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja');
    const bos = '<｜begin▁of▁sentence｜>';
    const eos = '<｜end▁of▁sentence｜>';
    const expected =
      `${bos}You are a helpful assistant<｜User｜>Hello<｜Assistant｜>Hi there${eos}<｜User｜>Who are you` +
      `<｜Assistant｜>   I am an assistant   ${eos}<｜User｜>Another question<｜Assistant｜><think>\n`;
    expect(renderChatTemplate(t, conversation, { bosToken: bos, eosToken: eos, vars: { enable_thinking: true } })).toBe(expected);
    expect(renderChatTemplate(t, conversation, { bosToken: bos, eosToken: eos, vars: { enable_thinking: false } })).toBe(`${expected}</think>`);
    // Reasoning in the history is cut at </think>.
    const withThoughts = conversation.map((m, i) => (i === 2 ? { ...m, content: 'hmm</think>Hi there' } : m));
    expect(renderChatTemplate(t, withThoughts, { bosToken: bos, eosToken: eos, vars: { enable_thinking: true } })).toBe(expected);
  });

  it("Llama 3: test-chat-template.cpp's template and expected output", () => {
    const t =
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}";
    expect(renderChatTemplate(t, conversation)).toBe(
      '<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it('Llama 3.1 Instruct: date header, trimmed contents', () => {
    const t = fixture('meta-llama-Llama-3.1-8B-Instruct.jinja');
    const h = (role: string): string => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
    // date_string: the render time, as llama.cpp's chat layer sets it.
    expect(renderChatTemplate(t, conversation, { bosToken: '<|begin_of_text|>', now: new Date(2024, 6, 26, 12) })).toBe(
      `<|begin_of_text|>${h('system')}Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant<|eot_id|>` +
        `${h('user')}Hello<|eot_id|>${h('assistant')}Hi there<|eot_id|>${h('user')}Who are you<|eot_id|>` +
        `${h('assistant')}I am an assistant<|eot_id|>${h('user')}Another question<|eot_id|>${h('assistant')}`,
    );
    expect(renderChatTemplate(t, conversation, { bosToken: '<|begin_of_text|>', vars: { date_string: '1 Jan 2025' } })).toContain('Today Date: 1 Jan 2025\n');
  });

  it("Ling (bailing): test-chat-template.cpp's inclusionAI/Ling-lite template and expected output", () => {
    const t =
      "{% for message in messages %}{% set role = message['role'] | lower %}{% if role == 'user' %}{% set role = 'HUMAN' %}{% endif %}{% set role = role | upper %}{{ '<role>' + role + '</role>' + message['content'] }}{% endfor %}{% if add_generation_prompt %}{{ '<role>ASSISTANT</role>' }}{% endif %}";
    expect(renderChatTemplate(t, conversation)).toBe(
      '<role>SYSTEM</role>You are a helpful assistant<role>HUMAN</role>Hello<role>ASSISTANT</role>Hi there<role>HUMAN</role>Who are you<role>ASSISTANT</role>   I am an assistant   <role>HUMAN</role>Another question<role>ASSISTANT</role>',
    );
  });

  it('Ling 2.0 (inclusionAI Ling-1T GGUF template): llama-server\'s own chat_example for it', () => {
    // The template as embedded in a Ling-1T GGUF (see fixtures/templates/README.md); the expected
    // string is the chat_example llama-server logged for it.
    const t = fixture('inclusionAI-Ling-1T.jinja');
    const example: ChatMessage[] = [system0, { role: 'user', content: 'Hello' }, { role: 'assistant', content: 'Hi there' }, { role: 'user', content: 'How are you?' }];
    expect(renderChatTemplate(t, example)).toBe(
      '<role>SYSTEM</role>You are a helpful assistant\ndetailed thinking off<|role_end|><role>HUMAN</role>Hello<|role_end|><role>ASSISTANT</role>Hi there<|role_end|><role>HUMAN</role>How are you?<|role_end|><role>ASSISTANT</role>',
    );
    // Reasoning after the last user turn is rendered in a <think> block; earlier turns drop it.
    expect(renderChatTemplate(t, [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!', reasoning: 'greeting' }], { addGenerationPrompt: false })).toBe(
      '<role>SYSTEM</role>detailed thinking off<|role_end|><role>HUMAN</role>Hi<|role_end|><role>ASSISTANT</role>\n<think>\ngreeting\n</think>\n\nHello!<|role_end|>',
    );
  });

  it("Ling 2.0 (bailing2) IMITATION, not a real template: a Jinja transcription of llama.cpp's LLM_CHAT_TEMPLATE_BAILING2 formatter gives its output", () => {
    // Not a model's template (the real one is inclusionAI-Ling-1T.jinja). llama.cpp ships no Ling 2.0 .jinja; this transcribes src/llama-chat.cpp's bailing2 branch, and
    // the expected strings are what that C++ code writes (default system "detailed thinking off").
    const t = fixture('ling-2.0-bailing2.jinja');
    const body =
      '<role>HUMAN</role>Hello<|role_end|><role>ASSISTANT</role>Hi there<|role_end|><role>HUMAN</role>Who are you<|role_end|>' +
      '<role>ASSISTANT</role>   I am an assistant   <|role_end|><role>HUMAN</role>Another question<|role_end|><role>ASSISTANT</role>';
    expect(renderChatTemplate(t, conversation)).toBe(`<role>SYSTEM</role>You are a helpful assistant<|role_end|>${body}`);
    expect(renderChatTemplate(t, conversation.slice(1))).toBe(`<role>SYSTEM</role>detailed thinking off<|role_end|>${body}`);
  });

  it('reports template errors and bad messages clearly', () => {
    expect(() => renderChatTemplate('{% for %}', conversation)).toThrow(/chat template: cannot parse it/);
    expect(() => renderChatTemplate("{{ raise_exception('no system') }}", conversation)).toThrow(/chat template: the template raised an exception: no system/);
  });
});


// llama.cpp's Jinja engine (common/jinja, the `--jinja` path), reached through node-llama-cpp's
// internal `AddonJinjaRenderer` binding: the same input object node-llama-cpp's
// JinjaTemplateChatWrapper passes (messages, add_generation_prompt, bos_token, eos_token, extra
// variables). It runs in a child process so node-llama-cpp's ggml never shares a process with ours;
// from a file (under node_modules/.cache, so 'node-llama-cpp' resolves): node-llama-cpp forks
// binding tests with process.execArgv, which must not carry an `-e` script.
const nativeRendererScript = `
import { getLlama } from 'node-llama-cpp';
let input = '';
for await (const chunk of process.stdin) input += chunk;
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const Renderer = llama._bindings?.AddonJinjaRenderer;
if (typeof Renderer !== 'function') {
  process.stderr.write('node-llama-cpp ' + '(llama._bindings.AddonJinjaRenderer) is not available: its internal API changed');
  process.exit(3);
}
const renderers = new Map();
const out = JSON.parse(input).map(({ template, vars }) => {
  try {
    let r = renderers.get(template);
    if (!r) renderers.set(template, (r = new Renderer(template)));
    return { text: r.render(vars) };
  } catch (err) {
    return { error: String(err?.message ?? err) };
  }
});
process.stdout.write(JSON.stringify(out));
await llama.dispose();
`;

interface NativeJob {
  template: string;
  vars: Record<string, unknown>;
}

/** Renders each job with llama.cpp's Jinja renderer; throws a clear error if it is unavailable. */
async function renderWithLlamaCpp(jobs: NativeJob[]): Promise<Array<{ text?: string; error?: string }>> {
  const dir = path.join(__dirname, '..', 'node_modules', '.cache', 'moerun-test');
  mkdirSync(dir, { recursive: true });
  const script = path.join(dir, 'llama-jinja-render.mjs');
  writeFileSync(script, nativeRendererScript);
  const r = await run(process.execPath, [script], { cwd: path.join(__dirname, '..'), input: JSON.stringify(jobs) });
  if (r.status !== 0) {
    throw new Error(
      `llama.cpp's Jinja renderer (node-llama-cpp devDependency, llama._bindings.AddonJinjaRenderer via getLlama({ gpu: false, build: 'never' })) ` +
        `could not be used (exit ${r.status}): ${r.stderr.trim()}`,
    );
  }
  const stdout = r.stdout;
  return JSON.parse(stdout) as Array<{ text?: string; error?: string }>;
}

// Every fixture, and the inline templates above, with the BOS/EOS texts of their models' vocabs.
const tokensFor: Record<string, { bos: string; eos: string }> = {
  'Qwen-Qwen3-0.6B.jinja': { bos: '', eos: '<|im_end|>' },
  'Qwen-QwQ-32B.jinja': { bos: '', eos: '<|im_end|>' },
  'deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja': { bos: '<｜begin▁of▁sentence｜>', eos: '<｜end▁of▁sentence｜>' },
  'meta-llama-Llama-3.1-8B-Instruct.jinja': { bos: '<|begin_of_text|>', eos: '<|eot_id|>' },
  'inclusionAI-Ling-1T.jinja': { bos: '<|startoftext|>', eos: '<|endoftext|>' },
  'ling-2.0-bailing2.jinja': { bos: '<|startoftext|>', eos: '<|endoftext|>' },
};
const inlineTemplates: Record<string, string> = {
  'llama3 (test-chat-template.cpp)':
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}",
  'Ling-lite (test-chat-template.cpp)':
    "{% for message in messages %}{% set role = message['role'] | lower %}{% if role == 'user' %}{% set role = 'HUMAN' %}{% endif %}{% set role = role | upper %}{{ '<role>' + role + '</role>' + message['content'] }}{% endfor %}{% if add_generation_prompt %}{{ '<role>ASSISTANT</role>' }}{% endif %}",
  'booleans printed (True/False, as Python)':
    "{% for m in messages %}{{ m.content }}:{{ loop.first }},{{ loop.last }};{% endfor %}{{ add_generation_prompt }}{{ enable_thinking is defined }}",
};
const fixtureNames = readdirSync(path.join(__dirname, 'fixtures/templates')).filter((f) => f.endsWith('.jinja')).sort();

const system: ChatMessage = { role: 'system', content: 'You are a helpful assistant' };
const conversations: Record<string, ChatMessage[]> = {
  'system + user': [system, { role: 'user', content: 'Hello' }],
  'user only': [{ role: 'user', content: 'Hello' }],
  'multi-turn (test-chat-template.cpp)': conversation,
  'ends with an assistant turn': [system, { role: 'user', content: 'Hello' }, { role: 'assistant', content: 'Hi there' }],
  '<think> in the history, edge whitespace': [
    { role: 'user', content: '\n  2+2?' },
    { role: 'assistant', content: '<think>\nadd them\n</think>\n\n4' },
    { role: 'user', content: 'times 3?  ' },
  ],
  'reasoning on the last assistant turn': [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: '\nHello!', reasoning: '\nthe user greets\n' }],
  'non-ASCII, quotes, backslash': [system, { role: 'user', content: 'Grüße 👋 — "quotes" \\ back\tslash' }],
};
const tools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Get the weather',
      parameters: { type: 'object', properties: { city: { type: 'string', description: 'City "name"' }, days: { type: 'integer' } }, required: ['city'] },
    },
  },
];
const variants: Array<{ name: string; addGenerationPrompt: boolean; vars: Record<string, unknown> }> = [
  { name: 'add_generation_prompt', addGenerationPrompt: true, vars: {} },
  { name: 'no add_generation_prompt', addGenerationPrompt: false, vars: {} },
  { name: 'add_generation_prompt, enable_thinking=false', addGenerationPrompt: true, vars: { enable_thinking: false } },
  { name: 'add_generation_prompt, enable_thinking=true', addGenerationPrompt: true, vars: { enable_thinking: true } },
  { name: 'add_generation_prompt, tools', addGenerationPrompt: true, vars: { tools } },
];

interface Case {
  template: string;
  source: string;
  conversation: string;
  variant: (typeof variants)[number];
  bos: string;
  eos: string;
}
const cases: Case[] = [];
for (const name of [...fixtureNames, ...Object.keys(inlineTemplates)]) {
  const source = inlineTemplates[name] ?? fixture(name);
  const { bos, eos } = tokensFor[name] ?? { bos: '<s>', eos: '</s>' };
  for (const conv of Object.keys(conversations)) for (const variant of variants) cases.push({ template: name, source, conversation: conv, variant, bos, eos });
}

describe("chat templates: our renderer gives exactly what llama.cpp's Jinja renderer gives", () => {
  let native: Array<{ text?: string; error?: string }>;
  beforeAll(async () => {
    native = await renderWithLlamaCpp(
      cases.map((c) => ({
        template: c.source,
        vars: {
          ...c.variant.vars,
          messages: conversations[c.conversation]!.map((m) =>
            m.reasoning === undefined ? { role: m.role, content: m.content } : { role: m.role, content: m.content, reasoning_content: m.reasoning },
          ),
          bos_token: c.bos,
          eos_token: c.eos,
          // The rest of the context llama.cpp's chat layer builds (common_chat_template_direct_apply).
          enable_thinking: c.variant.vars.enable_thinking ?? true,
          datetime: 'Mar 14 2026',
          date_string: '14 Mar 2026',
          ...(c.variant.addGenerationPrompt ? { add_generation_prompt: true } : {}),
        },
      })),
    );
  }, 120_000);

  it('covers every fixture', () => {
    expect(fixtureNames).toEqual(expect.arrayContaining(Object.keys(tokensFor)));
    expect(Object.keys(tokensFor)).toEqual(expect.arrayContaining(fixtureNames));
  });

  for (const name of [...fixtureNames, ...Object.keys(inlineTemplates)]) {
    it(`${name}: ${Object.keys(conversations).length} conversations × ${variants.length} variants`, () => {
      cases.forEach((c, i) => {
        if (c.template !== name) return;
        const label = `${c.template} / ${c.conversation} / ${c.variant.name}`;
        const theirs = native[i]!;
        expect(theirs.error, `llama.cpp failed on ${label}`).toBeUndefined();
        const ours = renderChatTemplate(c.source, conversations[c.conversation]!, {
          addGenerationPrompt: c.variant.addGenerationPrompt,
          bosToken: c.bos,
          eosToken: c.eos,
          vars: c.variant.vars,
          now: new Date(2026, 2, 14, 15),
        });
        expect(ours, label).toBe(theirs.text);
      });
    });
  }
});

let model: Model;
beforeAll(async () => {
  model = await loadModel(bundledModelPath, { threads: 2 });
});
afterAll(async () => {
  await model?.dispose();
});

// stories260K has no chat template: a plain one, with a stop token stories260K's vocab has.
const plain = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}";

describe('session.chat on stories260K', () => {
  it('errors clearly without a template, and validates options', async () => {
    const s = model.createSession({ contextSize: 256 });
    expect(() => s.chat([{ role: 'user', content: 'hi' }])).toThrow(/has no chat template \(GGUF key tokenizer.chat_template\); pass one as options.chatTemplate/);
    expect(() => s.chat([], { chatTemplate: plain })).toThrow('Expected a non-empty array of messages for messages but received  (array)');
    expect(() => s.chat([{ role: 'user' } as never], { chatTemplate: plain })).toThrow(/Expected \{ role: string, content: string \} for messages\[0\]/);
    expect(() => s.chat([{ role: 'user', content: 'x' }], { chatTemplate: plain, enableThinking: 1 as never })).toThrow(
      'Expected a boolean for enableThinking but received 1 (number)',
    );
    expect(() => s.chat([{ role: 'user', content: 'x' }], { chatTemplate: plain, temprature: 0 } as never)).toThrow(
      "Unknown option 'temprature' for chat(); did you mean 'temperature'?",
    );
    await s.dispose();
  });

  it('reuses the KV cache for the common prefix on the next turn', async () => {
    const s = model.createSession({ contextSize: 1024, kvCacheType: 'f32' });
    const history: ChatMessage[] = [{ role: 'user', content: 'Once upon a time, there was a little girl named Lily. She loved to play outside.' }];
    const first = await s.chat(history, { chatTemplate: plain, temperature: 0, maxTokens: 40 }).collect();
    const turn1 = s.lastStats!;
    history.push({ role: 'assistant', content: first.text }, { role: 'user', content: 'One day, Lily saw a big dog.' });
    const stream2 = s.chat(history, { chatTemplate: plain, temperature: 0, maxTokens: 20 });
    const second = await stream2.collect();
    const turn2 = stream2.stats!;
    const fullLength = turn2.promptTokens + turn2.reusedTokens;
    console.log(`chat turn 2: evaluated ${turn2.promptTokens} prompt tokens of ${fullLength} (reused ${turn2.reusedTokens}); turn 1 evaluated ${turn1.promptTokens}`);
    expect(turn2.reusedTokens).toBeGreaterThanOrEqual(turn1.promptTokens);
    expect(turn2.promptTokens).toBeLessThan(fullLength / 2);
    // Same answer as a fresh session evaluating the whole conversation.
    const fresh = model.createSession({ contextSize: 1024, kvCacheType: 'f32' });
    const ref = await fresh.chat(history, { chatTemplate: plain, temperature: 0, maxTokens: 20 }).collect();
    expect(fresh.lastStats!.reusedTokens).toBe(0);
    expect(second.text).toBe(ref.text);
    // An edited history truncates the cache back to the common prefix.
    history[0] = { role: 'user', content: 'Once upon a time, there was a big cat.' };
    const s3 = s.chat(history, { chatTemplate: plain, temperature: 0, maxTokens: 5 });
    await s3.collect();
    expect(s3.stats!.reusedTokens).toBeLessThan(12);
    await Promise.all([s.dispose(), fresh.dispose()]);
  });

  it('splits <think> reasoning from the answer, and stops at the template end-of-turn token', async () => {
    // "<think>" opened by the template: everything until "</think>" is reasoning. The stop string
    // "." makes the answer short and deterministic.
    const s = model.createSession({ contextSize: 256 });
    const t = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}<think>";
    const chunks = [];
    for await (const c of s.chat([{ role: 'user', content: 'Once upon a time' }], { chatTemplate: t, temperature: 0, maxTokens: 12 })) chunks.push(c);
    expect(chunks.length).toBeGreaterThan(0);
    for (const c of chunks) expect(c.text === '' || c.reasoning === '').toBe(true);
    expect(chunks.every((c) => c.text === '')).toBe(true);
    const plainRun = await model.createSession({ contextSize: 256 }).generate(model.tokenize('Once upon a time<think>', { special: true }), { temperature: 0, maxTokens: 12 }).text();
    expect(chunks.map((c) => c.reasoning).join('')).toBe(plainRun);
  });
});
