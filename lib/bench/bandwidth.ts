/**
 * Memory bandwidth: `threads` workers each scan their own buffer with memchr (Buffer.indexOf of a
 * byte that is not there), so the rate is what the cores can pull from DRAM.
 */
import { Worker } from 'node:worker_threads';

/** Read bandwidth in bytes/s with `threads` threads (each scanning 256 MiB for ~1 s). */
export async function measureBandwidth(threads: number, seconds = 1): Promise<number> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const buf = Buffer.alloc(256 << 20, 1);
    buf.indexOf(0); // fault the pages in
    parentPort.postMessage('ready');
    parentPort.once('message', () => {
      let bytes = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < workerData * 1000) { buf.indexOf(0); bytes += buf.length; }
      parentPort.postMessage(bytes / ((performance.now() - t0) / 1000));
    });`;
  const workers = Array.from({ length: threads }, () => new Worker(code, { eval: true, workerData: seconds }));
  try {
    await Promise.all(workers.map((w) => new Promise((r) => w.once('message', r))));
    const rates = await Promise.all(workers.map((w) => new Promise<number>((r) => (w.once('message', r), w.postMessage('go')))));
    return rates.reduce((a, b) => a + b, 0);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
