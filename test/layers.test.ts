// The layering of the sources, checked from the files themselves (pure Node: no build, no addon).
//
// lib import rules: the library (lib/index.ts and everything it reaches) carries no CLI code;
// sessions know their model through an interface, so model.ts -> session.ts is the only direction
// between the two; nothing outside the CLI (lib/cli.ts, lib/cli/) imports from it.
//
// Imports are found with regular expressions over the source with comments removed: `import ...
// from '...'`, `export ... from '...'`, `import '...'` and `import('...')`, type-only ones
// included (a type-only import is still a dependency of the file). Only relative specifiers are
// followed; each must name a file that exists.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Files under `dir` (recursively) whose names end with one of `exts`, as paths relative to the repository root. */
function sourceFiles(dir: string, exts: readonly string[]): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(root, dir)).sort()) {
    const rel = `${dir}/${name}`;
    if (statSync(path.join(root, rel)).isDirectory()) out.push(...sourceFiles(rel, exts));
    else if (exts.some((e) => name.endsWith(e))) out.push(rel);
  }
  return out;
}

/** The source without comments (string contents that look like comments may go too; imports never contain them). */
function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

const IMPORT_PATTERNS = [
  // import x from '…' / import { a, type B } from '…' / import * as x from '…' / import type … / export { … } from '…' / export * from '…'
  /\b(?:import|export)\s+(?:type\s+)?(?:[\w$]+\s*,?\s*)?(?:\{[^}]*\}|\*(?:\s+as\s+[\w$]+)?)?\s*from\s*['"]([^'"]+)['"]/g,
  // import '…' (for its effects)
  /\bimport\s*['"]([^'"]+)['"]/g,
  // import('…')
  /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
];

/** Module specifiers a TypeScript source imports or re-exports, in order of the patterns. */
export function importSpecifiers(source: string): string[] {
  const code = stripComments(source);
  const out: string[] = [];
  for (const re of IMPORT_PATTERNS) for (const m of code.matchAll(re)) out.push(m[1]!);
  return out;
}

interface Edge {
  /** The importing file, relative to the repository root. */
  from: string;
  /** The specifier as written. */
  spec: string;
  /** The imported file, relative to the repository root. */
  to: string;
}

/** Where a relative specifier of `from` points: `./x.js` is the source `./x.ts`. */
function resolveSpecifier(from: string, spec: string): string {
  const abs = path.resolve(root, path.dirname(from), spec);
  const candidates = spec.endsWith('.js') ? [abs.slice(0, -3) + '.ts', abs] : [abs, `${abs}.ts`];
  const hit = candidates.find((c) => existsSync(c) && statSync(c).isFile());
  if (!hit) throw new Error(`${from}: import '${spec}' names no file`);
  return path.relative(root, hit).split(path.sep).join('/');
}

/** Every relative import of every file in `files`. */
function importGraph(files: readonly string[]): Map<string, Edge[]> {
  const graph = new Map<string, Edge[]>();
  for (const from of files) {
    const specs = importSpecifiers(readFileSync(path.join(root, from), 'utf8')).filter((s) => s.startsWith('./') || s.startsWith('../'));
    graph.set(from, specs.map((spec) => ({ from, spec, to: resolveSpecifier(from, spec) })));
  }
  return graph;
}

/** Files reachable from `start` (itself included), each with the chain of imports that reaches it. */
function reachable(graph: Map<string, Edge[]>, start: string): Map<string, string[]> {
  const chains = new Map<string, string[]>([[start, [start]]]);
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const e of graph.get(file) ?? []) {
      if (chains.has(e.to)) continue;
      chains.set(e.to, [...chains.get(file)!, e.to]);
      queue.push(e.to);
    }
  }
  return chains;
}

const isCli = (file: string): boolean => file === 'lib/cli.ts' || file.startsWith('lib/cli/');

describe('lib import rules', () => {
  const libFiles = sourceFiles('lib', ['.ts']);
  const graph = importGraph(libFiles);

  it('the import parser finds every form of import', () => {
    const sample = [
      "import path from 'node:path';",
      "import { a, type B } from './a.js';",
      'import {\n  c,\n  d,\n} from "./c.js";',
      "import type { E } from './e.js';",
      "import * as f from './f.js';",
      "import g, { h } from './g.js';",
      "import './side-effect.js';",
      "export { i } from './i.js';",
      "export * from './j.js';",
      "export type { K } from './k.js';",
      "const l = await import('./l.js');",
      "// import { no } from './commented.js';",
      "/* import('./also-commented.js') */",
      "const url = 'https://example.com/'; import { m } from './m.js';",
      "export function notAnImport(): string { return 'from'; }",
    ].join('\n');
    expect(importSpecifiers(sample).sort()).toEqual(
      ['node:path', './a.js', './c.js', './e.js', './f.js', './g.js', './side-effect.js', './i.js', './j.js', './k.js', './l.js', './m.js'].sort(),
    );
    // On the real sources: the static, the re-exported and the dynamic import are all seen.
    expect(graph.get('lib/index.ts')!.map((e) => e.to)).toContain('lib/bench/index.ts');
    expect(graph.get('lib/cli.ts')!.map((e) => e.to)).toEqual(expect.arrayContaining(['lib/cli/bench-command.ts', 'lib/tokenizer/index.ts']));
    expect(graph.get('lib/model.ts')!.map((e) => e.to)).toContain('lib/session.ts');
  });

  it('lib/index.ts reaches no CLI code (lib/cli.ts, lib/cli/)', () => {
    const chains = reachable(graph, 'lib/index.ts');
    expect(chains.size).toBeGreaterThan(10);
    const cli = [...chains].filter(([file]) => isCli(file)).map(([, chain]) => chain.join(' -> '));
    expect(cli).toEqual([]);
  });

  it('session.ts does not import model.ts, directly or through other files (model.ts -> session.ts is the one direction)', () => {
    const direct = graph.get('lib/session.ts')!.filter((e) => e.to === 'lib/model.ts').map((e) => `lib/session.ts imports '${e.spec}'`);
    expect(direct).toEqual([]);
    const chain = reachable(graph, 'lib/session.ts').get('lib/model.ts');
    expect(chain?.join(' -> ')).toBeUndefined();
    expect(reachable(graph, 'lib/model.ts').has('lib/session.ts')).toBe(true);
  });

  it('nothing outside lib/cli.ts and lib/cli/ imports from them', () => {
    const bad = [...graph.values()].flat().filter((e) => !isCli(e.from) && isCli(e.to)).map((e) => `${e.from} imports '${e.spec}'`);
    expect(bad).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// native include rules (the picture in native/backend/backend.h): the reader and the formats
// depend on nothing above them; the forward orchestration does not know the CPU; only the addon
// sees Node. `#include "..."` lines are resolved relative to the including file.

/** Files a C++ source includes with quotes, relative to the repository root. */
function nativeIncludes(file: string): string[] {
  const source = readFileSync(path.join(root, file), 'utf8');
  const out: string[] = [];
  for (const m of source.matchAll(/^\s*#\s*include\s*"([^"]+)"/gm)) out.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1]!)));
  return out;
}

/** Files under native/<from> that include anything under one of native/<to...>. */
function violations(from: string, to: readonly string[]): string[] {
  const bad: string[] = [];
  for (const file of sourceFiles(`native/${from}`, ['.h', '.cpp'])) {
    for (const inc of nativeIncludes(file)) {
      if (to.some((t) => inc.startsWith(`native/${t}/`))) bad.push(`${file} includes ${inc}`);
    }
  }
  return bad;
}

describe('native include rules', () => {
  it('finds includes (so the rules cannot pass by finding nothing)', () => {
    expect(nativeIncludes('native/runtime/session.h')).toContain('native/backend/backend.h');
    expect(violations('runtime', ['backend'])).not.toEqual([]);
  });

  it('base/ includes nothing else of native/', () => {
    expect(violations('base', ['gguf', 'quant', 'cpu', 'runtime', 'backend', 'arch', 'include', 'addon'])).toEqual([]);
  });

  it('gguf/ and quant/ include nothing from runtime/, cpu/, backend/ or above', () => {
    expect(violations('gguf', ['runtime', 'cpu', 'backend', 'arch', 'include', 'addon'])).toEqual([]);
    expect(violations('quant', ['runtime', 'cpu', 'backend', 'arch', 'include', 'addon', 'gguf'])).toEqual([]);
  });

  it('runtime/ and arch/ include nothing from cpu/ (they reach the hardware only through backend/)', () => {
    expect(violations('runtime', ['cpu', 'addon'])).toEqual([]);
    expect(violations('arch', ['cpu', 'addon'])).toEqual([]);
  });

  it('backend/ includes no implementation and nothing above it', () => {
    expect(violations('backend', ['cpu', 'runtime', 'arch', 'include', 'addon'])).toEqual([]);
  });

  it('cpu/ includes nothing above the backend interface', () => {
    expect(violations('cpu', ['runtime', 'arch', 'include', 'addon'])).toEqual([]);
  });

  it('only addon/ sees Node', () => {
    const bad: string[] = [];
    for (const file of sourceFiles('native', ['.h', '.cpp'])) {
      if (file.startsWith('native/addon/')) continue;
      const source = readFileSync(path.join(root, file), 'utf8');
      if (/#\s*include\s*[<"](?:napi|node_api|node|uv|v8)[^>"]*[>"]/.test(source)) bad.push(file);
    }
    expect(bad).toEqual([]);
  });
});

describe('quant/ holds format facts only', () => {
  it('no CPU kernel table fields or dispatch in quant/', () => {
    const bad: string[] = [];
    for (const file of sourceFiles('native/quant', ['.h', '.cpp'])) {
      const source = readFileSync(path.join(root, file), 'utf8');
      for (const word of ['gemm_lanes', 'gemm_tile', 'act_extra_per_block', 'from_float_act', 'vec_dot_n', 'vec_dot_unrolled', 'type_traits_of', 'thread_pool']) {
        if (source.includes(word)) bad.push(`${file}: ${word}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
