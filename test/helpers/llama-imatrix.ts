// llama.cpp's llama-imatrix as a test oracle: its tools/imatrix/imatrix.cpp, unchanged, from the
// source node-llama-cpp bundles (the version of its binaries), compiled against node-llama-cpp's
// prebuilt libllama, libllama-common (llama.cpp's common/) and libggml, with test/oracle/imatrix_main.cpp
// as the entry point. About 15 s to build once; cached by source and bundle.
import { rm } from 'node:fs/promises';
import path from 'node:path';

import { buildKey, cachedTool, compileStep, llamaBins, llamaSourceDir } from './llama-tools.js';
import { run } from './run.js';

const root = path.join(__dirname, '..', '..');
const entrySource = path.join(root, 'test/oracle/imatrix_main.cpp');

/** The llama-imatrix executable, built once. */
export async function llamaImatrixTool(): Promise<string> {
  const src = await llamaSourceDir();
  const tool = path.join(src, 'tools/imatrix/imatrix.cpp');
  return cachedTool('llama-imatrix', buildKey([entrySource, tool]), async (out) => {
    const includes = [`-I${src}/common`, `-I${src}/include`, `-I${src}/ggml/include`, `-I${src}/vendor`];
    const objTool = `${out}.tool.o`;
    const objMain = `${out}.main.o`;
    try {
      await compileStep('llama-imatrix', 'g++', ['-std=c++17', '-O1', '-c', '-Dmain=imatrix_main', tool, ...includes, '-o', objTool]);
      await compileStep('llama-imatrix', 'g++', ['-std=c++17', '-O1', '-c', `-DBACKEND_DIR="${llamaBins}"`, entrySource, ...includes, '-o', objMain]);
      await compileStep('llama-imatrix', 'g++', ['-o', out, objMain, objTool, `-L${llamaBins}`, '-l:libllama-common.so', '-l:libllama.v0.5.0.so',
        '-l:libggml.v0.5.0.so', '-lggml-base', `-Wl,-rpath,${llamaBins}`]);
    } finally {
      await Promise.all([rm(objTool, { force: true }), rm(objMain, { force: true })]);
    }
  });
}

/**
 * `llama-imatrix -m MODEL -f TEXT -o OUT -c CTX --chunks N` with an F32 KV cache and flash
 * attention off (moerun's attention is llama.cpp's non-flash path), one thread; extra arguments
 * (`--output-format dat`) appended.
 */
export async function llamaImatrix(model: string, textFile: string, out: string, ctx: number, chunks: number, extra: string[] = []): Promise<void> {
  const exe = await llamaImatrixTool();
  const r = await run(exe, ['-m', model, '-f', textFile, '-o', out, '-c', String(ctx), '--chunks', String(chunks), '-t', '1',
    '-ctk', 'f32', '-ctv', 'f32', '-fa', 'off', '--no-ppl', ...extra]);
  if (r.status !== 0) throw new Error(`llama-imatrix ${model} failed:\n${r.output}`);
}
