// The oracle: llama.cpp's logits for a GGUF file, via node-llama-cpp, run in a child process so a
// GGML_ASSERT abort (seen on some deepseek2 quantized files) becomes a reported OracleError, not a
// dead test run.
//
// Settings are fixed to make llama.cpp deterministic and comparable: CPU only, no flash attention,
// F32 KV cache unless asked for F16 (both engines' default), one sequence, batch = context. On a
// host with AMX the child runs under test/oracle/no_amx_tiles.c, so llama.cpp takes its CPU kernels
// and not its AMX buffer type (see that file).

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildKey, cachedTool, compileStep } from './llama-tools.js';

/** Options for every oracle call. */
export interface OracleOptions {
  /** CPU threads llama.cpp uses (default 2). */
  threads?: number;
  /** KV cache element type (default 'f32'; 'f16' is both engines' default). */
  kvCacheType?: 'f32' | 'f16';
  /** Context (and batch) size; default: prompt + generated tokens + 8, at least 64. */
  contextSize?: number;
  /** Kill the child after this long (default 120 000 ms). */
  timeoutMs?: number;
}

/** llama.cpp's teacher-forced logits. */
export interface OracleLogits {
  /** Row-major n_tokens × nVocab: row i is the distribution after tokens[0..i]. */
  logits: Float32Array;
  nVocab: number;
}

/** A greedy continuation and the rows it was chosen from. */
export interface OracleGeneration extends OracleLogits {
  /** The n generated tokens (argmax of each row; ties go to the lowest id). */
  tokens: number[];
  // logits: n rows; row 0 is the prompt's last position, row i follows tokens[0..i-1].
}

/** The oracle process failed: it aborted, exited non-zero, timed out, or gave no result. */
export class OracleError extends Error {
  constructor(
    message: string,
    /** Exit code, or null when killed by a signal. */
    readonly exitCode: number | null,
    /** The signal that ended the child (SIGABRT for a GGML_ASSERT), or null. */
    readonly signal: NodeJS.Signals | null,
    /** The child's stderr, without node-llama-cpp's "bad special token" noise. */
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'OracleError';
  }
}

/**
 * llama.cpp's logits at every position of `tokens` (teacher forcing, no BOS added: include it in
 * `tokens` yourself).
 */
export async function llamaCppLogits(modelPath: string, tokens: readonly number[], opts: OracleOptions = {}): Promise<OracleLogits> {
  const { logits, nVocab } = await runOracle(modelPath, tokens, 'logits', 0, opts);
  return { logits, nVocab };
}

/** The `n` tokens llama.cpp generates greedily after `promptTokens` (argmax, one at a time). */
export async function llamaCppGreedy(modelPath: string, promptTokens: readonly number[], n: number, opts: OracleOptions = {}): Promise<number[]> {
  return (await llamaCppGenerate(modelPath, promptTokens, n, opts)).tokens;
}

/** {@link llamaCppGreedy}, plus the logits row each token was picked from. */
export async function llamaCppGenerate(
  modelPath: string,
  promptTokens: readonly number[],
  n: number,
  opts: OracleOptions = {},
): Promise<OracleGeneration> {
  if (!Number.isSafeInteger(n) || n < 1) throw new TypeError(`Expected a positive integer for n but received ${n} (${typeof n})`);
  return runOracle(modelPath, promptTokens, 'greedy', n, opts);
}

const WORKER = fileURLToPath(new URL('./oracle-worker.mjs', import.meta.url));
const NO_AMX_SOURCE = fileURLToPath(new URL('../oracle/no_amx_tiles.c', import.meta.url));

/** Whether this is an x86-64 Linux host whose CPU has AMX tiles (the flag Linux reports). */
export function hostHasAmx(): boolean {
  if (process.platform !== 'linux' || process.arch !== 'x64') return false;
  try {
    return /^flags\s*:.*\bamx_tile\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

let launcher: Promise<string[]> | undefined;

/**
 * The command prefix the oracle child runs under: none, or on an AMX host no_amx_tiles (built with
 * gcc once, cached by its source's hash).
 */
export function oracleLauncher(): Promise<string[]> {
  launcher ??= (async () => {
    if (!hostHasAmx()) return [];
    const exe = await cachedTool('no_amx_tiles', buildKey([NO_AMX_SOURCE], false), (out) => compileStep('no_amx_tiles', 'gcc', ['-O1', '-o', out, NO_AMX_SOURCE]));
    return [exe];
  })();
  return launcher;
}

const OPTION_KEYS = new Set(['threads', 'kvCacheType', 'contextSize', 'timeoutMs']);

async function runOracle(
  modelPath: string,
  tokens: readonly number[],
  mode: 'logits' | 'greedy',
  n: number,
  opts: OracleOptions,
): Promise<OracleGeneration> {
  if (typeof modelPath !== 'string' || modelPath === '') throw new TypeError(`Expected a model path but received ${String(modelPath)}`);
  if (!Array.isArray(tokens) || tokens.length === 0 || !tokens.every((t) => Number.isSafeInteger(t) && t >= 0)) {
    throw new TypeError('Expected a non-empty array of non-negative integer tokens');
  }
  for (const key of Object.keys(opts)) {
    if (!OPTION_KEYS.has(key)) throw new TypeError(`Unknown oracle option '${key}'`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'moerun-oracle-'));
  try {
    const outPath = join(dir, 'logits.f32');
    const reqPath = join(dir, 'request.json');
    const request = { modelPath, tokens: [...tokens], mode, n, threads: opts.threads ?? 2, kvCacheType: opts.kvCacheType ?? 'f32', contextSize: opts.contextSize, outPath };
    await writeFile(reqPath, JSON.stringify(request));
    const { stdout, stderr, code, signal } = await runChild(await oracleLauncher(), reqPath, opts.timeoutMs ?? 120_000);
    const cleanStderr = stderr
      .split('\n')
      .filter((l) => !/bad special token|special_eos_id is not in special_eog_ids/.test(l))
      .join('\n')
      .trim();
    const line = stdout.split('\n').find((l) => l.startsWith('ORACLE-RESULT '));
    if (code !== 0 || !line) {
      const why = signal ? `was killed by ${signal}` : code !== 0 ? `exited with code ${code}` : 'printed no result';
      throw new OracleError(`llama.cpp oracle on ${modelPath} ${why}: ${cleanStderr.slice(-2000)}`, code, signal, cleanStderr);
    }
    const meta = JSON.parse(line.slice('ORACLE-RESULT '.length)) as { nVocab: number; nRows: number; tokens: number[] };
    const bytes = await readFile(outPath);
    const logits = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    if (logits.length !== meta.nRows * meta.nVocab) {
      throw new OracleError(`llama.cpp oracle wrote ${logits.length} logits, expected ${meta.nRows} × ${meta.nVocab}`, code, signal, cleanStderr);
    }
    return { logits, nVocab: meta.nVocab, tokens: meta.tokens };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function runChild(
  launcherPrefix: readonly string[],
  reqPath: string,
  timeoutMs: number,
): Promise<{ stdout: string; stderr: string; code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const argv = [...launcherPrefix, process.execPath, WORKER, reqPath];
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\n[oracle: killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code, signal });
    });
  });
}
