/**
 * The conditions of a run that are not measured: the moerun commit and version.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { moerunPackageRoot } from '../native.js';

/** Short commit of the moerun checkout, `+dirty` with uncommitted changes; `n/a` outside git. */
export function gitCommit(): string {
  try {
    const opts = { cwd: moerunPackageRoot, stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'] };
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], opts).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).toString().trim() !== '';
    return dirty ? `${head}+dirty` : head;
  } catch {
    return 'n/a';
  }
}

/** moerun's package.json version; `unknown` when it cannot be read. */
export async function packageVersion(): Promise<string> {
  try {
    return (JSON.parse(await readFile(path.join(moerunPackageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
