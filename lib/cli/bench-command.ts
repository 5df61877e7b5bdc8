/**
 * `moerun bench`: its arguments, its usage text, and the command itself (progress bar, Ctrl-C,
 * tables on stdout, `--json` and `--svg` files). The measuring is {@link bench} in lib/bench/.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import { bench, type BenchOptions } from '../bench/index.js';
import { MoerunError } from '../errors.js';
import { describeQuantizeType, type QuantizeType } from '../quantize.js';
import { formatBenchTable, renderBenchSvg } from './render.js';

/** Parsed `moerun bench` arguments. */
export interface BenchCliArgs {
  options: BenchOptions;
  json: string | undefined;
  svg: string | undefined;
}

/** Usage of `moerun bench`. */
export const benchUsage = `  moerun bench --model A.gguf [--model B.gguf ...] [--quants Q4_0,Q4_K_M,Q6_K,Q8_0] [--text FILE]
               [--threads N] [--pp 512] [--tg 128] [--repeats 3] [--vram SIZE] [--json out.json] [--svg out.svg]
               [--vs-llama-cpp]
      Measures each file (and each --quants level of it, quantized into a temp dir with any TYPE
      \`moerun quantize\` takes: Q2_K, Q3_K_M, Q4_K_S, IQ4_XS, ...): size, load time,
      peak RSS, pp/tg tokens/s, decode GB/s against measured memory bandwidth, and KL divergence,
      top-1 agreement and perplexity against the highest-precision file over --text (default: Aesop).
      For MoE models, expert popularity per layer on the text; with --vram (e.g. 16GiB), also the
      hit rate of a hot-expert cache on a GPU with that much memory, simulated on the same tokens.
      --vs-llama-cpp runs llama.cpp (node-llama-cpp) on the same files, interleaved, with ratios.
`;

/** Parses `moerun bench` arguments (without the command word); throws ERR_INVALID_ARGUMENT. */
export function parseBenchArgs(args: string[]): BenchCliArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: false,
      options: {
        model: { type: 'string', short: 'm', multiple: true },
        quants: { type: 'string' },
        text: { type: 'string' },
        threads: { type: 'string', short: 't' },
        pp: { type: 'string' },
        tg: { type: 'string' },
        repeats: { type: 'string' },
        vram: { type: 'string' },
        json: { type: 'string' },
        svg: { type: 'string' },
        'vs-llama-cpp': { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new MoerunError('ERR_INVALID_ARGUMENT', `bench: ${(err as Error).message}`);
  }
  const v = parsed.values;
  if (!v.model || v.model.length === 0) throw new MoerunError('ERR_INVALID_ARGUMENT', 'bench: at least one --model PATH is required');
  const int = (name: string, s: string | undefined): number | undefined => {
    if (s === undefined) return undefined;
    const n = Number(s);
    if (s.trim() === '' || !Number.isInteger(n) || n <= 0) throw new MoerunError('ERR_INVALID_ARGUMENT', `bench: --${name} expects a positive integer, got '${s}'`);
    return n;
  };
  const quants = v.quants === undefined ? undefined : v.quants.split(',').map((q) => q.trim()).filter((q) => q !== '');
  if (quants) for (const q of quants) describeQuantizeType(q);
  const options: BenchOptions = { models: v.model };
  if (quants) options.quants = quants as QuantizeType[];
  if (v.text !== undefined) options.text = v.text;
  const threads = int('threads', v.threads);
  if (threads !== undefined) options.threads = threads;
  const pp = int('pp', v.pp);
  if (pp !== undefined) options.pp = pp;
  const tg = int('tg', v.tg);
  if (tg !== undefined) options.tg = tg;
  const repeats = int('repeats', v.repeats);
  if (repeats !== undefined) options.repeats = repeats;
  if (v.vram !== undefined) options.vram = v.vram;
  if (v['vs-llama-cpp']) options.vsLlamaCpp = true;
  return { options, json: v.json, svg: v.svg };
}

/** Whether node-llama-cpp can be imported here. */
async function haveNodeLlamaCpp(): Promise<boolean> {
  try {
    const moduleName = 'node-llama-cpp'; // a devDependency: never imported statically from lib/
    await import(moduleName);
    return true;
  } catch {
    return false;
  }
}

/** `moerun bench ...`: runs {@link bench}, prints the tables, writes JSON and SVG. Returns the exit code. */
export async function benchCommand(args: string[]): Promise<number> {
  const { options, json, svg } = parseBenchArgs(args);
  for (const m of options.models) if (!existsSync(m)) throw new MoerunError('ERR_IO', `bench: no such model file '${m}'`);
  if (options.vsLlamaCpp && !(await haveNodeLlamaCpp())) {
    process.stderr.write('moerun bench: --vs-llama-cpp needs the node-llama-cpp package: npm install --no-save node-llama-cpp\n');
    return 2;
  }
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  const tty = process.stderr.isTTY;
  let last = 0;
  const started = Date.now();
  const draw = (fraction: number, label: string): void => {
    const now = Date.now();
    if (!tty || (now - last < 100 && fraction < 1)) return;
    last = now;
    const width = 30;
    const filled = Math.round(fraction * width);
    const text = label.length > 48 ? `${label.slice(0, 45)}...` : label;
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${String(Math.round((now - started) / 1000)).padStart(4)} s ${text.padEnd(48)}`);
  };
  try {
    const report = await bench({ ...options, onProgress: draw, signal: controller.signal });
    if (tty) process.stderr.write('\n');
    process.stdout.write(formatBenchTable(report) + '\n');
    if (json) await writeFile(json, JSON.stringify(report, null, 2) + '\n');
    if (svg) await writeFile(svg, renderBenchSvg(report));
    return 0;
  } catch (err) {
    if (tty) process.stderr.write('\n');
    if (err instanceof MoerunError && err.code === 'ERR_ABORTED') {
      process.stderr.write('moerun bench: interrupted\n');
      return 130;
    }
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
