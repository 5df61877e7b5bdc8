// The published typings (dist/*.d.ts, resolved through the package's own "exports") compile a
// realistic usage file, and reject misuse (@ts-expect-error lines in test/types/usage.ts).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { run } from './helpers/run.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

it('the public API type-checks, and misuse does not', async () => {
  const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
  const r = await run(process.execPath, [tsc, '-p', path.join(root, 'test/types/tsconfig.json')]);
  expect(`${r.stdout}${r.stderr}`).toBe('');
  expect(r.status).toBe(0);
}, 120_000);
