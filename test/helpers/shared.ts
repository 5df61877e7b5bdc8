// Where the shared test data (llama.cpp's tokenizer conformance vocabs, real models) lives: the
// `shared/` folder beside the checkout, or MOERUN_SHARED_DIR. Tests that need it skip with a
// printed reason when it is absent.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function sharedDir(): string | undefined {
  const candidates = [process.env.MOERUN_SHARED_DIR, path.resolve(repoRoot, '../shared'), '/work/shared'];
  return candidates.find((c): c is string => !!c && existsSync(path.join(c, 'vocab')));
}
