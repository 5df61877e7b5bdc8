// The placement planner (issue 14, part 1) with fake device budgets: no GPU is needed to decide
// what would go where, so every rule is checked here against sizes computed independently from the
// GGUF's tensor list and from a real CPU session's KV cache.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledModelPath, loadModel, MoerunError, type Model, type Placement } from 'moerun';
import { makeModel } from '../scripts/make-model.js';
import { run } from './helpers/run.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runCli = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'lib/cli.ts', ...args], { cwd: root });

const dir = mkdtempSync(path.join(tmpdir(), 'moerun-placement-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 2 ** 20;
const EXPERT = /\.ffn_(gate|up|down)_exps\.weight$/;

interface Sizes {
  experts: number;        // routed expert bytes in the file
  tokenEmbd: number;
  other: number;          // every other tensor
  perLayerExpert: Map<number, number>;  // layer -> one expert's bytes
}

/** Byte sizes from the GGUF tensor list, independent of the planner. */
function sizes(model: Model): Sizes {
  const s: Sizes = { experts: 0, tokenEmbd: 0, other: 0, perLayerExpert: new Map() };
  for (const t of model.gguf.tensors) {
    if (EXPERT.test(t.name)) {
      s.experts += t.byteSize;
      const layer = Number(/^blk\.(\d+)\./.exec(t.name)![1]);
      s.perLayerExpert.set(layer, (s.perLayerExpert.get(layer) ?? 0) + t.byteSize / model.info.expertCount);
    } else if (t.name === 'token_embd.weight') {
      s.tokenEmbd += t.byteSize;
    } else {
      s.other += t.byteSize;
    }
  }
  return s;
}

function expectConsistent(p: Placement, model: Model, s: Sizes): void {
  const tied = !model.gguf.tensors.some((t) => t.name === 'output.weight');
  expect(p.device.weightBytes).toBe(s.other + (tied ? s.tokenEmbd : 0));
  expect(p.host.weightBytes).toBe(tied ? 0 : s.tokenEmbd);
  expect(p.device.expertBytes + p.host.expertBytes).toBe(s.experts);
  expect(p.device.totalBytes).toBe(p.device.weightBytes + p.device.kvCacheBytes + p.device.scratchBytes + p.device.expertBytes);
  expect(p.device.totalBytes).toBeLessThanOrEqual(p.budgetBytes);
  expect(p.device.expertCount + p.host.expertCount).toBe(p.expertCount);
  expect(p.layers.reduce((a, l) => a + l.deviceExperts, 0)).toBe(p.device.expertCount);
  expect(p.layers.reduce((a, l) => a + l.deviceExperts * l.expertBytes, 0)).toBe(p.device.expertBytes);
  for (const [layer, bytes] of s.perLayerExpert) expect(p.layers[layer]!.expertBytes).toBe(bytes);
}

const cases = [
  { name: 'qwen3moe', options: { arch: 'qwen3moe' as const, nLayer: 3, nExpert: 8 } },
  { name: 'deepseek2 (MLA, dense lead layer)', options: { arch: 'deepseek2' as const } },
  { name: 'qwen2moe tied embeddings', options: { arch: 'qwen2moe' as const, tiedEmbeddings: true } },
];

describe.each(cases)('planPlacement: $name', ({ name, options }) => {
  let model: Model;
  let s: Sizes;
  beforeAll(async () => {
    const file = path.join(dir, `${name.split(' ')[0]}-${options.arch}.gguf`);
    await makeModel({ ...options, out: file, type: 'f16' });
    model = await loadModel(file, { threads: 1, prefetch: false });
    s = sizes(model);
  });
  afterAll(() => model?.dispose());

  it('puts everything on the device when the budget holds it', () => {
    const p = model.planPlacement({ vram: '8GiB', contextSize: 512 });
    expectConsistent(p, model, s);
    expect(p.host.expertCount).toBe(0);
    expect(p.device.expertBytes).toBe(s.experts);
    expect(p.expertCount).toBe(model.info.expertCount * s.perLayerExpert.size);
    expect(p.summary).toMatch(/^device \(budget 8\.0 GiB\)/);
  });

  it('plans the KV cache a real session allocates', () => {
    for (const kvCacheType of ['f32', 'f16', 'q8_0'] as const) {
      const contextSize = 96;
      const p = model.planPlacement({ vram: '8GiB', contextSize, kvCacheType });
      const session = model.createSession({ contextSize, kvCacheType });
      try {
        expect(p.device.kvCacheBytes).toBe(session.kvCacheBytes);
      } finally {
        session.dispose();
      }
    }
  });

  it('fills a partial budget with expert slots spread evenly over the MoE layers', () => {
    const full = model.planPlacement({ vram: '8GiB', contextSize: 512 });
    const fixed = full.device.weightBytes + full.device.kvCacheBytes + full.device.scratchBytes;
    const moeLayers = [...s.perLayerExpert.keys()];
    // Room for about 2.5 experts per MoE layer.
    const oneRound = moeLayers.reduce((a, l) => a + s.perLayerExpert.get(l)!, 0);
    const p = model.planPlacement({ vram: Math.floor(fixed + 2.5 * oneRound), contextSize: 512 });
    expectConsistent(p, model, s);
    const slots = moeLayers.map((l) => p.layers[l]!.deviceExperts);
    expect(Math.max(...slots) - Math.min(...slots)).toBeLessThanOrEqual(1);
    expect(p.device.expertCount).toBeGreaterThanOrEqual(2 * moeLayers.length);
    expect(p.device.expertCount).toBeLessThan(3 * moeLayers.length);
    // Nothing more fits: every layer that could take one more slot is too expensive for what is left.
    const left = p.budgetBytes - p.device.totalBytes;
    for (const l of moeLayers) {
      if (p.layers[l]!.deviceExperts < model.info.expertCount) expect(s.perLayerExpert.get(l)!).toBeGreaterThan(left);
    }
    // Dense layers hold no slots.
    p.layers.forEach((l, i) => {
      if (!s.perLayerExpert.has(i)) expect(l).toEqual({ deviceExperts: 0, expertBytes: 0 });
    });
  });

  it("keeps every routed expert on the host with experts: 'cpu'", () => {
    const p = model.planPlacement({ vram: '8GiB', contextSize: 512, experts: 'cpu' });
    expectConsistent(p, model, s);
    expect(p.device.expertCount).toBe(0);
    expect(p.host.expertBytes).toBe(s.experts);
  });

  it('refuses a budget that cannot hold the non-expert part, naming the sizes', () => {
    const full = model.planPlacement({ vram: '8GiB', contextSize: 512 });
    const fixed = full.device.weightBytes + full.device.kvCacheBytes + full.device.scratchBytes;
    let err: unknown;
    try {
      model.planPlacement({ vram: fixed - 1, contextSize: 512 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MoerunError);
    expect((err as MoerunError).code).toBe('ERR_OUT_OF_MEMORY');
    expect((err as Error).message).toMatch(/cannot hold the non-expert weights \(.+\), the KV cache of 512 positions \(.+\) and the activations/);
    // Exactly the fixed part fits, with no expert.
    expect(model.planPlacement({ vram: fixed, contextSize: 512 }).device.expertCount).toBe(0);
    // experts: 'gpu' needs them all.
    expect(() => model.planPlacement({ vram: fixed + s.experts - 1, contextSize: 512, experts: 'gpu' })).toThrow(/routed experts .* do not fit/);
    expect(model.planPlacement({ vram: fixed + s.experts, contextSize: 512, experts: 'gpu' }).host.expertCount).toBe(0);
  });
});

describe('planPlacement: options and the CLI', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(bundledModelPath, { threads: 1 });
  });
  afterAll(() => model?.dispose());

  it('reads byte sizes with units', () => {
    expect(model.planPlacement({ vram: '1GiB' }).budgetBytes).toBe(2 ** 30);
    expect(model.planPlacement({ vram: '1.5 GB' }).budgetBytes).toBe(1.5e9);
    expect(model.planPlacement({ vram: '512M' }).budgetBytes).toBe(512 * MiB);
    expect(model.planPlacement({ vram: 123456789 }).budgetBytes).toBe(123456789);
  });

  it('refuses bad options with ERR_INVALID_ARGUMENT', () => {
    for (const bad of [{ vram: 'lots' }, { vram: -1 }, { vram: '0GiB' }, { vram: '1GiB', contextSize: 0 }, { vram: '1GiB', experts: 'disk' },
      { vram: '1GiB', kvCacheType: 'q4_0' }, { vram: '1GiB', batchSize: 1.5 }, { vram: '1GiB', other: 1 }]) {
      expect(() => model.planPlacement(bad as never), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
    expect(() => model.planPlacement(undefined as never)).toThrow(/needs options with vram/);
  });

  it('a dense model has no experts to place', () => {
    const p = model.planPlacement({ vram: '1GiB' });
    expect(p.expertCount).toBe(0);
    expect(p.device.expertBytes + p.host.expertBytes).toBe(0);
  });

  it('prefetch: false gives the same logits as a prefetched load', async () => {
    const mapped = await loadModel(bundledModelPath, { threads: 1, prefetch: false });
    try {
      const a = model.createSession({ contextSize: 32 });
      const b = mapped.createSession({ contextSize: 32 });
      const tokens = model.tokenize('Once upon a time');
      expect(Array.from(await b.evaluate(tokens))).toEqual(Array.from(await a.evaluate(tokens)));
      a.dispose();
      b.dispose();
    } finally {
      mapped.dispose();
    }
  });

  it('moerun info PATH --vram prints the placement', async () => {
    const file = path.join(dir, 'cli-qwen3moe.gguf');
    await makeModel({ arch: 'qwen3moe', out: file, nLayer: 2, nExpert: 8 });
    const r = await runCli(['info', file, '--vram', '64MiB', '--ctx', '256']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/placement of .* on a device with 64\.0 MiB:/);
    expect(r.stdout).toMatch(/routed experts +[\d.]+ MiB +\d+ of 16/);
    const bad = await runCli(['info', file, '--vram', 'lots']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/vram/);
  });
});
