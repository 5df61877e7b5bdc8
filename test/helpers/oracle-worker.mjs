// Child process for test/helpers/oracle.ts: runs llama.cpp (via node-llama-cpp) on one model, so
// that a GGML_ASSERT abort kills this process and not the test run.
//
// argv[2]: path of a JSON request { modelPath, tokens, mode: 'logits' | 'greedy', n, threads,
//   kvCacheType: 'f32' | 'f16', contextSize, outPath }. Writes the raw little-endian float32 logits (n_rows × n_vocab) to
//   outPath and prints one line `ORACLE-RESULT {json}` on stdout with { nVocab, nRows, tokens }.
//   On failure: a message on stderr and exit code 1 (or death by signal on an abort).
import { readFileSync, writeFileSync } from 'node:fs';
import { getLlama } from 'node-llama-cpp';

async function main() {
  const req = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const { modelPath, tokens, mode, n = 0, threads = 2, kvCacheType = 'f32', contextSize } = req;
  const kvType = kvCacheType === 'f16' ? 'F16' : 'F32';

  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'warn' });
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const ctxSize = contextSize ?? Math.max(64, tokens.length + n + 8);
  const context = await model.createContext({
    contextSize: ctxSize,
    batchSize: ctxSize,
    threads,
    flashAttention: false,
    experimentalKvCacheKeyType: kvType,
    experimentalKvCacheValueType: kvType,
  });
  const sequence = context.getSequence();
  // The vocab is the token list in the file; every row must cover exactly that many ids.
  const nVocab = model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length;
  if (!Number.isInteger(nVocab) || nVocab <= 0) throw new Error('oracle: the model has no tokenizer.ggml.tokens');

  const evaluate = (toks) => sequence.controlledEvaluate(toks.map((t) => [t, { generateNext: { logits: true } }]));

  /** Dense rows from controlledEvaluate's per-position Map token → logit. */
  const denseRows = (results) => {
    const out = new Float32Array(results.length * nVocab).fill(Number.NaN);
    results.forEach((r, i) => {
      const logits = r?.next?.logits;
      if (!logits) throw new Error(`oracle: no logits for position ${i}`);
      if (logits.size !== nVocab) throw new Error(`oracle: position ${i} has ${logits.size} logits, expected ${nVocab}`);
      for (const [token, value] of logits) {
        if (token < 0 || token >= nVocab) throw new Error(`oracle: token ${token} outside vocab ${nVocab}`);
        out[i * nVocab + token] = value;
      }
    });
    return out;
  };

  const argmax = (row) => {
    let best = 0;
    for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    return best;
  };

  const first = await evaluate(tokens);
  let rows;
  const generated = [];
  if (mode === 'logits') {
    rows = denseRows(first);
  } else if (mode === 'greedy') {
    // Teacher-forced prompt, then one token at a time, taking the argmax (ties: lowest id).
    const all = [denseRows(first.slice(-1))];
    for (let i = 0; i < n; i++) {
      generated.push(argmax(all[i]));
      if (i < n - 1) all.push(denseRows(await evaluate([generated[i]])));
    }
    rows = new Float32Array(all.length * nVocab);
    all.forEach((r, i) => rows.set(r, i * nVocab));
  } else {
    throw new Error(`oracle: unknown mode ${mode}`);
  }

  writeFileSync(req.outPath, new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength));
  process.stdout.write(`\nORACLE-RESULT ${JSON.stringify({ nVocab, nRows: rows.length / nVocab, tokens: generated })}\n`);
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch(async (err) => {
  // llama.cpp's reason (e.g. "tensor 'blk.0.ffn_gate.weight' has wrong shape") reaches the log
  // asynchronously: let it arrive before exiting.
  await new Promise((r) => setTimeout(r, 200));
  console.error(`oracle: ${err?.message ?? err}`);
  process.exit(1);
});
