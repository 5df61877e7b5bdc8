/**
 * The child process behind an {@link EngineProcess} (engines.ts): one engine (moerun or llama.cpp
 * through node-llama-cpp) on one model file, serving timing requests from the parent over IPC.
 * The protocol ({@link WorkerInit}, {@link WorkerRequest}, {@link WorkerReply}) is defined in
 * engines.ts. engines.ts forks this file by its path next to itself (worker.js in dist, worker.ts
 * through tsx from source).
 * @internal
 */
import { loadModel } from '../model.js';
import type { WorkerInit, WorkerReply, WorkerRequest } from './engines.js';

interface Engine {
  /** Milliseconds to evaluate `tokens` (the last one with logits) from an empty context. */
  pp(tokens: number[]): Promise<number>;
  /** Milliseconds for `n` decode steps (logits, greedy pick) after an untimed first token. */
  tg(first: number, n: number): Promise<number>;
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

async function moerunEngine(init: WorkerInit): Promise<Engine> {
  const model = await loadModel(init.file, { threads: init.threads });
  const session = model.createSession({ contextSize: init.contextSize });
  return {
    async pp(tokens) {
      session.reset();
      const t0 = performance.now();
      await session.evaluate(tokens, { logits: 'last' });
      return performance.now() - t0;
    },
    async tg(first, n) {
      session.reset();
      let token = argmax(await session.evaluate([first], { logits: 'last' }));
      const t0 = performance.now();
      for (let i = 0; i < n; i++) token = argmax(await session.evaluate([token], { logits: 'last' }));
      return performance.now() - t0;
    },
  };
}

/** The part of node-llama-cpp's API used here (typed locally: lib/ never depends on its types). */
interface LlamaSequence {
  clearHistory(): Promise<void>;
  controlledEvaluate(input: (number | [number, object])[]): Promise<unknown[]>;
  evaluate(tokens: number[], options: object): AsyncGenerator<number, void, void>;
}
interface NodeLlamaCpp {
  getLlama(options: object): Promise<{
    loadModel(options: object): Promise<{ createContext(options: object): Promise<{ getSequence(): LlamaSequence }> }>;
  }>;
}

async function llamaCppEngine(init: WorkerInit): Promise<Engine> {
  // The options the oracle tests use (test/helpers/oracle.ts), with llama.cpp's default F16 KV cache.
  const moduleName = 'node-llama-cpp';
  const { getLlama } = (await import(moduleName)) as NodeLlamaCpp;
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  const model = await llama.loadModel({ modelPath: init.file, gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: init.contextSize,
    batchSize: init.contextSize,
    threads: init.threads,
    flashAttention: false,
  });
  const sequence = context.getSequence();
  return {
    async pp(tokens) {
      await sequence.clearHistory();
      const last = tokens.length - 1;
      const input = tokens.map((t, i): number | [number, object] => (i === last ? [t, { generateNext: { token: true, options: { temperature: 0 } } }] : t));
      const t0 = performance.now();
      await sequence.controlledEvaluate(input);
      return performance.now() - t0;
    },
    async tg(first, n) {
      await sequence.clearHistory();
      let t0 = 0;
      let steps = -1;
      for await (const token of sequence.evaluate([first], { temperature: 0, yieldEogToken: true })) {
        void token;
        if (steps < 0) t0 = performance.now(); // the first token comes from the untimed prompt
        if (++steps === n) break;
      }
      if (steps < n) throw new Error(`llama.cpp stopped after ${steps} of ${n} decode steps`);
      return performance.now() - t0;
    },
  };
}

const maxRssBytes = (): number => process.resourceUsage().maxRSS * 1024;
const send = (msg: WorkerReply): void => {
  process.send?.(msg);
};
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

let engine: Engine | undefined;
process.on('message', (msg: WorkerInit | WorkerRequest) => {
  void (async () => {
    if (!engine) {
      const init = msg as WorkerInit;
      try {
        const t0 = performance.now();
        engine = await (init.engine === 'moerun' ? moerunEngine(init) : llamaCppEngine(init));
        send({ ok: true, loadMs: performance.now() - t0, maxRssBytes: maxRssBytes() });
      } catch (err) {
        send({ ok: false, error: message(err) });
        process.exit(1);
      }
      return;
    }
    const req = msg as WorkerRequest;
    try {
      if (req.cmd === 'exit') process.exit(0);
      const ms = req.cmd === 'pp' ? await engine.pp(req.tokens) : await engine.tg(req.first, req.n);
      send({ ok: true, ms, maxRssBytes: maxRssBytes() });
    } catch (err) {
      send({ ok: false, error: message(err) });
    }
  })();
});
