// loadModel({ pinThreads }): the compute threads bound one per physical core, seen from the OS
// (each thread's Cpus_allowed_list in /proc/self/task), the same tokens as unbound threads, and
// the option validated.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bundledModelPath, loadModel, type Model } from 'moerun';
import { hasData } from './helpers/run.js';

// Threads of this process bound to exactly one CPU, by task id.
function singleCpuThreads(): Map<string, string> {
  const out = new Map<string, string>();
  for (const tid of readdirSync('/proc/self/task')) {
    let status: string;
    try {
      status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
    } catch {
      continue; // the thread ended while we looked
    }
    const allowed = /^Cpus_allowed_list:\s*(\S+)$/m.exec(status)?.[1];
    if (allowed && /^\d+$/.test(allowed)) out.set(tid, allowed);
  }
  return out;
}

async function greedy(model: Model): Promise<string> {
  const session = model.createSession({ contextSize: 128 });
  const text = await session.generate('Once upon a time', { maxTokens: 24, temperature: 0 }).text();
  session.dispose();
  return text;
}

// Pinning needs Linux, more than one CPU in this process's affinity mask, and sysfs topology.
const canPin = hasData(
  process.platform === 'linux' &&
    existsSync('/sys/devices/system/cpu/cpu0/topology/core_id') &&
    (/^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '').includes('-'),
  'Linux CPU topology and more than one CPU to pin to',
  'pin-threads.test',
);

describe('pinThreads', () => {
  it('is off by default', async () => {
    await using model = await loadModel(bundledModelPath, { threads: 2 });
    expect(model.info.threadsPinned).toBe(false);
  });

  it.runIf(canPin)('binds each worker to its own core and decodes the same tokens', async () => {
    const before = singleCpuThreads();
    let pinnedText: string;
    {
      await using model = await loadModel(bundledModelPath, { threads: 2, pinThreads: true });
      expect(model.info.threadsPinned).toBe(true);
      const bound = [...singleCpuThreads()].filter(([tid]) => !before.has(tid));
      // 2 threads: the caller stays unbound, its one worker is bound.
      expect(bound.length).toBe(1);
      pinnedText = await greedy(model);
    }
    await using plain = await loadModel(bundledModelPath, { threads: 2 });
    expect(pinnedText).toBe(await greedy(plain));
    expect(pinnedText.length).toBeGreaterThan(8);
  });

  it('is validated', async () => {
    await expect(loadModel(bundledModelPath, { pinThreads: 'yes' as never })).rejects.toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }) as never,
    );
  });
});
