// connect(): one test body (`textModelContract`) run against a local model and against the same
// model served by serve() on loopback and reached through connect(), with the answers of both
// compared; what does not map over HTTP throws ERR_UNSUPPORTED; and loadModel(..., { vocabOnly }).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Ajv from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bundledModelPath,
  connect,
  loadModel,
  MoerunError,
  readGgufInfo,
  serve,
  type ChatMessage,
  type GenerateStats,
  type Model,
  type MoerunServer,
  type TextModel,
} from 'moerun';
import { writeGguf } from '../lib/gguf/writer.js';
import { sharedDir } from './helpers/shared.js';

const sourcePath = ((): string => {
  const shared = sharedDir();
  return shared ? path.join(shared, 'models/stories260K.gguf') : bundledModelPath;
})();
const GOLDEN = ', there was a little girl named Lily. She loved to play outside in the park.';

// stories260K with QwQ's chat template in its metadata, so that a local session and the server
// render the same template (the server renders the model's own, as vLLM and llama.cpp do), and
// the answer starts inside <think>: chat's reasoning split is exercised on both sides.
const qwq = readFileSync(path.join(__dirname, 'fixtures/templates/Qwen-QwQ-32B.jinja'), 'utf8');
const dir = mkdtempSync(path.join(os.tmpdir(), 'moerun-remote-'));
const modelPath = path.join(dir, 'stories260K-qwq.gguf');

async function writeModelWithTemplate(): Promise<void> {
  const info = await readGgufInfo(sourcePath);
  const bytes = await readFile(sourcePath);
  await writeGguf(modelPath, {
    metadata: { ...info.metadata, 'tokenizer.chat_template': qwq },
    tensors: info.tensors.map((t) => ({ name: t.name, type: t.typeId, shape: t.shape, data: bytes.subarray(t.offset, t.offset + t.byteSize) })),
  });
}

/** What each run of the contract saw, by name, to compare local with remote. */
const seen = new Map<string, Record<string, unknown>>();

interface Contract {
  model: TextModel;
}

/**
 * The test body every TextModel passes, local or remote: greedy generation, continuing and
 * resetting a sequence, stop strings, stats, abort, chat with and without the <think> block,
 * errors for a busy or disposed session and for bad options.
 */
function textModelContract(name: string, open: () => Promise<Contract>, close: () => Promise<void>): void {
  describe(`TextModel contract: ${name}`, () => {
    let model: TextModel;
    const record: Record<string, unknown> = {};
    beforeAll(async () => {
      model = (await open()).model;
      seen.set(name, record);
    });
    afterAll(close);

    it('generate: the golden story, greedy, with stats after the loop', async () => {
      const session = model.createSession();
      const stream = session.generate('Once upon a time', { maxTokens: 20, temperature: 0 });
      expect(stream.stats).toBeUndefined();
      let text = '';
      let chunks = 0;
      for await (const chunk of stream) {
        text += chunk.text;
        chunks++;
        expect(typeof chunk.token).toBe('number');
      }
      expect(GOLDEN.startsWith(text)).toBe(true);
      expect(text.length).toBeGreaterThan(40);
      expect(chunks).toBeGreaterThan(5);
      const stats = stream.stats as GenerateStats;
      expect(stats).toMatchObject({ promptTokens: 5, generatedTokens: 20, stopReason: 'maxTokens' });
      expect(stats.promptMs).toBeGreaterThanOrEqual(0);
      record.generate = text;
      await session.dispose();
    });

    it('generate continues the sequence; reset() starts it over', async () => {
      const session = model.createSession();
      const first = await session.generate('Once upon a time', { maxTokens: 12, temperature: 0 }).text();
      const second = await session.generate(' The end. One day', { maxTokens: 12, temperature: 0 }).text();
      expect(second.length).toBeGreaterThan(5);
      record.continued = second;
      session.reset();
      expect(await session.generate('Once upon a time', { maxTokens: 12, temperature: 0 }).text()).toBe(first);
      await session.dispose();
    });

    it('stop strings end the text before them', async () => {
      const session = model.createSession();
      const stream = session.generate('Once upon a time', { maxTokens: 40, temperature: 0, stop: [' Lily'] });
      expect(await stream.text()).toBe(', there was a little girl named');
      expect(stream.stats!.stopReason).not.toBe('maxTokens');
      await session.dispose();
    });

    it('an abort ends the stream with ERR_ABORTED; the session goes on', async () => {
      const session = model.createSession();
      const controller = new AbortController();
      const stream = session.generate('Once upon a time', { maxTokens: 2000, temperature: 0, signal: controller.signal });
      let chunks = 0;
      const t0 = performance.now();
      await expect(
        (async () => {
          for await (const _ of stream) if (++chunks === 3) controller.abort();
        })(),
      ).rejects.toMatchObject({ name: 'MoerunError', code: 'ERR_ABORTED' });
      expect(performance.now() - t0).toBeLessThan(5000);
      expect(stream.stats!.stopReason).toBe('abort');
      expect(chunks).toBe(3);
      session.reset();
      expect(GOLDEN.startsWith(await session.generate('Once upon a time', { maxTokens: 10, temperature: 0 }).text())).toBe(true);
      await session.dispose();
    });

    it('chat: the answer inside <think> is reasoning; without thinking it is text', async () => {
      const session = model.createSession();
      const messages: ChatMessage[] = [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me about a cat.' }];
      const thinking = session.chat(messages, { maxTokens: 16, temperature: 0 });
      let reasoning = '';
      let text = '';
      for await (const c of thinking) {
        reasoning += c.reasoning;
        text += c.text;
        expect(c.text === '' || c.reasoning === '').toBe(true);
      }
      expect(text).toBe('');
      expect(reasoning.length).toBeGreaterThan(10);
      expect(thinking.stats).toMatchObject({ generatedTokens: 16, stopReason: 'maxTokens' });
      const plain = await session.chat(messages, { maxTokens: 16, temperature: 0, enableThinking: false }).collect();
      expect(plain.reasoning).toBe('');
      expect(plain.text.length).toBeGreaterThan(10);
      record.chat = { reasoning, plain: plain.text };
      await session.dispose();
    });

    it('chat with jsonSchema: JSON that validates; with tools required: one call whose arguments validate', async () => {
      const session = model.createSession();
      const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 10 }, age: { type: 'integer', minimum: 0, maximum: 99 } }, required: ['name', 'age'], additionalProperties: false };
      const json = await session.chat([{ role: 'user', content: 'Describe a person.' }], { jsonSchema: schema, enableThinking: false, temperature: 1, seed: 4, maxTokens: 100 }).collect();
      expect(new Ajv().validate(schema, JSON.parse(json.text))).toBe(true);
      const weather = { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'], additionalProperties: false } } };
      const calls = [];
      let text = '';
      for await (const c of session.chat([{ role: 'user', content: 'Weather in Paris?' }], { tools: [weather], toolChoice: 'required', temperature: 1, seed: 7, maxTokens: 100 })) {
        text += c.text;
        calls.push(...(c.toolCalls ?? []));
      }
      expect(text).toBe('');
      expect(calls).toHaveLength(1);
      expect(calls[0]!.name).toBe('get_weather');
      expect(new Ajv().validate(weather.function.parameters, JSON.parse(calls[0]!.arguments))).toBe(true);
      record.structured = { json: json.text, call: { name: calls[0]!.name, arguments: calls[0]!.arguments } };
      await session.dispose();
    });

    it('a busy session, a disposed one and bad options are MoerunErrors', async () => {
      const session = model.createSession();
      const stream = session.generate('Once upon a time', { maxTokens: 5, temperature: 0 });
      await stream.next();
      expect(() => session.generate('x')).toThrow(expect.objectContaining({ code: 'ERR_BUSY' }) as never);
      await stream.return();
      expect(() => session.generate('x', { maxTokens: -1 })).toThrow('Expected a positive integer for maxTokens but received -1 (number)');
      expect(() => session.chat([{ role: 'user', content: 'x' }], { temprature: 0 } as never)).toThrow(/Unknown option 'temprature' for chat\(\); did you mean 'temperature'\?/);
      expect(() => session.chat([])).toThrow('Expected a non-empty array of messages for messages but received  (array)');
      await session.dispose();
      await session.dispose();
      expect(() => session.generate('x')).toThrow(MoerunError);
      expect(() => session.generate('x')).toThrow('session is disposed');
    });
  });
}

let local: Model;
let served: Model;
let server: MoerunServer;

beforeAll(async () => {
  await writeModelWithTemplate();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

textModelContract(
  'local model',
  async () => {
    local = await loadModel(modelPath);
    return { model: local };
  },
  async () => local.dispose(),
);

textModelContract(
  'connect() to serve() on loopback',
  async () => {
    served = await loadModel(modelPath);
    server = await serve(served, { port: 0, apiKey: 'k', parallel: 2 });
    return { model: await connect(server.url, { model: 'stories260K-qwq', apiKey: 'k' }) };
  },
  async () => {
    await server.close();
    await served.dispose();
  },
);

describe('local and remote give the same answers', () => {
  it('greedy generation and chat, text for text', () => {
    const a = seen.get('local model');
    const b = seen.get('connect() to serve() on loopback');
    expect(a?.generate).toBeTypeOf('string');
    expect(b).toEqual(a);
  });
});

describe('connect(): what does not map, and failures', () => {
  let model: Model;
  let srv: MoerunServer;
  beforeAll(async () => {
    model = await loadModel(sourcePath);
    srv = await serve(model, { port: 0, apiKey: 'key' });
  });
  afterAll(async () => {
    await srv.close();
    await model.dispose();
  });

  it('logits, KV state, tokenization and a caller template are ERR_UNSUPPORTED', async () => {
    const remote = await connect(srv.url, { apiKey: 'key' });
    expect(remote.id).toBe('stories260K');
    const session = remote.createSession();
    expect(() => session.evaluate()).toThrow(/logits of a remote model are not available/);
    expect(() => remote.tokenize()).toThrow(/vocabOnly: true/);
    expect(() => remote.detokenize()).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED' }) as never);
    expect(() => remote.createSession({ contextSize: 512 })).toThrow(/'contextSize' is the server's setting/);
    expect(() => session.chat([{ role: 'user', content: 'x' }], { chatTemplate: '{{ x }}' })).toThrow(/renders its own chat template/);
    expect(() => session.generate('x', { repeatLastN: 4 })).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED' }) as never);
    expect(() => session.generate('x', { jsonSchema: { type: 'object' } })).toThrow(/use chat\(\) with jsonSchema/);
    expect(() => session.chat([{ role: 'user', content: 'x' }], { grammar: 'root ::= "a"' })).toThrow(/a grammar cannot be sent/);
    // Token ids start a sequence but cannot be continued with text (the server answers in text).
    const ids = Array.from(model.tokenize('Once upon a time'));
    expect(GOLDEN.startsWith(await session.generate(ids, { maxTokens: 10, temperature: 0 }).text())).toBe(true);
    expect(() => session.generate(' more')).toThrow(/started from token ids/);
    await remote.dispose();
    expect(() => remote.createSession()).toThrow('model is disposed');
  });

  it("the server's 400s arrive as ERR_INVALID_ARGUMENT with its message", async () => {
    const remote = await connect(srv.url, { apiKey: 'key' });
    const session = remote.createSession();
    await expect(session.generate('x', { temperature: 5 }).text()).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: expect.stringMatching(/400 Bad Request: Invalid value for 'temperature': expected a number in \[0, 2\] but received 5/),
    });
    // The session is free again after the failure.
    expect((await session.generate('Once upon a time', { maxTokens: 5, temperature: 0 }).text()).length).toBeGreaterThan(5);
  });

  it('a wrong key, an unknown model, a closed port, a bad URL', async () => {
    await expect(connect(srv.url, { apiKey: 'nope' })).rejects.toMatchObject({ code: 'ERR_IO', message: expect.stringMatching(/401 Unauthorized: Incorrect API key/) });
    await expect(connect(srv.url, { apiKey: 'key', model: 'gpt-4o' })).rejects.toThrow(/does not serve 'gpt-4o'; it lists 'stories260K'/);
    const gone = await serve(model, { port: 0 });
    const url = gone.url;
    await gone.close();
    await expect(connect(url)).rejects.toMatchObject({ code: 'ERR_IO', message: expect.stringMatching(/ECONNREFUSED/) });
    await expect(connect('ftp://x')).rejects.toThrow("Expected an http(s) URL for baseUrl but received \"ftp://x\" (string)");
    await expect(connect(srv.url, { key: 'x' } as never)).rejects.toThrow(/Unknown option 'key' for connect\(\)/);
  });

  it('dispose() aborts a generation in flight', async () => {
    const remote = await connect(srv.url, { apiKey: 'key' });
    const session = remote.createSession();
    const stream = session.generate('Once upon a time', { maxTokens: 2000, temperature: 0 });
    await stream.next();
    await remote.dispose();
    await expect(stream.text()).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });
});

describe('loadModel(path, { vocabOnly: true })', () => {
  it('tokenizes and renders chat templates without weights; createSession is ERR_UNSUPPORTED', async () => {
    const full = await loadModel(modelPath);
    const vocab = await loadModel(modelPath, { vocabOnly: true });
    expect(vocab.vocabOnly).toBe(true);
    expect(full.vocabOnly).toBe(false);
    const text = 'Once upon a time, there was a little girl named Lily.';
    expect(Array.from(vocab.tokenize(text))).toEqual(Array.from(full.tokenize(text)));
    expect(vocab.detokenize(full.tokenize(text))).toBe(full.detokenize(full.tokenize(text)));
    // Where it computes is a loaded model's; a vocab-only one computes nowhere.
    const { threads: _t, cpuPath: _c, backend: _b, backendName: _n, gpuNote: _g, weightMemory: _w, ...described } = full.info;
    expect(vocab.info).toMatchObject(described);
    expect(vocab.info).toMatchObject({ cpuPath: 'none', backend: 'none', backendName: 'none', weightMemory: 'none' });
    expect(vocab.gguf.metadata['tokenizer.chat_template']).toBe(qwq);
    expect(() => vocab.createSession()).toThrow(/was loaded with vocabOnly: true/);
    expect(() => vocab.createSession()).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED' }) as never);
    await expect(loadModel(modelPath, { vocabOnly: 1 as never })).rejects.toThrow('Expected a boolean for vocabOnly but received 1 (number)');
    await vocab.dispose();
    await vocab.dispose();
    expect(() => vocab.tokenize('x')).toThrow('model is disposed');
    await full.dispose();
  });
});
