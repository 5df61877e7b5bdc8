// Child processes for tests, asynchronously: a test file's worker must keep its event loop free
// while a build, valgrind or a CLI runs (a synchronous spawn held it for a minute, and vitest's
// worker RPC timed out), and a test must never skip for a missing tool under CI=true.
import { spawn, spawnSync } from 'node:child_process';

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout then stderr. */
  output: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed. */
  input?: string;
}

export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr, output: stdout + stderr }));
    // A child that exits without reading its stdin makes this write fail with EPIPE: not an error here.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/**
 * Whether a command-line tool is installed. Under CI=true a missing tool is an error, not a skip:
 * .ci/run installs what the tests need.
 */
export function hasTool(cmd: string, testFile: string): boolean {
  const found = spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
  if (!found) {
    if (process.env.CI === 'true') throw new Error(`${testFile}: ${cmd} is not installed, and CI=true forbids skipping (.ci/run installs it)`);
    console.log(`${testFile}: ${cmd} is not installed, so the tests that need it are skipped`);
  }
  return found;
}

/**
 * Whether the CUDA toolkit (nvcc 12 or later) is installed. Unlike the tools above it is optional
 * everywhere, CI included, as a GPU is: the package builds and runs without it, and Debian has no
 * package of it that can build the library (sm_90a needs CUDA 12+). Its tests skip with a line
 * saying why.
 */
export function hasCudaToolkit(testFile: string): boolean {
  const r = spawnSync('nvcc', ['--version'], { encoding: 'utf8' });
  const major = r.status === 0 ? Number(/release (\d+)\./.exec(r.stdout)?.[1] ?? 0) : 0;
  if (major < 12) console.log(`${testFile}: ${r.status === 0 ? `nvcc ${major}` : 'no nvcc'} (the CUDA toolkit 12+ builds the GPU library; optional like a GPU), so the tests that need it are skipped`);
  return major >= 12;
}

/**
 * Whether test data a suite needs is present (`present`), with the same rule as {@link hasTool}:
 * under CI=true missing data is an error, elsewhere the suite is skipped with a line saying why.
 */
export function hasData(present: boolean, what: string, testFile: string): boolean {
  if (!present) {
    if (process.env.CI === 'true') throw new Error(`${testFile}: ${what} is missing, and CI=true forbids skipping`);
    console.log(`${testFile}: ${what} is missing, so the tests that need it are skipped`);
  }
  return present;
}
