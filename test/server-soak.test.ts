// A shortened run of bench/soak-server.ts (8 s instead of 60, longer until 30 requests were made:
// a loaded CI machine answered only 18 in 8 s): `moerun serve` in its own process under 4
// concurrent loopback clients; every request must be answered as expected, the server must be idle
// afterwards and exit 0 on SIGTERM. RSS is not judged (8 s are all warm-up): the 60-second
// run and bench/serve-heap.ts in the README are the leak checks.
import path from 'node:path';
import { expect, it } from 'vitest';
import { bundledModelPath } from 'moerun';
import { run } from './helpers/run.js';
import { sharedDir } from './helpers/shared.js';

const root = path.resolve(__dirname, '..');

it('8 s of 4 concurrent clients: no error, every request answered, a clean exit', async () => {
  const shared = sharedDir();
  const model = shared ? path.join(shared, 'models/stories260K.gguf') : bundledModelPath;
  const tsx = path.join(root, 'node_modules/tsx/dist/cli.mjs');
  const r = await run(process.execPath, [tsx, path.join(root, 'bench/soak-server.ts'), '--seconds', '8', '--min-requests', '30', '--clients', '4', '--parallel', '2', '--model', model, '--warmup-requests', '0', '--no-rss-verdict']);
  const summary = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as {
    requests: number; errors: number; serverAnswered: number; exitCode: number; problems: string[]; byKind: Record<string, number>; generations: Record<string, number>;
  };
  expect(summary.problems).toEqual([]);
  expect(r.status).toBe(0);
  expect(summary.errors).toBe(0);
  expect(summary.requests).toBeGreaterThanOrEqual(30);
  expect(summary.serverAnswered).toBe(summary.requests);
  expect(Object.values(summary.byKind).every((n) => n > 0)).toBe(true);
  expect(summary.generations.abort).toBeGreaterThan(0);
  expect(summary.exitCode).toBe(0);
}, 120_000);
