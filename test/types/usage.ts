// Compile-time checks of the public API's types (compiled by test/types.test.ts with tsc; never run).
// Lines marked @ts-expect-error must fail to compile: misuse is a type error, not a runtime surprise.
import {
  bench,
  loadModel,
  readGgufInfo,
  MoerunError,
  type BenchReport,
  type GenerateChunk,
  type GenerateStats,
  type GgufInfo,
  type KvCacheType,
  type MoerunErrorCode,
  type Model,
  type ModelInfo,
  type Session,
} from 'moerun';
// @ts-expect-error: the bench report's table and SVG are the CLI's (lib/cli/render.ts), not the library's
import { formatBenchTable } from 'moerun';

export async function usage(): Promise<void> {
  const info: GgufInfo = await readGgufInfo('m.gguf');
  const shape: number[] = info.tensors[0]!.shape;
  void shape;

  await using model = await loadModel('m.gguf', { threads: 'auto', onProgress: (f: number) => void f, signal: AbortSignal.timeout(1000) });
  const mi: ModelInfo = model.info;
  const experts: number = mi.expertCount + mi.expertUsedCount + mi.activeParameterCount;
  void experts;
  const ids: Int32Array = model.tokenize('hi', { addBos: false, special: true });
  const text: string = model.detokenize(ids, { special: false });
  void text;

  const kv: KvCacheType = 'q8_0';
  await using session = model.createSession({ contextSize: 256, kvCacheType: kv });
  const logits: Float32Array = await session.evaluate(ids, { logits: 'all' });
  void logits;
  const own: Model = session.model;  // a model's sessions know it as the Model
  const anySession: Session = session;  // and are Sessions
  void own;
  void anySession;
  const stream = session.generate('Once', { maxTokens: 4, temperature: 0, topK: 1, stop: ['\n'], seed: 1 });
  for await (const chunk of stream) {
    const c: GenerateChunk = chunk;
    const t: string = c.text;
    void t;
  }
  const stats: GenerateStats | undefined = stream.stats;
  void stats;

  try {
    await session.evaluate([1]);
  } catch (e) {
    if (e instanceof MoerunError) {
      const code: MoerunErrorCode = e.code;
      void code;
    }
  }

  const report: BenchReport = await bench({ models: ['m.gguf'], quants: ['Q8_0'], threads: 2, onProgress: (f, label) => void [f, label] });
  const tg: number = report.results[0]!.moerun.tg.median;
  void tg;
  // @ts-expect-error: quants is a closed set
  await bench({ models: ['m.gguf'], quants: ['Q9'] });

  // @ts-expect-error: threads must be a number or 'auto'
  await loadModel('m.gguf', { threads: 'many' });
  // @ts-expect-error: unknown option names are type errors too
  model.createSession({ contextsize: 10 });
  // @ts-expect-error: kvCacheType is a closed set
  model.createSession({ kvCacheType: 'f8' });
  // @ts-expect-error: logits is 'all' | 'last'
  await session.evaluate([1], { logits: 'first' });
  const first = await session.generate('x').next();
  if (!first.done) {
    // @ts-expect-error: chunks carry text as a string
    const wrong: number = first.value.text;
    void wrong;
  } else {
    const done: undefined = first.value;  // a finished stream returns no value
    void done;
  }
}
