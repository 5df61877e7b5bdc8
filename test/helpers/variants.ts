// Variants of a make-model file that differ from it in exactly one feature (a metadata key, or one
// kind of tensor's values), so a test can show that the feature reaches llama.cpp: same weights,
// same routing conditioning, only the feature changes.

import { writeGguf, type GgufValue, type GgufWriteResult } from '../../lib/gguf/writer.js';
import { encodeF16, encodeF32 } from '../../lib/gguf/writer.js';
import { makeModelParts, type MakeModelOptions } from '../../scripts/make-model.js';

/** Edits to a make-model file. */
export interface VariantEdits {
  /** Metadata key → new value, or `undefined` to drop the key. */
  metadata?: Record<string, GgufValue | undefined>;
  /** Tensors whose name matches `match` get `values` replaced by `edit(values)`. */
  tensors?: { match: RegExp; edit: (values: Float32Array) => Float32Array }[];
}

/** Write the make-model file of `options` (its `out`), with `edits` applied. */
export async function writeVariant(options: MakeModelOptions, edits: VariantEdits = {}): Promise<GgufWriteResult & { path: string }> {
  const { metadata, weights } = makeModelParts(options);
  const keys = new Set(metadata.map(([k]) => k));
  for (const key of Object.keys(edits.metadata ?? {})) {
    // A typo must not silently produce an unchanged file; new keys are fine when they have a value.
    if (!keys.has(key) && edits.metadata![key] === undefined) throw new Error(`writeVariant: no metadata key '${key}' to drop`);
  }
  const meta: [string, GgufValue][] = [];
  for (const [k, v] of metadata) {
    if (edits.metadata && k in edits.metadata) {
      const nv = edits.metadata[k];
      if (nv !== undefined) meta.push([k, nv]);
    } else {
      meta.push([k, v]);
    }
  }
  for (const [k, v] of Object.entries(edits.metadata ?? {})) if (!keys.has(k) && v !== undefined) meta.push([k, v]);
  const tensorEdits = edits.tensors ?? [];
  for (const t of tensorEdits) {
    if (!weights.some((w) => t.match.test(w.name))) throw new Error(`writeVariant: no tensor matches ${t.match}`);
  }
  const tensors = weights.map((w) => {
    const edit = tensorEdits.find((t) => t.match.test(w.name))?.edit;
    const values = () => (edit ? edit(w.values()) : w.values());
    return { name: w.name, type: w.type, shape: w.shape, data: () => (w.type === 'F16' ? encodeF16(values()) : encodeF32(values())) };
  });
  const result = await writeGguf(options.out, { metadata: meta, tensors });
  return { ...result, path: options.out };
}
