// Lifecycle under stress: many loads, sessions and aborts, and objects dropped without dispose().
// Memory must stay flat (RSS after a full GC, against a bound far below what one leak per cycle
// would add), and every abort must leave its session usable.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { bundledModelPath, loadModel, MoerunError } from 'moerun';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const rssMiB = async (): Promise<number> => {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  return process.memoryUsage().rss / 2 ** 20;
};

describe('lifecycle under stress', () => {
  // Each test warms up first (JIT, allocator arenas, V8's heap sizing), then measures.
  it('load/dispose cycles keep RSS flat (1,000 to warm up, 2,000 measured)', async () => {
    const cycle = async () => (await loadModel(bundledModelPath, { threads: 1 })).dispose();
    for (let i = 0; i < 1000; i++) await cycle();
    const before = await rssMiB();
    for (let i = 0; i < 2000; i++) await cycle();
    const after = await rssMiB();
    console.log(`2000 load/dispose cycles: RSS ${before.toFixed(1)} -> ${after.toFixed(1)} MiB`);
    // A leaked model (its file mapping, pool threads, weights' pages) is well over 100 KiB a cycle.
    expect(after - before).toBeLessThan(16);
  }, 180_000);

  it('session create/evaluate/dispose cycles keep RSS flat (200 to warm up, 1,000 measured)', async () => {
    await using m = await loadModel(bundledModelPath, { threads: 1 });
    const cycle = async () => {
      const s = m.createSession({ contextSize: 256 });
      await s.evaluate([1, 2, 3]);
      await s.dispose();
    };
    for (let i = 0; i < 200; i++) await cycle();
    const before = await rssMiB();
    for (let i = 0; i < 1000; i++) await cycle();
    const after = await rssMiB();
    console.log(`1000 session cycles: RSS ${before.toFixed(1)} -> ${after.toFixed(1)} MiB`);
    expect(after - before).toBeLessThan(16);
  }, 120_000);

  it('models and sessions dropped without dispose() are collected: RSS levels off', async () => {
    // V8 does not see native memory, so collection lags the drops; what must hold is that RSS
    // stops growing. A leak would add the same amount every round.
    const drop = async () => {
      const m = await loadModel(bundledModelPath, { threads: 1 });
      await m.createSession({ contextSize: 512 }).evaluate([1, 2, 3]);
    };
    const rounds: number[] = [await rssMiB()];
    for (let k = 0; k < 4; k++) {
      for (let i = 0; i < 600; i++) await drop();
      rounds.push(await rssMiB());
    }
    console.log(`RSS after each 600 models + sessions dropped without dispose(): ${rounds.map((r) => r.toFixed(1)).join(' -> ')} MiB`);
    expect(rounds[4]! - rounds[3]!).toBeLessThan(16);
  }, 180_000);

  it('100 aborts at different points of a prompt each leave the session usable', async () => {
    await using m = await loadModel(bundledModelPath, { threads: 2 });
    const prompt = Array.from({ length: 800 }, (_, i) => 1 + ((i * 37) % 500));
    let aborted = 0;
    for (let i = 0; i < 100; i++) {
      const s = m.createSession({ contextSize: 1024 });
      const c = new AbortController();
      const stream = s.generate(prompt.slice(0, 200 + (i % 7) * 100), { maxTokens: 2, signal: c.signal });
      const pending = stream.next();
      setTimeout(() => c.abort(), i % 5);
      const r = await pending.then(() => 'done', (e: unknown) => (e instanceof MoerunError ? e.code : String(e)));
      expect(['done', 'ERR_ABORTED']).toContain(r);
      if (r === 'ERR_ABORTED') aborted++;
      await stream.return(undefined);
      // Usable: the same session continues (from its pending token, or with new text).
      expect((await s.generate(' The', { maxTokens: 2, temperature: 0 }).text()).length).toBeGreaterThan(0);
      await s.dispose();
    }
    console.log(`100 aborts: ${aborted} landed inside the evaluation`);
    expect(aborted).toBeGreaterThan(50);
  }, 300_000);
});
