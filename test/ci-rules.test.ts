// No check skips silently in CI (issue 18, part 5): under CI=true a missing tool or missing test data
// fails the run (hasTool / hasData throw), and every conditional skip in the suite goes through them.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { hasData, hasTool } from './helpers/run.js';

const testDir = path.dirname(fileURLToPath(import.meta.url));
const savedCi = process.env.CI;
afterEach(() => {
  if (savedCi === undefined) delete process.env.CI;
  else process.env.CI = savedCi;
});

describe('CI=true forbids skipping', () => {
  it('a missing tool or missing data throws under CI=true and is a skip elsewhere', () => {
    process.env.CI = 'true';
    expect(() => hasTool('moerun-no-such-tool', 'ci-rules.test')).toThrow(/moerun-no-such-tool is not installed, and CI=true forbids skipping/);
    expect(() => hasData(false, 'the vocab files', 'ci-rules.test')).toThrow(/the vocab files is missing, and CI=true forbids skipping/);
    expect(hasTool('node', 'ci-rules.test')).toBe(true);
    delete process.env.CI;
    expect(hasTool('moerun-no-such-tool', 'ci-rules.test')).toBe(false);
    expect(hasData(false, 'the vocab files', 'ci-rules.test')).toBe(false);
  });

  it('every skipIf/runIf condition is made of hasTool/hasData results (or fails under CI=true itself)', () => {
    const offenders: string[] = [];
    for (const file of readdirSync(testDir).filter((f) => f.endsWith('.test.ts') && f !== 'ci-rules.test.ts')) {
      const src = readFileSync(path.join(testDir, file), 'utf8');
      for (const m of src.matchAll(/\.(?:skipIf|runIf)\(([^)]*(?:\([^)]*\)[^)]*)*)\)/g)) {
        const condition = m[1]!;
        // Inline hasTool/hasData calls are fine; every other name must be assigned from them, or
        // the file must throw for it under CI=true.
        const names = condition.replace(/has(?:Tool|Data|CudaToolkit)\([^)]*\)/g, '').match(/[A-Za-z_]\w*/g) ?? [];
        for (const name of names) {
          const assigned = new RegExp(`(?:const|let)\\s+${name}\\s*=[^;]*has(?:Tool|Data|CudaToolkit)\\(`).test(src) ||
            new RegExp(`${name}\\s*=\\s*has(?:Tool|Data|CudaToolkit)\\(`).test(src);
          const throwsInCi = new RegExp(`${name}[^\\n]*CI === 'true'[^\\n]*throw`).test(src) || new RegExp(`${name}[^\\n]*&& process\\.env\\.CI === 'true'\\) throw`).test(src);
          if (!assigned && !throwsInCi) offenders.push(`${file}: ${m[0]} (${name})`);
        }
      }
      if (/ctx\.skip\(\)/.test(src) && !/process\.env\.CI === 'true'\) throw/.test(src)) offenders.push(`${file}: ctx.skip() without a CI=true throw`);
    }
    expect(offenders).toEqual([]);
  });
});
