// Routing statistics and the simulated hot-expert cache (issue 14, part 3's policy): counts checked
// against what routing must give (every token selects n_used experts per MoE layer), the cache
// against the cases whose answer is known without it (every expert resident: one cold miss per
// distinct expert; no slots: all misses), and LRU's inclusion property (more slots never hit less).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledModelPath, loadModel, MoerunError, type Model } from 'moerun';
import { makeModel } from '../scripts/make-model.js';
import { popularityBar } from '../lib/routing.js';
import { bench } from '../lib/bench/index.js';
import { formatBenchTable } from '../lib/cli/render.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moerun-routing-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Deterministic pseudo-random token ids in [0, n). */
function tokens(count: number, n: number, seed = 7): number[] {
  let x = seed;
  return Array.from({ length: count }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  });
}

describe('routingStats on an MoE model', () => {
  let model: Model;
  let input: number[];
  const nExpert = 16;
  const nUsed = 2;
  beforeAll(async () => {
    const file = path.join(dir, 'qwen3moe.gguf');
    await makeModel({ arch: 'qwen3moe', out: file, nLayer: 3, nExpert, nExpertUsed: nUsed });
    model = await loadModel(file, { threads: 1 });
    input = tokens(300, model.info.vocabSize);
  });
  afterAll(() => model?.dispose());

  it('counts n_used selections per token at every MoE layer, the same on every run', async () => {
    const a = await model.routingStats(input, { contextSize: 128 });
    expect(a.tokens).toBe(input.length);
    expect(a.layers.map((l) => l.layer)).toEqual([0, 1, 2]);
    for (const l of a.layers) {
      expect(l.selections).toHaveLength(nExpert);
      expect(l.selections.reduce((x, y) => x + y, 0)).toBe(input.length * nUsed);
      // A token never selects an expert twice, so no expert is selected by more tokens than there are.
      expect(Math.max(...l.selections)).toBeLessThanOrEqual(input.length);
    }
    expect(a.cache).toBeUndefined();
    expect(await model.routingStats(input, { contextSize: 128 })).toEqual(a);
  });

  it('with every expert resident, each distinct expert misses once (a cold slot) and then always hits', async () => {
    const s = await model.routingStats(input, { contextSize: 128, vram: '4GiB' });
    expect(s.cache!.placement.host.expertCount).toBe(0);
    const distinct = s.layers.reduce((a, l) => a + l.selections.filter((n) => n > 0).length, 0);
    expect(s.cache!.misses).toBe(distinct);
    expect(s.cache!.hits).toBe(input.length * nUsed * s.layers.length - distinct);
    expect(s.cache!.loadsPerToken).toBeCloseTo(distinct / input.length, 12);
  });

  it('with no slots, every selection misses and nothing is loaded', async () => {
    const full = model.planPlacement({ vram: '4GiB', contextSize: 128 });
    const fixed = full.device.weightBytes + full.device.kvCacheBytes + full.device.scratchBytes;
    const s = await model.routingStats(input, { contextSize: 128, vram: fixed });
    expect(s.cache!.placement.device.expertCount).toBe(0);
    expect(s.cache!.hits).toBe(0);
    expect(s.cache!.misses).toBe(input.length * nUsed * 3);
    expect(s.cache!.loadsPerToken).toBe(0);
    expect(s.cache!.hitRate).toBe(0);
  });

  it('more slots never hit less (LRU is a stack algorithm)', async () => {
    const full = model.planPlacement({ vram: '4GiB', contextSize: 128 });
    const fixed = full.device.weightBytes + full.device.kvCacheBytes + full.device.scratchBytes;
    const oneRound = full.layers.reduce((a, l) => a + l.expertBytes, 0);
    let last = -1;
    const rates: string[] = [];
    for (let slots = 1; slots <= nExpert; slots++) {
      const s = await model.routingStats(input, { contextSize: 128, vram: fixed + slots * oneRound });
      expect(s.cache!.placement.layers.map((l) => l.deviceExperts)).toEqual([slots, slots, slots]);
      expect(s.cache!.hits).toBeGreaterThanOrEqual(last);
      last = s.cache!.hits;
      rates.push(`${slots}:${(s.cache!.hitRate * 100).toFixed(0)}%`);
    }
    console.log(`routing: simulated hit rate by slots per layer (of ${nExpert}): ${rates.join(' ')}`);
  });

  it('moerun bench reports the popularity per layer and the simulated cache', async () => {
    const report = await bench({ models: [model.path], threads: 1, pp: 16, tg: 4, repeats: 1, qualityTokens: 200, vram: '4GiB' });
    expect(report.routing).toHaveLength(1);
    const r = report.routing[0]!;
    expect(r.layers.map((l) => l.layer)).toEqual([0, 1, 2]);
    for (const l of r.layers) expect(l.selections.reduce((a, b) => a + b, 0)).toBe(r.tokens * nUsed);
    expect(r.cache).toMatchObject({ vramBytes: 4 * 2 ** 30, deviceExperts: 3 * nExpert, expertCount: 3 * nExpert });
    expect(r.cache!.hitRate).toBeGreaterThan(0.5);
    const table = formatBenchTable(report);
    expect(table).toMatch(/expert routing of qwen3moe\.gguf over \d+ tokens of aesop\.txt/);
    expect(table).toMatch(/layer +2 [ ▁▂▃▄▅▆▇█]{16} [\d.]+%/);
    expect(table).toMatch(/with 4\.0 GiB of GPU memory: 48 of 48 experts resident; hot-expert cache hit rate [\d.]+%/);
  });

  it('refuses bad input and honours an abort', async () => {
    await expect(model.routingStats([], {})).rejects.toThrow(/no tokens/);
    await expect(model.routingStats(input, { contextSize: 0 })).rejects.toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    await expect(model.routingStats(input, { other: 1 } as never)).rejects.toThrow(/Unknown option 'other'/);
    await expect(model.routingStats(42 as never)).rejects.toThrow(/Expected a string or token ids/);
    await expect(model.routingStats([model.info.vocabSize])).rejects.toThrow(MoerunError);
    const controller = new AbortController();
    controller.abort();
    await expect(model.routingStats(input, { signal: controller.signal })).rejects.toThrow(expect.objectContaining({ code: 'ERR_ABORTED' }));
    // The model is still usable.
    expect((await model.routingStats(input.slice(0, 10))).tokens).toBe(10);
  });
});

describe('routingStats on a dense model', () => {
  it('has no MoE layer and a cache of nothing', async () => {
    const model = await loadModel(bundledModelPath, { threads: 1 });
    try {
      const s = await model.routingStats('Once upon a time, there was a little girl.', { vram: '1GiB' });
      expect(s.layers).toEqual([]);
      expect(s.cache).toMatchObject({ hits: 0, misses: 0, hitRate: 0, loadsPerToken: 0 });
    } finally {
      model.dispose();
    }
  });
});

describe('popularityBar', () => {
  it('draws sorted shares in eighths', () => {
    expect(popularityBar([1, 1, 1, 1])).toBe('████');
    expect(popularityBar([0, 8, 0, 4])).toBe('█▄  ');
    expect(popularityBar([])).toBe('');
    expect(popularityBar(Array.from({ length: 64 }, (_, i) => i)).length).toBe(16);
  });
});
