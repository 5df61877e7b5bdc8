// Tokenizer throughput: MB/s of English-like text through tokenize() and detokenize(), per
// conformance vocabulary (../shared/vocab), with node-llama-cpp (llama.cpp, vocab only) on the same
// text in the same run as the peer, so the ratio is meaningful on a shared, noisy machine.
//
//   npx tsx bench/tokenizer.bench.ts [--mb 1] [--vocab qwen2]
import { execSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { readGgufInfo } from '../lib/index.js';
import { Tokenizer } from '../lib/tokenizer/index.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const vocabDir = path.resolve(repoRoot, '../shared/vocab');
const models = path.resolve(repoRoot, '../shared/models');

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const mb = Number(arg('mb') ?? 1);
const only = arg('vocab');

/** Deterministic English-like text with punctuation, numbers, newlines and a little non-ASCII. */
function makeText(bytes: number): string {
  const words = (
    'once upon a time there was a little girl named Lily she loved to play outside in the park ' +
    "one day she saw a big red ball it's the 3rd time we've seen 42 cats, isn't it? café naïve " +
    'the quick brown fox jumps over the lazy dog function return const value = 1024; // TODO'
  ).split(' ');
  let a = 12345;
  const next = () => ((a = (Math.imul(a, 1103515245) + 12345) >>> 0) >>> 8) % words.length;
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    const w = words[next()];
    const sep = n % 97 === 0 ? '.\n\n' : n % 13 === 0 ? ', ' : ' ';
    parts.push(w, sep);
    n += w.length + sep.length;
  }
  return parts.join('').slice(0, bytes);
}

let commit = 'unknown';
try {
  commit = execSync('git rev-parse --short HEAD', { cwd: repoRoot }).toString().trim();
} catch {
  /* not a git checkout */
}
console.log(`tokenizer bench: commit ${commit}, node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'}, single thread`);

const text = makeText(Math.round(mb * 1024 * 1024));
const textBytes = Buffer.byteLength(text);

const files = [
  ...(existsSync(vocabDir) ? readdirSync(vocabDir).filter((f) => f.endsWith('.gguf')).map((f) => path.join(vocabDir, f)) : []),
  ...(existsSync(path.join(models, 'stories260K.gguf')) ? [path.join(models, 'stories260K.gguf')] : []),
].filter((f) => !only || f.includes(only));

let llamaModelFor: ((file: string) => Promise<{ tokenize(t: string): unknown; dispose(): Promise<void> }>) | undefined;
try {
  const { getLlama } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  llamaModelFor = async (file) => {
    const model = await llama.loadModel({ modelPath: file, vocabOnly: true });
    const raw = (model as unknown as { _model: { tokenize(t: string, s: boolean): Uint32Array } })._model;
    return { tokenize: (t: string) => raw.tokenize(t, false), dispose: () => model.dispose() };
  };
} catch (e) {
  console.log(`(node-llama-cpp unavailable, no peer numbers: ${String(e)})`);
}

for (const file of files) {
  const name = path.basename(file, '.gguf');
  const tok = Tokenizer.fromGgufMetadata((await readGgufInfo(file)).metadata);
  const ids = tok.tokenize(text, { addBos: false });
  const peer = llamaModelFor ? await llamaModelFor(file) : undefined;

  const bench = new Bench({ iterations: 3, warmupIterations: 1, time: 0 });
  // Cold: the BPE word cache starts empty each iteration.
  bench.add('tokenize (cold cache)', () => {
    tok.clearCache();
    tok.tokenize(text, { addBos: false });
  });
  bench.add('tokenize (warm cache)', () => {
    tok.tokenize(text, { addBos: false });
  });
  bench.add('detokenize', () => {
    tok.detokenize(ids);
  });
  if (peer) bench.add('llama.cpp tokenize', () => void peer.tokenize(text));
  await bench.run();

  console.log(`\n${name} (${tok.type}, ${tok.vocabSize} tokens): ${(textBytes / 1e6).toFixed(2)} MB -> ${ids.length} tokens`);
  const ours = bench.tasks.find((t) => t.name === 'tokenize (warm cache)')?.result;
  for (const task of bench.tasks) {
    const r = task.result;
    if (!r || r.state !== 'completed') continue;
    const ms = r.latency.mean;
    console.log(`  ${task.name.padEnd(24)} ${ms.toFixed(1).padStart(8)} ms  ${(textBytes / 1e6 / (ms / 1000)).toFixed(2).padStart(7)} MB/s`);
  }
  const peerRes = bench.tasks.find((t) => t.name === 'llama.cpp tokenize')?.result;
  if (ours && ours.state === 'completed' && peerRes && peerRes.state === 'completed') {
    console.log(`  ratio (llama.cpp time / ours, warm): ${(peerRes.latency.mean / ours.latency.mean).toFixed(2)}x`);
  }
  await peer?.dispose();
}
