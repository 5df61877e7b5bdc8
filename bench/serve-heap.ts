// Does the server keep anything per request? serve() in this process, 4 concurrent loopback clients
// in rounds of 400 requests (streamed chat, completion, json_schema chat, a stream abandoned after
// 3 events, malformed JSON), and after each round a full GC and the heap, external memory and RSS.
// RSS alone cannot tell a leak from V8 growing its heap lazily under load; the heap after GC can.
//
//   node --expose-gc --import tsx bench/serve-heap.ts [--rounds 6] [--model PATH]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModel } from '../lib/model.js';
import { serve } from '../lib/server/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '6' }, model: { type: 'string', default: path.join(root, 'models/stories260K.gguf') } } });
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc --import tsx bench/serve-heap.ts');

const person = { type: 'object', properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 } }, required: ['name', 'age'], additionalProperties: false };

async function request(url: string, i: number): Promise<void> {
  const post = (route: string, body: object | string, signal?: AbortSignal): Promise<Response> =>
    fetch(`${url}/${route}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), signal });
  const messages = [{ role: 'user', content: `Story ${i}` }];
  const expectStatus = (r: Response, status: number): void => {
    if (r.status !== status) throw new Error(`request ${i}: status ${r.status}, expected ${status}`);
  };
  switch (i % 5) {
    case 0: {
      const r = await post('chat/completions', { model: 'heap', messages, max_tokens: 64, seed: i, stream: true });
      expectStatus(r, 200);
      if (!(await r.text()).includes('[DONE]')) throw new Error(`request ${i}: no [DONE]`);
      return;
    }
    case 1: {
      const r = await post('completions', { model: 'heap', prompt: 'Once upon a time', max_tokens: 64, seed: i });
      expectStatus(r, 200);
      await r.json();
      return;
    }
    case 2: {
      const r = await post('chat/completions', { model: 'heap', messages, max_tokens: 120, seed: i, temperature: 1, response_format: { type: 'json_schema', json_schema: { name: 'p', schema: person } } });
      expectStatus(r, 200);
      JSON.parse(((await r.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content);
      return;
    }
    case 3: {
      const abort = new AbortController();
      const r = await post('completions', { model: 'heap', prompt: 'Once upon a time', max_tokens: 1500, seed: i, stream: true }, abort.signal);
      expectStatus(r, 200);
      const reader = r.body!.getReader();
      for (let k = 0; k < 3; k++) await reader.read();
      abort.abort();
      return;
    }
    default: {
      const r = await post('chat/completions', '{"model": "heap", "messages": [');
      expectStatus(r, 400);
      await r.json();
    }
  }
}

const mib = (n: number): string => (n / 2 ** 20).toFixed(1);
const model = await loadModel(values.model);
const server = await serve(model, { port: 0, parallel: 2, modelName: 'heap' });
let next = 0;
console.log('round  requests  heap-after-GC MiB  external MiB  RSS MiB  seconds');
for (let round = 1; round <= Number(values.rounds); round++) {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let k = 0; k < 100; k++) await request(server.url, next++);
  }));
  // Let abandoned generations end, then collect everything collectable.
  while (server.metrics().activeGenerations > 0) await new Promise((r) => setTimeout(r, 20));
  gc();
  gc();
  const m = process.memoryUsage();
  console.log(`${String(round).padStart(5)}  ${String(next).padStart(8)}  ${mib(m.heapUsed).padStart(17)}  ${mib(m.external).padStart(12)}  ${mib(m.rss).padStart(7)}  ${((performance.now() - t0) / 1000).toFixed(1).padStart(7)}`);
}
const metrics = server.metrics();
await server.close();
await model.dispose();
console.log(`server: ${metrics.generatedTokens} tokens generated, generations ${JSON.stringify(metrics.generations)}`);
