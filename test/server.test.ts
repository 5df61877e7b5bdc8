// `serve()` (what `moerun serve` runs) through the official `openai` client (v6) on 127.0.0.1, on
// stories260K: completions and chat, streaming and not, reasoning_content, /v1/models, /health,
// /metrics, the API key, every malformed request, abort on disconnect, --parallel 2 and the FIFO
// queue with its 503s, graceful close; and the `moerun serve` command itself.
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import Ajv from 'ajv';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledModelPath, loadModel, serve, type Model, type MoerunServer, type ServeOptions, type ServerMetrics } from 'moerun';
import { sharedDir } from './helpers/shared.js';

const modelPath = ((): string => {
  const shared = sharedDir();
  return shared ? path.join(shared, 'models/stories260K.gguf') : bundledModelPath;
})();
const MODEL = 'stories260K';
// The golden greedy story (llama2.c's README) after "Once upon a time".
const GOLDEN = ', there was a little girl named Lily. She loved to play outside in the park.';

let model: Model;
const servers: MoerunServer[] = [];

beforeAll(async () => {
  model = await loadModel(modelPath);
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await model?.dispose();
});

async function start(options: ServeOptions = {}): Promise<MoerunServer> {
  const server = await serve(model, { port: 0, ...options });
  servers.push(server);
  return server;
}

function client(server: MoerunServer, apiKey = 'unused'): OpenAI {
  // No retries: a 503 must reach the test, not be retried away.
  return new OpenAI({ baseURL: server.url, apiKey, maxRetries: 0, timeout: 60_000 });
}

async function metricsOf(server: MoerunServer): Promise<ServerMetrics> {
  const r = await fetch(`${server.url.replace(/\/v1$/, '')}/metrics?format=json`);
  expect(r.status).toBe(200);
  return (await r.json()) as ServerMetrics;
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('serve: completions and chat through the openai client', () => {
  let server: MoerunServer;
  let openai: OpenAI;
  beforeAll(async () => {
    server = await start();
    openai = client(server);
  });

  it('lists the model; /health answers', async () => {
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
    expect((await openai.models.retrieve(MODEL)).id).toBe(MODEL);
    const health = await fetch(`${server.url.replace(/\/v1$/, '')}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', model: MODEL, activeGenerations: 0, queueLength: 0 });
  });

  it('completion, not streamed: the golden story, usage and finish_reason', async () => {
    const r = await openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 20, temperature: 0 });
    expect(r.object).toBe('text_completion');
    expect(GOLDEN.startsWith(r.choices[0]!.text)).toBe(true);
    expect(r.choices[0]!.text.length).toBeGreaterThan(40);
    expect(r.choices[0]!.finish_reason).toBe('length');
    expect(r.usage).toEqual({ prompt_tokens: 5, completion_tokens: 20, total_tokens: 25 });
    // A completion does not continue the previous one: the same request gives the same text.
    const again = await openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 20, temperature: 0 });
    expect(again.choices[0]!.text).toBe(r.choices[0]!.text);
  });

  it('completion, streamed: the same text, a finish_reason chunk, then usage', async () => {
    const whole = await openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 30, temperature: 0 });
    const stream = await openai.completions.create({
      model: MODEL, prompt: 'Once upon a time', max_tokens: 30, temperature: 0, stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    let pieces = 0;
    const finishes: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.text;
        pieces++;
        finishes.push(c.finish_reason);
      }
    }
    expect(text).toBe(whole.choices[0]!.text);
    expect(pieces).toBeGreaterThan(10);
    expect(finishes.at(-1)).toBe('length');
    expect(finishes.slice(0, -1).every((f) => f === null)).toBe(true);
    expect(usage).toEqual({ prompt_tokens: 5, completion_tokens: 30, total_tokens: 35 });
  });

  it('completion from token ids, and stop strings', async () => {
    const ids = Array.from(model.tokenize('Once upon a time'));
    const r = await openai.completions.create({ model: MODEL, prompt: ids, max_tokens: 20, temperature: 0 });
    expect(GOLDEN.startsWith(r.choices[0]!.text)).toBe(true);
    const stopped = await openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stop: [' Lily'] });
    expect(stopped.choices[0]!.text).toBe(', there was a little girl named');
    expect(stopped.choices[0]!.finish_reason).toBe('stop');
  });

  it('chat (the ChatML fallback for a model without a template), streamed and not, give the same answer', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      { role: 'system', content: 'You tell stories.' },
      { role: 'user', content: 'Tell me about a cat.' },
    ];
    const r = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 24, temperature: 0 });
    expect(r.object).toBe('chat.completion');
    const message = r.choices[0]!.message;
    expect(message.role).toBe('assistant');
    expect(message.content!.length).toBeGreaterThan(10);
    expect(message).not.toHaveProperty('reasoning_content');
    expect(r.usage!.completion_tokens).toBe(24);
    // The prompt is the rendered ChatML conversation: more tokens than the words.
    expect(r.usage!.prompt_tokens).toBe(model.tokenize(
      '<|im_start|>system\nYou tell stories.<|im_end|>\n<|im_start|>user\nTell me about a cat.<|im_end|>\n<|im_start|>assistant\n',
    ).length);

    const stream = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let role: string | undefined;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      role ??= choice.delta.role;
      text += choice.delta.content ?? '';
      finish = choice.finish_reason ?? finish;
    }
    expect(role).toBe('assistant');
    expect(text).toBe(message.content);
    expect(finish).toBe('length');
    expect(usage).toEqual(r.usage);
  });

  it('developer messages and text content parts are accepted', async () => {
    const r = await openai.chat.completions.create({
      model: MODEL,
      messages: [
        { role: 'developer', content: 'You tell stories.' },
        { role: 'user', content: [{ type: 'text', text: 'Tell me ' }, { type: 'text', text: 'about a cat.' }] },
      ],
      max_tokens: 24,
      temperature: 0,
    });
    const plain = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me about a cat.' }],
      max_tokens: 24,
      temperature: 0,
    });
    expect(r.choices[0]!.message.content).toBe(plain.choices[0]!.message.content);
  });

  it('a prompt longer than the context is a 400 context_length_exceeded', async () => {
    const small = await start({ contextSize: 16 });
    const err = await client(small).completions.create({ model: MODEL, prompt: 'Once upon a time there was a little girl named Lily who loved to play', max_tokens: 4 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('context_length_exceeded');
    expect((err as Error).message).toMatch(/maximum context length is 16 tokens/);
  });

  it('/metrics: Prometheus text by default, JSON on request, counting what ran', async () => {
    const base = server.url.replace(/\/v1$/, '');
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/^# HELP moerun_requests_total/m);
    expect(text).toMatch(/^moerun_requests_total\{route="\/v1\/completions",status="200"\} \d+$/m);
    expect(text).toMatch(/^moerun_generated_tokens_total \d+$/m);
    expect(text).toMatch(/^moerun_tokens_per_second [\d.]+$/m);
    expect(text).toMatch(/^moerun_queue_length 0$/m);
    const m = await metricsOf(server);
    expect(m.generatedTokens).toBeGreaterThanOrEqual(20 + 20 + 30 + 30);
    expect(m.generations.length).toBeGreaterThanOrEqual(6);
    expect(m.requests['/v1/completions']!['200']).toBeGreaterThanOrEqual(5);
    expect(m.tokensPerSecond).toBeGreaterThan(0);
    expect(m).toMatchObject({ queueLength: 0, activeGenerations: 0, parallel: 1 });
    const viaAccept = await fetch(`${base}/metrics`, { headers: { Accept: 'application/json' } });
    expect(viaAccept.headers.get('content-type')).toMatch(/application\/json/);
  });
});

describe('serve: reasoning_content for <think> templates', () => {
  // QwQ's template opens <think> in the prompt: everything generated is reasoning until </think>.
  const qwq = readFileSync(path.join(__dirname, 'fixtures/templates/Qwen-QwQ-32B.jinja'), 'utf8');
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Tell me a story.' }];

  it('thinking: the answer is reasoning_content (streamed and not); enable_thinking false: content', async () => {
    const server = await start({ chatTemplate: qwq });
    const openai = client(server);
    const r = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 16, temperature: 0 });
    const m = r.choices[0]!.message as OpenAI.ChatCompletionMessage & { reasoning_content?: string };
    expect(m.content).toBe('');
    expect(m.reasoning_content!.length).toBeGreaterThan(10);

    const stream = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 16, temperature: 0, stream: true });
    let reasoning = '';
    let content = '';
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta as { content?: string | null; reasoning_content?: string } | undefined;
      reasoning += delta?.reasoning_content ?? '';
      content += delta?.content ?? '';
    }
    expect(reasoning).toBe(m.reasoning_content);
    expect(content).toBe('');

    // The template closes the think block itself: the answer is content.
    const plain = await openai.chat.completions.create({
      model: MODEL, messages, max_tokens: 16, temperature: 0, chat_template_kwargs: { enable_thinking: false },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const pm = plain.choices[0]!.message as OpenAI.ChatCompletionMessage & { reasoning_content?: string };
    expect(pm.content!.length).toBeGreaterThan(10);
    expect(pm.reasoning_content).toBeUndefined();
  });
});

describe('serve: response_format and tools', () => {
  const qwq = readFileSync(path.join(__dirname, 'fixtures/templates/Qwen-QwQ-32B.jinja'), 'utf8');
  const person = {
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 12 },
      age: { type: 'integer', minimum: 0, maximum: 120 },
      pets: { type: 'array', items: { enum: ['cat', 'dog', 'fish'] }, maxItems: 3 },
    },
    required: ['name', 'age'],
    additionalProperties: false,
  };
  const weather: OpenAI.ChatCompletionTool = {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, unit: { enum: ['C', 'F'] } }, required: ['city', 'unit'], additionalProperties: false },
    },
  };
  const time: OpenAI.ChatCompletionTool = {
    type: 'function',
    function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string', maxLength: 8 } }, required: ['zone'], additionalProperties: false } },
  };
  const ask: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }];

  it('json_schema at temperature 1: every answer parses, validates, and ends at the schema\'s end (streamed and not)', async () => {
    const server = await start();
    const openai = client(server);
    const validate = new Ajv().compile(person);
    for (let seed = 1; seed <= 6; seed++) {
      const request = {
        model: MODEL, messages: [{ role: 'user' as const, content: 'Describe a person.' }], temperature: 1, seed, max_tokens: 200,
        response_format: { type: 'json_schema' as const, json_schema: { name: 'person', schema: person } },
      };
      let content: string;
      if (seed % 2 === 0) {
        const r = await openai.chat.completions.create(request);
        expect(r.choices[0]!.finish_reason).toBe('stop');
        content = r.choices[0]!.message.content!;
      } else {
        content = '';
        let finish: string | null = null;
        for await (const chunk of await openai.chat.completions.create({ ...request, stream: true })) {
          content += chunk.choices[0]?.delta.content ?? '';
          finish = chunk.choices[0]?.finish_reason ?? finish;
        }
        expect(finish).toBe('stop');
      }
      const value: unknown = JSON.parse(content);
      expect(validate(value), `${content}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
  });

  it('json_object: a JSON object', async () => {
    const server = await start();
    const r = await client(server).chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: 'Answer in JSON.' }], temperature: 1, seed: 3, max_tokens: 300, response_format: { type: 'json_object' },
    });
    const value: unknown = JSON.parse(r.choices[0]!.message.content!);
    expect(value !== null && typeof value === 'object' && !Array.isArray(value)).toBe(true);
  });

  it("tool_choice 'required': one call to a listed tool, arguments valid for its schema, finish_reason tool_calls", async () => {
    const server = await start({ chatTemplate: qwq });
    const openai = client(server);
    const validate = new Ajv().compile(weather.function.parameters!);
    const r = await openai.chat.completions.create({ model: MODEL, messages: ask, tools: [weather, time], tool_choice: 'required', temperature: 1, seed: 5, max_tokens: 200 });
    const choice = r.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    const calls = choice.message.tool_calls!;
    expect(calls).toHaveLength(1);
    const call = calls[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.type).toBe('function');
    expect(call.id).toMatch(/^call_/);
    expect(['get_weather', 'get_time']).toContain(call.function.name);
    const args: unknown = JSON.parse(call.function.arguments);
    if (call.function.name === 'get_weather') expect(validate(args)).toBe(true);

    // Naming a function forces that one; streamed, the call arrives as a delta with index 0.
    const stream = await openai.chat.completions.create({
      model: MODEL, messages: ask, tools: [weather, time], tool_choice: { type: 'function', function: { name: 'get_weather' } }, temperature: 1, seed: 9, max_tokens: 200, stream: true,
    });
    const deltas: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      deltas.push(...(chunk.choices[0]?.delta.tool_calls ?? []));
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('tool_calls');
    expect(deltas).toHaveLength(1);
    expect(deltas[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_weather' } });
    expect(validate(JSON.parse(deltas[0]!.function!.arguments!))).toBe(true);
  });

  it('a conversation with a tool call and its result renders through the template; auto lets the model answer in text', async () => {
    const server = await start({ chatTemplate: qwq });
    const openai = client(server);
    const withResult: OpenAI.ChatCompletionMessageParam[] = [
      ...ask,
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"C"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 21}' },
    ];
    const plain = await openai.chat.completions.create({ model: MODEL, messages: ask, max_tokens: 8, temperature: 0, chat_template_kwargs: { enable_thinking: false } } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const r = await openai.chat.completions.create({ model: MODEL, messages: withResult, tools: [weather], max_tokens: 8, temperature: 0, chat_template_kwargs: { enable_thinking: false } } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    // The tools' descriptions, the call and its result are in the prompt.
    expect(r.usage!.prompt_tokens).toBeGreaterThan(plain.usage!.prompt_tokens + 100);
    expect(r.choices[0]!.message.tool_calls).toBeUndefined();
    expect(r.choices[0]!.finish_reason).toBe('length');
    expect(r.choices[0]!.message.content!.length).toBeGreaterThan(0);
  });

  it('a tool schema or response_format that does not compile, and response_format after thinking, are 400s', async () => {
    const server = await start({ chatTemplate: qwq });
    const openai = client(server);
    const badTool = await openai.chat.completions.create({
      model: MODEL, messages: ask, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'nonsense' } } }], tool_choice: 'required',
    }).catch((e: unknown) => e);
    expect(badTool).toBeInstanceOf(OpenAI.BadRequestError);
    expect((badTool as Error).message).toMatch(/unknown type "nonsense"/);
    const thinking = await openai.chat.completions.create({
      model: MODEL, messages: ask, response_format: { type: 'json_object' }, chat_template_kwargs: { enable_thinking: true },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming).catch((e: unknown) => e);
    expect(thinking).toBeInstanceOf(OpenAI.BadRequestError);
    expect((thinking as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('response_format');
    // Without enable_thinking, response_format turns thinking off: the JSON is content.
    const r = await openai.chat.completions.create({ model: MODEL, messages: ask, response_format: { type: 'json_object' }, temperature: 1, seed: 2, max_tokens: 300 });
    expect(typeof JSON.parse(r.choices[0]!.message.content!)).toBe('object');
  });
});

describe('serve: the API key', () => {
  it('is required on every route, OpenAI-shaped 401 otherwise', async () => {
    const server = await start({ apiKey: 'sekret-key' });
    const base = server.url.replace(/\/v1$/, '');
    const good = client(server, 'sekret-key');
    expect((await good.models.list()).data[0]!.id).toBe(MODEL);
    const r = await good.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 5, temperature: 0 });
    expect(r.usage!.completion_tokens).toBe(5);

    const bad = await client(server, 'wrong').completions.create({ model: MODEL, prompt: 'x', max_tokens: 5 }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((bad as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');

    for (const [method, route] of [['GET', '/health'], ['GET', '/metrics'], ['GET', '/v1/models'], ['POST', '/v1/chat/completions'], ['POST', '/v1/completions'], ['GET', '/nowhere']] as const) {
      for (const headers of [{}, { Authorization: 'Bearer wrong' }, { Authorization: 'sekret-key' }] as Record<string, string>[]) {
        const res = await fetch(`${base}${route}`, { method, headers, body: method === 'POST' ? '{}' : undefined });
        expect(res.status, `${method} ${route} ${JSON.stringify(headers)}`).toBe(401);
        const body = (await res.json()) as { error: { type: string; code: string; message: string; param: null } };
        expect(body.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key', param: null });
      }
    }
    const ok = await fetch(`${base}/metrics`, { headers: { Authorization: 'Bearer sekret-key' } });
    expect(ok.status).toBe(200);
  });
});

describe('serve: malformed requests get OpenAI-shaped errors', () => {
  let server: MoerunServer;
  beforeAll(async () => {
    server = await start({ maxBodyBytes: 4096 });
  });

  const chat = { model: MODEL, messages: [{ role: 'user', content: 'hi' }] };
  const weather = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } };
  const completion = { model: MODEL, prompt: 'Once upon a time' };
  // [what, route, body (a string is sent as is), status, param, code]
  const cases: [string, string, unknown, number, string | null, string][] = [
    ['bad JSON', 'chat/completions', '{"model": "stories260K", "messages": [', 400, null, 'invalid_json'],
    ['a JSON array', 'chat/completions', '[1, 2]', 400, null, 'invalid_json'],
    ['an empty body', 'completions', '', 400, null, 'invalid_json'],
    ['an oversize body', 'completions', { ...completion, prompt: 'x'.repeat(5000) }, 400, null, 'request_too_large'],
    ['an unknown field', 'chat/completions', { ...chat, temprature: 0.5 }, 400, 'temprature', 'unknown_parameter'],
    ['an unknown field (completions)', 'completions', { ...completion, messages: [] }, 400, 'messages', 'unknown_parameter'],
    ['no model', 'chat/completions', { messages: chat.messages }, 400, 'model', 'missing_required_parameter'],
    ['an unknown model', 'chat/completions', { ...chat, model: 'gpt-4o' }, 404, 'model', 'model_not_found'],
    ['negative max_tokens', 'chat/completions', { ...chat, max_tokens: -1 }, 400, 'max_tokens', 'invalid_value'],
    ['zero max_tokens', 'completions', { ...completion, max_tokens: 0 }, 400, 'max_tokens', 'invalid_value'],
    ['fractional max_tokens', 'completions', { ...completion, max_tokens: 2.5 }, 400, 'max_tokens', 'invalid_value'],
    ['max_tokens as a string', 'completions', { ...completion, max_tokens: '10' }, 400, 'max_tokens', 'invalid_value'],
    ['max_tokens and max_completion_tokens disagree', 'chat/completions', { ...chat, max_tokens: 5, max_completion_tokens: 6 }, 400, 'max_completion_tokens', 'invalid_value'],
    ['temperature 3', 'chat/completions', { ...chat, temperature: 3 }, 400, 'temperature', 'invalid_value'],
    ['temperature -0.1', 'completions', { ...completion, temperature: -0.1 }, 400, 'temperature', 'invalid_value'],
    ['top_p 1.5', 'chat/completions', { ...chat, top_p: 1.5 }, 400, 'top_p', 'invalid_value'],
    ['top_k -1', 'completions', { ...completion, top_k: -1 }, 400, 'top_k', 'invalid_value'],
    ['min_p 2', 'completions', { ...completion, min_p: 2 }, 400, 'min_p', 'invalid_value'],
    ['repetition_penalty 0', 'completions', { ...completion, repetition_penalty: 0 }, 400, 'repetition_penalty', 'invalid_value'],
    ['n = 2', 'chat/completions', { ...chat, n: 2 }, 400, 'n', 'unsupported_parameter'],
    ['n = 0', 'chat/completions', { ...chat, n: 0 }, 400, 'n', 'invalid_value'],
    ['stream as a string', 'chat/completions', { ...chat, stream: 'yes' }, 400, 'stream', 'invalid_type'],
    ['stream_options without stream', 'chat/completions', { ...chat, stream_options: { include_usage: true } }, 400, 'stream_options', 'invalid_value'],
    ['an unknown stream option', 'chat/completions', { ...chat, stream: true, stream_options: { include_everything: true } }, 400, 'stream_options.include_everything', 'unknown_parameter'],
    ['five stop strings', 'completions', { ...completion, stop: ['a', 'b', 'c', 'd', 'e'] }, 400, 'stop', 'invalid_value'],
    ['an empty stop string', 'completions', { ...completion, stop: '' }, 400, 'stop', 'invalid_value'],
    ['a fractional seed', 'completions', { ...completion, seed: 1.5 }, 400, 'seed', 'invalid_value'],
    ['presence_penalty', 'chat/completions', { ...chat, presence_penalty: 1 }, 400, 'presence_penalty', 'unsupported_parameter'],
    ['frequency_penalty', 'completions', { ...completion, frequency_penalty: 0.5 }, 400, 'frequency_penalty', 'unsupported_parameter'],
    ['logit_bias', 'chat/completions', { ...chat, logit_bias: { '42': 5 } }, 400, 'logit_bias', 'unsupported_parameter'],
    ['logprobs', 'chat/completions', { ...chat, logprobs: true }, 400, 'logprobs', 'unsupported_parameter'],
    ['echo', 'completions', { ...completion, echo: true }, 400, 'echo', 'unsupported_parameter'],
    ['suffix', 'completions', { ...completion, suffix: 'The end.' }, 400, 'suffix', 'unsupported_parameter'],
    ['tools not an array', 'chat/completions', { ...chat, tools: { name: 'f' } }, 400, 'tools', 'invalid_type'],
    ['a tool without a name', 'chat/completions', { ...chat, tools: [{ type: 'function', function: { parameters: {} } }] }, 400, 'tools[0]', 'invalid_value'],
    ['a tool of another type', 'chat/completions', { ...chat, tools: [{ type: 'code_interpreter' }] }, 400, 'tools[0]', 'invalid_value'],
    ['tool_choice without tools', 'chat/completions', { ...chat, tool_choice: 'required' }, 400, 'tool_choice', 'invalid_value'],
    ['tool_choice naming an absent tool', 'chat/completions', { ...chat, tools: [weather], tool_choice: { type: 'function', function: { name: 'nope' } } }, 400, 'tool_choice', 'invalid_value'],
    ['tool_choice of an unknown kind', 'chat/completions', { ...chat, tools: [weather], tool_choice: 'always' }, 400, 'tool_choice', 'invalid_value'],
    ['parallel_tool_calls false with auto', 'chat/completions', { ...chat, tools: [weather], parallel_tool_calls: false }, 400, 'parallel_tool_calls', 'unsupported_parameter'],
    ['tools with a template that has no tool-call syntax (ChatML)', 'chat/completions', { ...chat, tools: [weather] }, 400, 'tools', 'unsupported_parameter'],
    ['json_schema without a name', 'chat/completions', { ...chat, response_format: { type: 'json_schema', json_schema: { schema: { type: 'object' } } } }, 400, 'response_format.json_schema', 'invalid_value'],
    ['json_schema whose schema is a string', 'chat/completions', { ...chat, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: 'object' } } }, 400, 'response_format.json_schema.schema', 'invalid_type'],
    ['json_schema with an unknown type', 'chat/completions', { ...chat, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'nonsense' } } } }, 400, 'response_format', 'invalid_value'],
    ['json_schema with a broken $ref', 'chat/completions', { ...chat, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { $ref: '#/nope' } } } }, 400, 'response_format', 'invalid_value'],
    ['response_format of an unknown type', 'chat/completions', { ...chat, response_format: { type: 'yaml' } }, 400, 'response_format.type', 'invalid_value'],
    ['no messages', 'chat/completions', { model: MODEL }, 400, 'messages', 'missing_required_parameter'],
    ['empty messages', 'chat/completions', { ...chat, messages: [] }, 400, 'messages', 'invalid_value'],
    ['a message that is a string', 'chat/completions', { ...chat, messages: ['hi'] }, 400, 'messages[0]', 'invalid_type'],
    ['an unknown role', 'chat/completions', { ...chat, messages: [{ role: 'wizard', content: 'hi' }] }, 400, 'messages[0].role', 'invalid_value'],
    ['a user message without content', 'chat/completions', { ...chat, messages: [{ role: 'user' }] }, 400, 'messages[0].content', 'missing_required_parameter'],
    ['content as a number', 'chat/completions', { ...chat, messages: [{ role: 'user', content: 42 }] }, 400, 'messages[0].content', 'invalid_type'],
    ['an image part', 'chat/completions', { ...chat, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }] }, 400, 'messages[0].content[0].type', 'unsupported_parameter'],
    ['an unknown message field', 'chat/completions', { ...chat, messages: [{ role: 'user', content: 'hi', mood: 'happy' }] }, 400, 'messages[0].mood', 'unknown_parameter'],
    ['a tool message without tool_call_id', 'chat/completions', { ...chat, messages: [{ role: 'tool', content: '{}' }] }, 400, 'messages[0].tool_call_id', 'missing_required_parameter'],
    ['malformed assistant tool_calls', 'chat/completions', { ...chat, messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: {} } }] }] }, 400, 'messages[0].tool_calls[0]', 'invalid_value'],
    ['chat_template_kwargs not an object', 'chat/completions', { ...chat, chat_template_kwargs: [1] }, 400, 'chat_template_kwargs', 'invalid_type'],
    ['no prompt', 'completions', { model: MODEL }, 400, 'prompt', 'missing_required_parameter'],
    ['an empty prompt', 'completions', { ...completion, prompt: '' }, 400, 'prompt', 'invalid_value'],
    ['two prompts', 'completions', { ...completion, prompt: ['a', 'b'] }, 400, 'prompt', 'unsupported_parameter'],
    ['negative token ids', 'completions', { ...completion, prompt: [1, -5] }, 400, 'prompt', 'invalid_value'],
    ['token ids past the vocabulary', 'completions', { ...completion, prompt: [1, 100000] }, 400, null, 'invalid_value'],
  ];

  it.each(cases)('%s', async (_what, route, body, status, param, code) => {
    const res = await fetch(`${server.url}/${route}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    expect(res.status).toBe(status);
    const json = (await res.json()) as { error: { message: string; type: string; param: string | null; code: string } };
    expect(json.error.type).toBe('invalid_request_error');
    expect(json.error.param).toBe(param);
    expect(json.error.code).toBe(code);
    expect(json.error.message.length).toBeGreaterThan(10);
  });

  it('the openai client reports them as its own errors; the server stays up and idle', async () => {
    const openai = client(server);
    const err = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: -5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toMatch(/Invalid value for 'max_tokens': expected an integer >= 1 but received -5/);
    const notFound = await fetch(`${server.url}/embeddings`, { method: 'POST', body: '{}' });
    expect(notFound.status).toBe(404);
    expect(((await notFound.json()) as { error: { code: string } }).error.code).toBe('unknown_url');
    const m = await metricsOf(server);
    expect(m).toMatchObject({ activeGenerations: 0, queueLength: 0 });
    expect(m.generations).toEqual({ stop: 0, length: 0, abort: 0, error: 0 });
    const r = await openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
    expect(GOLDEN.startsWith(r.choices[0]!.text)).toBe(true);
  });
});

describe('serve: a client that disconnects aborts its generation', () => {
  // Long generations: 4000 tokens in a 4096-token context take stories260K several seconds.
  const long = { model: MODEL, prompt: 'Once upon a time', max_tokens: 4000, temperature: 0 } as const;

  it('streamed: the generation stops at the abort, the session is free at once', async () => {
    const server = await start({ contextSize: 4096 });
    const openai = client(server);
    const controller = new AbortController();
    const stream = await openai.completions.create({ ...long, stream: true }, { signal: controller.signal });
    let received = 0;
    let tAbort = 0;
    // The SDK ends the iteration quietly (or throws) on abort: either way the connection closes.
    try {
      for await (const chunk of stream) {
        received += chunk.choices.length;
        if (received === 20) {
          tAbort = performance.now();
          controller.abort();
          break;
        }
      }
    } catch (err) {
      expect((err as Error).name).toMatch(/Abort/);
    }
    expect(received).toBe(20);
    await until(async () => (await metricsOf(server)).generations.abort === 1, 'the aborted generation to end');
    const elapsed = performance.now() - tAbort;
    const m = await metricsOf(server);
    console.log(`streamed abort: ${m.generatedTokens} tokens generated of 4000, ended ${elapsed.toFixed(0)} ms after the abort`);
    // It ended, counted as aborted, after a few dozen tokens (of 4000), long before the ~seconds the whole would take.
    expect(m.activeGenerations).toBe(0);
    expect(m.generatedTokens).toBeGreaterThanOrEqual(20);
    expect(m.generatedTokens).toBeLessThan(400);
    expect(elapsed).toBeLessThan(2000);
    // Nothing more is generated afterwards, and the session serves the next request.
    await new Promise((r) => setTimeout(r, 200));
    expect((await metricsOf(server)).generatedTokens).toBe(m.generatedTokens);
    const next = await openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
    expect(GOLDEN.startsWith(next.choices[0]!.text)).toBe(true);
  });

  it('not streamed: the generation stops too', async () => {
    const server = await start({ contextSize: 4096 });
    const controller = new AbortController();
    const pending = client(server).completions.create(long, { signal: controller.signal }).catch((e: unknown) => e);
    await until(async () => (await metricsOf(server)).activeGenerations === 1, 'the generation to start');
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    await until(async () => (await metricsOf(server)).generations.abort === 1, 'the aborted generation to end');
    const m = await metricsOf(server);
    console.log(`unstreamed abort: ${m.generatedTokens} tokens generated of 4000`);
    expect(m.activeGenerations).toBe(0);
    // The abort may land while the prompt is still being evaluated (0 tokens) or a few tokens in.
    expect(m.generatedTokens).toBeLessThan(4000);
    expect(m.requests['/v1/completions']).toEqual({ '499': 1 });
  });
});

describe('serve: parallel sessions and the queue', () => {
  it('--parallel 2: concurrent clients all get the right answer, two generate at once', async () => {
    const server = await start({ parallel: 2 });
    const openai = client(server);
    const answers = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        if (i % 2 === 0) {
          const r = await openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 60, temperature: 0 });
          return r.choices[0]!.text;
        }
        const stream = await openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 60, temperature: 0, stream: true });
        let text = '';
        for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
        return text;
      }),
    );
    expect(new Set(answers).size).toBe(1);
    expect(GOLDEN.startsWith(answers[0]!.slice(0, GOLDEN.length))).toBe(true);
    const m = await metricsOf(server);
    expect(m.peakActiveGenerations).toBe(2);
    expect(m.generations.length).toBe(6);
    expect(m.generatedTokens).toBe(360);
    expect(m).toMatchObject({ activeGenerations: 0, queueLength: 0, parallel: 2 });
  });

  it('the queue is first come, first served', async () => {
    const server = await start({ contextSize: 4096 });
    const openai = client(server);
    // One long generation holds the only session while four requests queue up one after another.
    const holder = new AbortController();
    const held = openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 3000, temperature: 0 }, { signal: holder.signal }).catch(() => undefined);
    await until(async () => (await metricsOf(server)).activeGenerations === 1, 'the first generation');
    const order: number[] = [];
    const queued = [];
    for (let i = 0; i < 4; i++) {
      queued.push(openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 5, temperature: 0 }).then(() => order.push(i)));
      await until(async () => (await metricsOf(server)).queueLength === i + 1, `request ${i} to queue`);
    }
    holder.abort();
    await Promise.all(queued);
    await held;
    expect(order).toEqual([0, 1, 2, 3]);
  });

  it('past the queue bound, or waiting too long: 503', async () => {
    const server = await start({ contextSize: 4096, maxQueue: 1, queueTimeoutMs: 3000 });
    const openai = client(server);
    const holder = new AbortController();
    const held = openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 4000, temperature: 0 }, { signal: holder.signal }).catch(() => undefined);
    await until(async () => (await metricsOf(server)).activeGenerations === 1, 'the first generation');
    const waiting = openai.completions.create({ model: MODEL, prompt: 'x', max_tokens: 5 }).catch((e: unknown) => e);
    await until(async () => (await metricsOf(server)).queueLength === 1, 'one request to queue');
    const full = await openai.completions.create({ model: MODEL, prompt: 'x', max_tokens: 5 }).catch((e: unknown) => e);
    expect(full).toBeInstanceOf(OpenAI.InternalServerError);
    expect((full as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((full as InstanceType<typeof OpenAI.APIError>).code).toBe('queue_full');
    const timedOut = await waiting;
    expect((timedOut as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((timedOut as InstanceType<typeof OpenAI.APIError>).code).toBe('queue_timeout');
    holder.abort();
    await held;
    const m = await metricsOf(server);
    expect(m.rejectedBusy).toBe(2);
    expect(m.requests['/v1/completions']!['503']).toBe(2);
  });

  it('close(): queued requests get 503, a running one finishes within the grace period, then the port is free', async () => {
    // 200 tokens take well under a second here, but a loaded CI machine can be 50x slower: the
    // grace period must outlast the generation by far, or the test measures the machine.
    const server = await start({ contextSize: 4096, shutdownGraceMs: 90_000 });
    const openai = client(server);
    const running = openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 200, temperature: 0 });
    await until(async () => (await metricsOf(server)).activeGenerations === 1, 'the generation');
    const queued = openai.completions.create({ model: MODEL, prompt: 'x', max_tokens: 5 }).catch((e: unknown) => e);
    await until(async () => (await metricsOf(server)).queueLength === 1, 'one request to queue');
    await server.close();
    expect((await running).usage!.completion_tokens).toBe(200);
    expect(((await queued) as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    await expect(fetch(`${server.url}/models`)).rejects.toThrow();
    await server.close();
  });
});

describe('serve: options', () => {
  it('bad options are MoerunErrors with exact messages', async () => {
    await expect(serve(model, { prot: 1 } as never)).rejects.toThrow("Unknown option 'prot' for serve(); did you mean 'port'?");
    await expect(serve(model, { parallel: 0 })).rejects.toThrow('Expected a positive integer for parallel but received 0 (number)');
    await expect(serve(model, { port: 70000 })).rejects.toThrow('Expected a port in [0, 65535] for port but received 70000 (number)');
    await expect(serve(model, { kvCacheType: 'f8' as never })).rejects.toThrow(/Expected one of 'f32', 'f16', 'bf16', 'q8_0' for kvCacheType/);
    const vocab = await loadModel(modelPath, { vocabOnly: true });
    await expect(serve(vocab)).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
    await vocab.dispose();
    const server = await start();
    await expect(serve(model, { port: server.port })).rejects.toMatchObject({ code: 'ERR_IO', message: expect.stringMatching(/EADDRINUSE/) });
  });

  it('binds to 127.0.0.1 by default', async () => {
    const server = await start();
    expect(server.host).toBe('127.0.0.1');
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/v1`);
  });
});

describe('moerun serve (the command)', () => {
  it('serves until SIGTERM, then shuts down and exits 0', async () => {
    const cli = path.resolve(__dirname, '../dist/cli.js');
    const child = spawn(process.execPath, [cli, 'serve', '--model', modelPath, '--port', '0', '--parallel', '2', '--api-key', 'k1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await until(() => /at (http:\/\/127\.0\.0\.1:\d+\/v1)/.test(stderr), 'the server to listen');
    const url = /at (http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(stderr)![1]!;
    const openai = new OpenAI({ baseURL: url, apiKey: 'k1', maxRetries: 0 });
    const r = await openai.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 12, temperature: 0 });
    expect(GOLDEN.startsWith(r.choices[0]!.text)).toBe(true);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/shutting down/);
  });
});
