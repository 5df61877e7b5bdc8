#!/usr/bin/env node
/**
 * The `moerun` command line.
 *   moerun run [prompt] [--model PATH] [-n N] [--temperature T] [--seed S] [--threads N] [--pin-threads]
 *   moerun info [PATH] [--vram SIZE [--ctx N] [--experts auto|cpu|gpu]]
 *   moerun quantize IN.gguf OUT.gguf TYPE [--threads N] [--imatrix F] [--tensor-type PATTERN=TYPE]... [--output-tensor-type T] [--token-embedding-type T] [--pure]
 *   moerun imatrix --model X --text FILE [-o imatrix.gguf] [--ctx N] [--chunks N] [--threads N] [--kv-type T] [--output-format gguf|dat]
 *   moerun chat [--model PATH] [--system TEXT]
 *   moerun tokenize PATH TEXT
 *   moerun bench --model A.gguf [--model B.gguf ...] [--quants Q4_0,Q8_0] [--vs-llama-cpp] ...
 *   moerun serve [--model PATH] [--port 8080] [--host 127.0.0.1] [--parallel N] [--api-key K] ...
 * The entry point (package.json `bin`); commands that outgrow it live in lib/cli/ (bench-command.ts,
 * with the report's table and SVG in render.ts). Nothing in the library imports lib/cli*.
 */
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { benchCommand, benchUsage } from './cli/bench-command.js';
import { serveCommand, serveUsage } from './cli/serve-command.js';
import { MoerunError } from './errors.js';
import { readGgufInfo, type GgufValue } from './gguf/reader.js';
import { loadModel } from './model.js';
import type { ExpertPlacement } from './placement.js';
import type { ChatMessage } from './chat.js';
import { computeImatrix, writeImatrix } from './imatrix.js';
import { describeQuantizeType, parseTensorTypeArg, quantize, quantizeTypes, type QuantizeTensorType, type QuantizeType } from './quantize.js';
import { bundledModelPath, cpuInfo, gpuInfo } from './system.js';
import { nativeBinaryPath } from './native.js';

const usage = `Usage:
  moerun run [prompt] [--model PATH] [-n N] [--temperature T] [--seed S] [--threads N] [--pin-threads]
      Streams a continuation of the prompt (default "Once upon a time"). Without --model it
      runs the bundled TinyStories 260K model. --pin-threads binds each compute thread to its own
      physical core (loadModel's pinThreads).
  moerun info [PATH] [--vram SIZE [--ctx N] [--experts auto|cpu|gpu]]
      Prints the native binary in use and the CPU kernel paths (in use, supported); with PATH,
      also a GGUF file's architecture, metadata and tensors. With --vram (e.g. 24GiB), instead
      where the model's parts would go on a GPU with that much memory for it: KV cache,
      activations and non-expert weights first, then as many routed experts as the rest holds.
  moerun quantize IN.gguf OUT.gguf TYPE [--threads N] [--imatrix FILE] [--tensor-type PATTERN=TYPE]...
                 [--output-tensor-type TYPE] [--token-embedding-type TYPE] [--pure]
      Re-encodes the weights as TYPE, as \`llama-quantize IN OUT TYPE\` does: llama.cpp's per-tensor
      recipe for that file type (Q3_K, Q4_K, Q5_K: every quantizable tensor that block type).
      --imatrix takes an importance matrix (moerun imatrix's or llama-imatrix's, GGUF or .dat),
      which the 1- and 2-bit mixes need; --tensor-type gives the tensors whose name matches the
      regular expression PATTERN a type of their own (first match wins); --pure drops the recipe.
      Routers, norms and 1-D tensors are copied.
      TYPE: ${quantizeTypes.join(', ')}
  moerun imatrix --model X.gguf --text FILE [-o imatrix.gguf] [--ctx N] [--chunks N] [--threads N]
                 [--kv-type f16] [--output-format gguf|dat]
      Computes an importance matrix of the model on the text, as \`llama-imatrix -m X -f FILE\`
      does: chunks of --ctx tokens (default 512; the text must hold two), at most --chunks of them.
      Writes llama.cpp's imatrix GGUF format (default imatrix.gguf), or its legacy .dat format
      with --output-format dat or an -o name ending in .dat.
  moerun chat [--model PATH] [--system TEXT] [--threads N]
      Interactive chat with the model's chat template, streaming answers. Ctrl-C stops an
      answer; Ctrl-C at an empty prompt (or Ctrl-D) exits.
  moerun tokenize PATH TEXT
      Prints the token ids and pieces of TEXT (special tokens parsed).
${benchUsage}${serveUsage}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run':
      return run(rest);
    case 'info':
      return info(rest);
    case 'quantize':
      return quantizeCommand(rest);
    case 'imatrix':
      return imatrixCommand(rest);
    case 'bench':
      return benchCommand(rest);
    case 'chat':
      return chatCommand(rest);
    case 'tokenize':
      return tokenizeCommand(rest);
    case 'serve':
      return serveCommand(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(usage);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`moerun: unknown command '${command}'\n\n${usage}`);
      return 2;
  }
}

function parseNumber(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new MoerunError('ERR_INVALID_ARGUMENT', `--${name} expects a number, got '${value}'`);
  return n;
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      model: { type: 'string', short: 'm' },
      n: { type: 'string', short: 'n' },
      temperature: { type: 'string', short: 't' },
      seed: { type: 'string' },
      threads: { type: 'string' },
      'pin-threads': { type: 'boolean' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      'min-p': { type: 'string' },
      'repeat-penalty': { type: 'string' },
      'context-size': { type: 'string', short: 'c' },
    },
  });
  const prompt = positionals.length > 0 ? positionals.join(' ') : 'Once upon a time';
  const threads = parseNumber('threads', values.threads);
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  await using model = await loadModel(values.model ?? bundledModelPath, {
    ...(threads === undefined ? {} : { threads }),
    ...(values['pin-threads'] ? { pinThreads: true } : {}),
  });
  const contextSize = parseNumber('context-size', values['context-size']);
  const session = model.createSession(contextSize === undefined ? {} : { contextSize });
  const options = {
    maxTokens: parseNumber('n', values.n) ?? 128,
    temperature: parseNumber('temperature', values.temperature) ?? 0.8,
    seed: parseNumber('seed', values.seed),
    topK: parseNumber('top-k', values['top-k']),
    topP: parseNumber('top-p', values['top-p']),
    minP: parseNumber('min-p', values['min-p']),
    repeatPenalty: parseNumber('repeat-penalty', values['repeat-penalty']),
    signal: controller.signal,
  };
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  process.stdout.write(prompt);
  const stream = session.generate(prompt, defined);
  try {
    for await (const chunk of stream) process.stdout.write(chunk.text);
  } catch (err) {
    if (!(err instanceof MoerunError && err.code === 'ERR_ABORTED')) throw err;
  } finally {
    process.off('SIGINT', onSigint);
  }
  process.stdout.write('\n');
  const s = session.lastStats;
  if (s && process.stderr.isTTY) {
    const tps = s.generatedTokens > 1 ? ((s.generatedTokens - 1) / s.decodeMs) * 1000 : 0;
    process.stderr.write(`[${s.promptTokens} prompt tokens in ${s.promptMs.toFixed(1)} ms, ${s.generatedTokens} generated at ${tps.toFixed(1)} tok/s; stop: ${s.stopReason}]\n`);
  }
  return 0;
}

function show(value: GgufValue): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  const arr = value as ArrayLike<unknown>;
  const head = Array.from({ length: Math.min(arr.length, 6) }, (_, i) => {
    const v = arr[i];
    return typeof v === 'string' ? JSON.stringify(v) : String(v);
  });
  return `[${head.join(', ')}${arr.length > 6 ? ', ...' : ''}] (${arr.length})`;
}

/** `moerun info`'s CUDA lines: the library, each device (name, memory, compute capability), or why none. */
function gpuLines(): string[] {
  const g = gpuInfo();
  const gib = (b: number): string => `${(b / 2 ** 30).toFixed(1)} GiB`;
  const lines = [`cuda library: ${g.library ?? 'none'}`];
  for (const d of g.devices) {
    lines.push(`cuda device ${d.index}: ${d.name}, ${gib(d.totalMemory)} (${gib(d.freeMemory)} free), compute capability ${d.computeCapability}${d.supported ? '' : ' (no kernels for it in this build)'}`);
  }
  lines.push(g.usable ? `gpu: cuda (driver ${g.driverVersion}, runtime ${g.runtimeVersion})` : `gpu: none (${g.reason})`);
  return lines;
}

async function info(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { vram: { type: 'string' }, ctx: { type: 'string' }, experts: { type: 'string' } },
  });
  if (positionals.length > 1) {
    process.stderr.write(`moerun info: expected at most one GGUF path\n\n${usage}`);
    return 2;
  }
  if (values.vram !== undefined) {
    if (positionals.length !== 1) {
      process.stderr.write(`moerun info: --vram plans a model's placement: give its GGUF path\n\n${usage}`);
      return 2;
    }
    return placementCommand(positionals[0]!, values.vram, values.ctx, values.experts);
  }
  const cpu = cpuInfo();
  const out: string[] = [];
  out.push(`native: ${nativeBinaryPath()} (${process.platform}-${process.arch})`);
  out.push(`cpu kernels: ${cpu.activePath ?? `none: ${cpu.error}`} (this CPU supports ${cpu.supportedPaths.join(', ')})`);
  out.push(...gpuLines());
  if (positionals.length === 0) {
    process.stdout.write(out.join('\n') + '\n');
    return 0;
  }
  const gguf = await readGgufInfo(positionals[0]!);
  out.push('', `GGUF v${gguf.version}, ${gguf.fileSize} bytes, ${gguf.tensors.length} tensors, alignment ${gguf.alignment}`);
  out.push('', 'metadata:');
  for (const [key, value] of Object.entries(gguf.metadata)) out.push(`  ${key} = ${show(value)}`);
  const byType = new Map<string, { count: number; bytes: number }>();
  for (const t of gguf.tensors) {
    const e = byType.get(t.type) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += t.byteSize;
    byType.set(t.type, e);
  }
  out.push('', 'tensors by type:');
  for (const [type, e] of byType) out.push(`  ${type.padEnd(8)} ${String(e.count).padStart(6)} tensors ${(e.bytes / 2 ** 20).toFixed(2).padStart(10)} MiB`);
  out.push('', 'tensors:');
  for (const t of gguf.tensors) out.push(`  ${t.name.padEnd(40)} ${t.type.padEnd(8)} [${t.shape.join(', ')}]`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

/** `moerun info PATH --vram SIZE`: the model mapped (not read) and its placement on such a device. */
async function placementCommand(path: string, vram: string, ctx: string | undefined, experts: string | undefined): Promise<number> {
  const MiB = (n: number): string => `${(n / 2 ** 20).toFixed(1).padStart(10)} MiB`;
  await using model = await loadModel(path, { prefetch: false });
  const p = model.planPlacement({
    vram,
    ...(ctx === undefined ? {} : { contextSize: parseNumber('ctx', ctx) }),
    ...(experts === undefined ? {} : { experts: experts as ExpertPlacement }),
  });
  const out = [
    `placement of ${path} on a device with ${MiB(p.budgetBytes).trim()}:`,
    `  device  weights (non-expert)  ${MiB(p.device.weightBytes)}`,
    `          KV cache              ${MiB(p.device.kvCacheBytes)}`,
    `          activations           ${MiB(p.device.scratchBytes)}`,
    `          routed experts        ${MiB(p.device.expertBytes)}  ${p.device.expertCount} of ${p.expertCount}`,
    `          total                 ${MiB(p.device.totalBytes)}`,
    `  host    token embedding       ${MiB(p.host.weightBytes)}`,
    `          routed experts        ${MiB(p.host.expertBytes)}  ${p.host.expertCount} of ${p.expertCount}`,
  ];
  const moe = p.layers.filter((l) => l.expertBytes > 0);
  if (moe.length > 0 && p.host.expertCount > 0) {
    out.push(`  experts on the device per MoE layer: ${[...new Set(moe.map((l) => l.deviceExperts))].sort((a, b) => a - b).join(' or ')} of ${p.expertCount / moe.length}`);
  }
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

async function quantizeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      threads: { type: 'string', short: 't' },
      'tensor-type': { type: 'string', multiple: true },
      'output-tensor-type': { type: 'string' },
      'token-embedding-type': { type: 'string' },
      pure: { type: 'boolean' },
      imatrix: { type: 'string' },
    },
  });
  if (positionals.length !== 3) {
    process.stderr.write(`moerun quantize: expected IN.gguf OUT.gguf TYPE\n\n${usage}`);
    return 2;
  }
  const [inPath, outPath, typeArg] = positionals as [string, string, string];
  const type = describeQuantizeType(typeArg) as QuantizeType;
  const threads = parseNumber('threads', values.threads);
  // Ctrl-C (or a closed terminal, or kill) aborts at the next slab; the writer then removes its
  // temp file, so no half file remains.
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const s of signals) process.once(s, onSignal);
  const tty = process.stderr.isTTY;
  let lastDraw = 0;
  const draw = (fraction: number, name: string): void => {
    const now = Date.now();
    if (!tty || (now - lastDraw < 100 && fraction < 1)) return;
    lastDraw = now;
    const width = 30;
    const filled = Math.round(fraction * width);
    const label = name.length > 32 ? `${name.slice(0, 29)}...` : name;
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(1).padStart(5)}% ${label.padEnd(32)}`);
  };
  const started = Date.now();
  try {
    const result = await quantize(inPath, outPath, type, {
      ...(threads === undefined ? {} : { threads }),
      ...(values['tensor-type'] ? { tensorTypes: values['tensor-type'].map(parseTensorTypeArg) } : {}),
      ...(values['output-tensor-type'] ? { outputTensorType: values['output-tensor-type'] as QuantizeTensorType } : {}),
      ...(values['token-embedding-type'] ? { tokenEmbeddingType: values['token-embedding-type'] as QuantizeTensorType } : {}),
      ...(values.pure ? { pure: true } : {}),
      ...(values.imatrix ? { imatrix: values.imatrix } : {}),
      onProgress: draw,
      signal: controller.signal,
    });
    if (tty) process.stderr.write('\n');
    const byType = new Map<string, number>();
    for (const t of result.tensors) byType.set(t.type, (byType.get(t.type) ?? 0) + 1);
    const mib = (n: number): string => (n / 2 ** 20).toFixed(2);
    const fallbacks = result.tensors.filter((t) => t.fallback).length;
    process.stdout.write(
      `${outPath}: ${mib(result.sourceBytes)} MiB -> ${mib(result.bytes)} MiB of tensor data in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
        `file type ${result.fileType}; tensors: ${[...byType].map(([t, n]) => `${n} ${t}`).join(', ')}` +
        `${fallbacks > 0 ? `; ${fallbacks} fell back (rows not a multiple of the block size)` : ''}\n`,
    );
    return 0;
  } catch (err) {
    if (tty) process.stderr.write('\n');
    if (err instanceof MoerunError && err.code === 'ERR_ABORTED') {
      process.stderr.write('moerun quantize: interrupted; no output file was written\n');
      return 130;
    }
    throw err;
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }
}

async function imatrixCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      model: { type: 'string', short: 'm' },
      text: { type: 'string', short: 'f' },
      output: { type: 'string', short: 'o' },
      ctx: { type: 'string', short: 'c' },
      chunks: { type: 'string' },
      threads: { type: 'string', short: 't' },
      'kv-type': { type: 'string' },
      'output-format': { type: 'string' },
    },
  });
  if (positionals.length > 0 || !values.model || !values.text) {
    process.stderr.write(`moerun imatrix: expected --model X.gguf --text FILE\n\n${usage}`);
    return 2;
  }
  const outPath = values.output ?? 'imatrix.gguf';
  const format = values['output-format'] ?? (outPath.endsWith('.dat') ? 'dat' : 'gguf');
  if (format !== 'gguf' && format !== 'dat') {
    process.stderr.write(`moerun imatrix: --output-format is gguf or dat, not '${format}'\n\n${usage}`);
    return 2;
  }
  const contextSize = parseNumber('ctx', values.ctx);
  const chunks = parseNumber('chunks', values.chunks);
  const threads = parseNumber('threads', values.threads);
  let text: string;
  try {
    text = await readFile(values.text, 'utf8');
  } catch (err) {
    throw new MoerunError('ERR_IO', `moerun imatrix: cannot read ${values.text}: ${(err as Error).message}`, { cause: err });
  }
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const s of signals) process.once(s, onSignal);
  const started = Date.now();
  try {
    const matrix = await computeImatrix(values.model, text, {
      ...(contextSize === undefined ? {} : { contextSize }),
      ...(chunks === undefined ? {} : { chunks }),
      ...(threads === undefined ? {} : { threads }),
      ...(values['kv-type'] ? { kvCacheType: values['kv-type'] as 'f16' } : {}),
      dataset: values.text,
      signal: controller.signal,
      onProgress: (done, total) => {
        if (process.stderr.isTTY) process.stderr.write(`\rchunk ${done}/${total}`);
      },
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    await writeImatrix(outPath, matrix, { format });
    process.stdout.write(`${outPath}: ${matrix.entries.size} tensors, ${matrix.chunkCount} chunks of ${matrix.chunkSize} tokens, in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    return 0;
  } catch (err) {
    if (err instanceof MoerunError && err.code === 'ERR_ABORTED') {
      process.stderr.write('\nmoerun imatrix: interrupted; nothing was written\n');
      return 130;
    }
    throw err;
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }
}

async function chatCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { model: { type: 'string', short: 'm' }, system: { type: 'string', short: 's' }, threads: { type: 'string' } },
  });
  const threads = parseNumber('threads', values.threads);
  await using model = await loadModel(values.model ?? bundledModelPath, threads === undefined ? {} : { threads });
  const session = model.createSession();
  const hasTemplate = typeof model.gguf.metadata['tokenizer.chat_template'] === 'string';
  if (!hasTemplate) process.stderr.write('[this model has no chat template: plain text continuation of what you type]\n');
  const history: ChatMessage[] = values.system ? [{ role: 'system', content: values.system }] : [];
  const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: '> ' });
  let answering: AbortController | undefined;
  let closed = false;
  // Ctrl-C: stops the answer in progress; at an empty prompt, exits.
  rl.on('SIGINT', () => {
    if (answering) answering.abort();
    else if (rl.line.length > 0) {
      rl.write(null, { ctrl: true, name: 'u' });
      process.stdout.write('\n');
      rl.prompt();
    } else rl.close();
  });
  rl.on('close', () => (closed = true));
  const onSigint = (): void => answering?.abort();
  process.on('SIGINT', onSigint);
  try {
    rl.prompt();
    for await (const line of rl) {
      if (line.trim() === '') {
        rl.prompt();
        continue;
      }
      answering = new AbortController();
      let reply = '';
      let thinking = false;
      try {
        if (hasTemplate) {
          history.push({ role: 'user', content: line });
          for await (const c of session.chat(history, { signal: answering.signal, maxTokens: 1024 })) {
            if (c.reasoning) {
              if (!thinking) process.stdout.write('\x1b[2m');
              thinking = true;
              process.stdout.write(c.reasoning);
            } else {
              if (thinking) process.stdout.write('\x1b[0m\n');
              thinking = false;
              process.stdout.write(c.text);
              reply += c.text;
            }
          }
        } else {
          for await (const c of session.generate(line, { signal: answering.signal, maxTokens: 256 })) process.stdout.write(c.text);
        }
      } catch (err) {
        if (!(err instanceof MoerunError && err.code === 'ERR_ABORTED')) throw err;
        process.stdout.write(' [interrupted]');
      } finally {
        if (thinking) process.stdout.write('\x1b[0m');
        answering = undefined;
      }
      if (hasTemplate) history.push({ role: 'assistant', content: reply });
      process.stdout.write('\n');
      if (closed) break;
      rl.prompt();
    }
  } finally {
    process.off('SIGINT', onSigint);
    rl.close();
  }
  return 0;
}

async function tokenizeCommand(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (positionals.length < 2) {
    process.stderr.write(`moerun tokenize: expected a GGUF path and text\n\n${usage}`);
    return 2;
  }
  const gguf = await readGgufInfo(positionals[0]!);
  const { Tokenizer } = await import('./tokenizer/index.js');
  const tokenizer = Tokenizer.fromGgufMetadata(gguf.metadata);
  const ids = tokenizer.tokenize(positionals.slice(1).join(' '), { special: true });
  const out = Array.from(ids, (id) => `${String(id).padStart(7)}  ${JSON.stringify(tokenizer.tokenToPiece(id, { special: true }))}`);
  process.stdout.write(`${out.join('\n')}\n${ids.length} tokens\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const code = (err as { code?: unknown })?.code;
    if (err instanceof MoerunError) {
      process.stderr.write(`moerun: ${err.message} [${err.code}]\n`);
    } else if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) {
      // A mistyped flag: say which, and how to use the command, without a stack trace.
      process.stderr.write(`moerun: ${(err as Error).message}\n\n${usage}`);
      process.exitCode = 2;
      return;
    } else {
      process.stderr.write(`moerun: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exitCode = 1;
  },
);
