// moerun bench (lib/bench/, lib/cli/bench-command.ts, lib/cli/render.ts): argument parsing, the
// quality arithmetic on distributions small enough to work out by hand, active-bytes arithmetic,
// SVG well-formedness, one real run on stories260K (quantized to Q8_0, both engines, tiny
// pp/tg) checked for the JSON shape, and benchmark models made from a recipe where there is no
// Node (scripts/make-bench-model.ts --recipe, native/test/expand_bench_model.cpp). Speed is never
// asserted here (see bench/).
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bench, bundledModelPath, loadModel, type BenchReport } from 'moerun';

import { makeBenchModel, writeBenchRecipe } from '../scripts/make-bench-model.js';
import { hasTool, run } from './helpers/run.js';

import { activeWeightBytes } from '../lib/bench/gguf-stats.js';
import { spread } from '../lib/bench/measure.js';
import { klDivergence, logSoftmax, QualityAccumulator } from '../lib/bench/quality.js';
import { parseBenchArgs } from '../lib/cli/bench-command.js';
import { formatBenchTable, niceTicks, renderBenchSvg } from '../lib/cli/render.js';
import { MoerunError } from '../lib/errors.js';
import { readGgufInfo, type GgufInfo, type GgufTensorInfo } from '../lib/gguf/reader.js';

const logs = (p: number[]): Float64Array => Float64Array.from(p, Math.log);

describe('parseBenchArgs', () => {
  it('reads repeated --model, --quants lists, numbers and flags', () => {
    const a = parseBenchArgs(['--model', 'a.gguf', '-m', 'b.gguf', '--quants', 'Q4_0, Q8_0,Q4_K_M', '--threads', '2', '--pp', '64',
      '--tg', '16', '--repeats', '5', '--text', 't.txt', '--json', 'o.json', '--svg', 'o.svg', '--vs-llama-cpp']);
    expect(a.options).toEqual({ models: ['a.gguf', 'b.gguf'], quants: ['Q4_0', 'Q8_0', 'Q4_K_M'], text: 't.txt', threads: 2, pp: 64, tg: 16, repeats: 5, vsLlamaCpp: true });
    expect(a.json).toBe('o.json');
    expect(a.svg).toBe('o.svg');
    expect(parseBenchArgs(['--model', 'x.gguf'])).toEqual({ options: { models: ['x.gguf'] }, json: undefined, svg: undefined });
  });

  it('rejects a missing model, bad numbers, unknown types and options', () => {
    const err = (args: string[]): string => {
      try {
        parseBenchArgs(args);
      } catch (e) {
        expect(e).toBeInstanceOf(MoerunError);
        expect((e as MoerunError).code).toBe('ERR_INVALID_ARGUMENT');
        return (e as Error).message;
      }
      throw new Error(`no error for ${args.join(' ')}`);
    };
    expect(err([])).toBe('bench: at least one --model PATH is required');
    expect(err(['--model', 'a', '--threads', '0'])).toBe("bench: --threads expects a positive integer, got '0'");
    expect(err(['--model', 'a', '--pp', '1.5'])).toBe("bench: --pp expects a positive integer, got '1.5'");
    expect(err(['--model', 'a', '--quants', 'Q4_0,Q9_9'])).toMatch(/Q9_9/);
    expect(err(['--model', 'a', '--thread', '2'])).toMatch(/Unknown option '--thread'/);
  });
});

describe('quality arithmetic', () => {
  it('log-softmax normalizes and ignores a shift of the logits', () => {
    const a = logSoftmax([1, 2, 3]);
    const b = logSoftmax([101, 102, 103]);
    expect(a.reduce((s, x) => s + Math.exp(x), 0)).toBeCloseTo(1, 12);
    for (let i = 0; i < 3; i++) expect(a[i]).toBeCloseTo(b[i]!, 12);
    // softmax([0, ln 3]) = [1/4, 3/4]
    const c = logSoftmax([0, Math.log(3)]);
    expect(Math.exp(c[0]!)).toBeCloseTo(0.25, 12);
    expect(Math.exp(c[1]!)).toBeCloseTo(0.75, 12);
  });

  it('KL divergence of hand-computable pairs', () => {
    // KL([1/2, 1/2] ‖ [1/4, 3/4]) = ½ ln 2 + ½ ln(2/3)
    expect(klDivergence(logs([0.5, 0.5]), logs([0.25, 0.75]))).toBeCloseTo(0.5 * Math.log(2) + 0.5 * Math.log(2 / 3), 12);
    expect(klDivergence(logs([0.5, 0.5]), logs([0.25, 0.75]))).toBeCloseTo(0.1438410362, 9);
    expect(klDivergence(logs([0.2, 0.3, 0.5]), logs([0.2, 0.3, 0.5]))).toBe(0);
    // A zero-probability reference entry contributes nothing.
    expect(klDivergence([0, -Infinity], logs([0.5, 0.5]))).toBeCloseTo(Math.log(2), 12);
  });

  it('mean KL, top-1 agreement and perplexity over positions', () => {
    const acc = new QualityAccumulator();
    // Position 1: both pick token 0; the text's next token is 0 (p = 0.6 under the file).
    acc.add(logs([0.7, 0.2, 0.1]), logs([0.6, 0.3, 0.1]), 0);
    // Position 2: the reference picks 2, the file picks 0; the next token is 2 (p = 0.25).
    acc.add(logs([0.1, 0.2, 0.7]), logs([0.5, 0.25, 0.25]), 2);
    const kl1 = 0.7 * Math.log(0.7 / 0.6) + 0.2 * Math.log(0.2 / 0.3);
    const kl2 = 0.1 * Math.log(0.1 / 0.5) + 0.2 * Math.log(0.2 / 0.25) + 0.7 * Math.log(0.7 / 0.25);
    const r = acc.result();
    expect(r.positions).toBe(2);
    expect(r.meanKl).toBeCloseTo((kl1 + kl2) / 2, 12);
    expect(r.top1).toBe(0.5);
    expect(r.perplexity).toBeCloseTo(Math.sqrt(4 / 0.6), 12); // exp(mean(−ln 0.6, −ln 0.25))
  });

  it('a file scored against itself: KL 0, top-1 100%', () => {
    const acc = new QualityAccumulator();
    const row = logSoftmax([0.3, -1, 2, 0.5]);
    acc.add(row, row, 2);
    expect(acc.result()).toEqual({ meanKl: 0, top1: 1, perplexity: 1 / Math.exp(row[2]!), positions: 1 });
  });

  it('spread: min, median, max', () => {
    expect(spread([3, 1, 2])).toEqual({ min: 1, median: 2, max: 3, runs: [3, 1, 2] });
    expect(spread([4, 1, 2, 3]).median).toBe(2.5);
  });
});

describe('active weight bytes per token', () => {
  const tensor = (name: string, byteSize: number, shape: number[] = [64, 64]): GgufTensorInfo => ({ name, byteSize, shape, type: 'Q8_0' } as unknown as GgufTensorInfo);
  const info = (metadata: Record<string, unknown>, tensors: GgufTensorInfo[]): GgufInfo => ({ metadata, tensors } as unknown as GgufInfo);

  it('counts dense tensors, n_used/n_expert of routed experts, one embedding row, and skips MTP layers', () => {
    const md = { 'general.architecture': 'x', 'x.expert_count': 8, 'x.expert_used_count': 2, 'x.block_count': 2, 'x.nextn_predict_layers': 1 };
    const t = [
      tensor('token_embd.weight', 1000, [64, 100]), // 10 bytes a row
      tensor('output.weight', 500),
      tensor('blk.0.attn_q.weight', 40),
      tensor('blk.0.ffn_up_exps.weight', 800),
      tensor('blk.0.ffn_up_shexp.weight', 30),
      tensor('blk.1.attn_q.weight', 40), // next-token-prediction layer: not run
    ];
    expect(activeWeightBytes(info(md, t))).toBe(10 + 500 + 40 + 200 + 30);
  });

  it('a tied embedding is read whole as the output head', () => {
    const md = { 'general.architecture': 'llama', 'llama.block_count': 1 };
    expect(activeWeightBytes(info(md, [tensor('token_embd.weight', 1000, [64, 100]), tensor('blk.0.ffn_up.weight', 7)]))).toBe(1007);
  });
});

// ---- SVG: a tiny XML well-formedness check (tags balanced, attributes quoted, entities escaped) ----

function checkXml(xml: string): { elements: Map<string, number>; texts: string[] } {
  const stack: string[] = [];
  const elements = new Map<string, number>();
  const texts: string[] = [];
  let i = 0;
  let text = '';
  const nameChar = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c === '-' || c === ':' || c === '_';
  const checkText = (s: string): void => {
    for (let k = 0; k < s.length; k++) {
      if (s[k] === '>') throw new Error(`unescaped '>' in text at ${k}`);
      if (s[k] === '&') {
        const end = s.indexOf(';', k);
        const ent = s.slice(k + 1, end);
        if (end < 0 || !['amp', 'lt', 'gt', 'quot', 'apos'].includes(ent)) throw new Error(`bad entity in '${s}'`);
      }
    }
  };
  while (i < xml.length) {
    if (xml[i] !== '<') {
      text += xml[i++];
      continue;
    }
    checkText(text);
    if (text.trim()) texts.push(text.trim());
    text = '';
    i++;
    const closing = xml[i] === '/';
    if (closing) i++;
    let name = '';
    while (i < xml.length && nameChar(xml[i]!)) name += xml[i++];
    if (!name) throw new Error(`empty tag name at ${i}`);
    const attrs = new Set<string>();
    for (;;) {
      while (xml[i] === ' ' || xml[i] === '\n') i++;
      if (xml[i] === '>' || (xml[i] === '/' && xml[i + 1] === '>')) break;
      if (closing) throw new Error(`attributes on closing tag </${name}>`);
      let attr = '';
      while (i < xml.length && nameChar(xml[i]!)) attr += xml[i++];
      if (!attr || xml[i] !== '=' || xml[i + 1] !== '"') throw new Error(`bad attribute in <${name}> at ${i}`);
      if (attrs.has(attr)) throw new Error(`duplicate attribute ${attr} in <${name}>`);
      attrs.add(attr);
      i += 2;
      const end = xml.indexOf('"', i);
      if (end < 0) throw new Error('unterminated attribute');
      const value = xml.slice(i, end);
      if (value.includes('<')) throw new Error(`'<' in attribute ${attr}`);
      checkText(value);
      i = end + 1;
    }
    const selfClosing = xml[i] === '/';
    i += selfClosing ? 2 : 1;
    if (closing) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
    } else {
      elements.set(name, (elements.get(name) ?? 0) + 1);
      if (!selfClosing) stack.push(name);
      else if (stack.length === 0 && name !== 'svg') throw new Error('content outside the root');
    }
    if (stack.length === 0 && !selfClosing && xml.slice(i).trim() !== '') throw new Error('content after the root element');
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  return { elements, texts };
}

function fixtureReport(): BenchReport {
  const speed = (pp: number, tg: number) => ({
    engine: 'moerun (avx512)', loadMs: 5, peakRssBytes: 50 << 20,
    pp: { min: pp, median: pp, max: pp, runs: [pp] }, tg: { min: tg, median: tg, max: tg, runs: [tg] }, decodeGBs: 1.5,
  });
  const file = (label: string, kl: number, tg: number, withLlama: boolean) => ({
    label, path: `/tmp/${label}.gguf`, type: label, sizeBytes: 1 << 20, parameterCount: 260000, bitsPerWeight: 8, activeBytesPerToken: 1e6,
    moerun: speed(2000, tg),
    ...(withLlama ? { llamaCpp: { ...speed(1000, tg / 2), engine: 'llama.cpp' }, ratio: { pp: 2, tg: 2 } } : {}),
    quality: { meanKl: kl, top1: 1 - kl, perplexity: 24 + kl, positions: 100 }, reference: 'F32 <ref> & co',
  });
  return {
    conditions: { date: '2025-01-01T00:00:00.000Z', commit: 'abc1234', moerunVersion: '0.1.0', node: 'v20', cpu: 'AMD "EPYC" <test>', isa: 'avx512', threads: 2,
      bandwidthGBs: 20, loadAverage: { start: 1, end: 1, cpus: 2 }, pp: 512, tg: 128, repeats: 3, text: 'aesop.txt', textTokens: 100 },
    results: [file('F32', 0, 3000, true), file('Q8_0', 0.0013, 3500, true), file('Q4_0', 0.19, 3800, false)],
    routing: [],
  };
}

describe('SVG plot', () => {
  it('is well-formed XML with one labelled point per file, axes and ticks', () => {
    const svg = renderBenchSvg(fixtureReport());
    const { elements, texts } = checkXml(svg);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    // 3 moerun points + 2 llama.cpp points + 2 legend markers
    expect(elements.get('circle')).toBe(7);
    for (const label of ['F32', 'Q8_0', 'Q4_0']) expect(texts).toContain(label);
    expect(elements.get('tspan')).toBe(6);
    expect(texts.some((t) => t.startsWith('mean KL divergence from F32 &lt;ref&gt; &amp; co'))).toBe(true);
    expect(texts.some((t) => t.startsWith('decode speed'))).toBe(true);
    expect(texts).toContain('0');
    expect(elements.get('line')! >= 8).toBe(true); // grid lines
  });

  it('the checker itself rejects broken XML', () => {
    expect(() => checkXml('<svg><g></svg>')).toThrow(/closes/);
    expect(() => checkXml('<svg a=1></svg>')).toThrow(/bad attribute/);
    expect(() => checkXml('<svg>a & b</svg>')).toThrow(/entity/);
    expect(() => checkXml('<svg><g>')).toThrow(/unclosed/);
  });

  it('ticks are 1, 2 or 5 × 10^k and cover the maximum', () => {
    expect(niceTicks(0.23)).toEqual([0, 0.05, 0.1, 0.15, 0.2, 0.25]);
    expect(niceTicks(3800)).toEqual([0, 1000, 2000, 3000, 4000]);
  });
});

describe('bench() on stories260K', () => {
  it('quantizes to Q8_0 and reports every figure for both files and both engines', async () => {
    const fractions: number[] = [];
    const report = await bench({
      models: [bundledModelPath], quants: ['Q8_0'], threads: 2, pp: 32, tg: 4, repeats: 2, qualityTokens: 200, vsLlamaCpp: true,
      onProgress: (f) => fractions.push(f),
    });
    const json = JSON.parse(JSON.stringify(report)) as BenchReport;
    expect(Object.keys(json).sort()).toEqual(['conditions', 'results', 'routing']);
    expect(json.routing).toEqual([]);  // a dense model
    expect(Object.keys(json.conditions).sort()).toEqual(
      ['bandwidthGBs', 'commit', 'cpu', 'date', 'isa', 'loadAverage', 'moerunVersion', 'node', 'pp', 'repeats', 'text', 'textTokens', 'tg', 'threads'],
    );
    expect(json.conditions).toMatchObject({ threads: 2, pp: 32, tg: 4, repeats: 2, text: 'aesop.txt', textTokens: 200 });
    expect(json.conditions.bandwidthGBs).toBeGreaterThan(0);
    expect(json.results.map((r) => [r.label, r.type, r.reference])).toEqual([['stories260K.gguf', 'F32', 'stories260K.gguf'], ['Q8_0', 'Q8_0', 'stories260K.gguf']]);
    for (const r of json.results) {
      expect(r.sizeBytes).toBeGreaterThan(0);
      expect(r.activeBytesPerToken).toBeGreaterThan(0);
      for (const e of [r.moerun, r.llamaCpp]) {
        if (!e || !('engine' in e)) throw new Error(`llama.cpp did not run: ${JSON.stringify(e)}`);
        expect(e.pp.runs).toHaveLength(2);
        expect(e.tg.runs).toHaveLength(2);
        for (const x of [e.loadMs, e.peakRssBytes, e.pp.median, e.tg.median, e.decodeGBs]) expect(x).toBeGreaterThan(0);
      }
      expect(r.ratio!.pp).toBeGreaterThan(0);
      expect(r.quality!.positions).toBeGreaterThan(100);
    }
    const [ref, q8] = json.results;
    expect(ref!.quality).toMatchObject({ meanKl: 0, top1: 1 });
    expect(q8!.quality!.meanKl).toBeGreaterThan(0);
    expect(q8!.quality!.meanKl).toBeLessThan(0.05);
    expect(q8!.quality!.top1).toBeGreaterThan(0.9);
    expect(Math.abs(q8!.quality!.perplexity / ref!.quality!.perplexity - 1)).toBeLessThan(0.05);
    expect(q8!.bitsPerWeight).toBeLessThan(ref!.bitsPerWeight);
    expect(fractions.at(-1)).toBe(1);
    const table = formatBenchTable(report);
    expect(table).not.toMatch(/NaN|n\/a|failed/);
    expect(table).toContain('tg ratio');
    checkXml(renderBenchSvg(report));
  }, 300_000);
});

describe('bench models from a recipe (for machines without Node)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'moerun-recipe-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ready = hasTool('g++', 'bench.test');

  it.runIf(ready)('expand_bench_model writes the file make-bench-model.ts writes, byte for byte up to the data, and it runs', async () => {
    const options = { shape: 'tinyllama-1.1b', quant: 'Q4_K_M', layers: 2 } as const;
    const { recipe, header } = await writeBenchRecipe(options, path.join(dir, 'recipe'));
    const direct = await makeBenchModel({ ...options, dir: path.join(dir, 'direct') });
    const expander = path.join(dir, 'expand_bench_model');
    const cc = await run('g++', ['-O2', '-std=c++17', 'native/test/expand_bench_model.cpp', '-o', expander]);
    expect(cc.status, cc.output).toBe(0);
    const r = await run(expander, [recipe, dir]);
    expect(r.status, r.output).toBe(0);
    const expanded = r.stdout.trim();
    expect(expanded).toBe(path.join(dir, path.basename(direct)));

    // Same size, same header (metadata, vocabulary, tensor infos); the data differs (its own random numbers).
    expect(statSync(expanded).size).toBe(statSync(direct).size);
    const head = readFileSync(header);
    expect(readFileSync(expanded).subarray(0, head.length).equals(head)).toBe(true);
    expect(readFileSync(direct).subarray(0, head.length).equals(head)).toBe(true);
    const [a, b] = [await readGgufInfo(expanded), await readGgufInfo(direct)];
    expect(a.tensors).toEqual(b.tensors);
    expect(a.dataOffset).toBe(head.length);

    // It loads and gives finite logits of the same scale as the direct file's.
    const rms = async (file: string): Promise<number> => {
      const model = await loadModel(file, { threads: 2 });
      try {
        const logits = await model.createSession({ contextSize: 16 }).evaluate([1, 300, 4000, 20000], { logits: 'last' });
        let s = 0;
        for (const x of logits) {
          expect(Number.isFinite(x)).toBe(true);
          s += x * x;
        }
        return Math.sqrt(s / logits.length);
      } finally {
        await model.dispose();
      }
    };
    const [ra, rb] = [await rms(expanded), await rms(direct)];
    expect(ra).toBeGreaterThan(rb / 2);
    expect(ra).toBeLessThan(rb * 2);
    rmSync(expanded);
    rmSync(direct);

    // A broken recipe is refused with the line at fault, and nothing is left behind.
    const lines = readFileSync(recipe, 'utf8').split('\n');
    const at = lines.findIndex((l) => l.startsWith('tensor ')) + 1;  // the second tensor
    const fields = lines[at]!.split(' ');
    fields[3] = String(Number(fields[3]) + 32);
    lines[at] = fields.join(' ');
    const bad = path.join(dir, 'recipe', 'bad.recipe');
    writeFileSync(bad, lines.join('\n'));
    const refused = await run(expander, [bad, dir]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`bad\\.recipe:${at + 1}: .*offset`));
    expect(() => statSync(expanded)).toThrow();
  }, 120_000);
});
