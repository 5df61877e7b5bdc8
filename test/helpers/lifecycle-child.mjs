// Lifecycle scenarios with generation in flight, each run in its own process by
// test/lifecycle.test.ts (and under ASan by test/sanitizers.test.ts):
//   node lifecycle-child.mjs SCENARIO MODEL.gguf [ROUNDS (dropped; default 6)]
// SCENARIO:
//   terminate  workers load the addon and generate; each is terminated during load or while
//              decoding (twice each); then this thread
//              loads the model and generates, and prints "ok terminate ..."
//   exit       generation runs in this thread (a long prompt on the native thread) and
//              process.exit(7) is called in the middle of it; the test expects status 7, no signal
//   dropped    models and sessions with generation in flight are dropped without dispose(),
//              collected by the GC (run with --expose-gc), then process.exit(0) while the last ones still run
//   pending    the addon's loadModel is called with an options getter that throws, so it reaches
//              the point of making its promise with a JS exception pending; N-API can make no
//              promise then, as in a Worker whose termination has begun (the cause of the
//              "terminate" crash). Each call must throw the getter's error and start no work; then
//              this thread loads the model and generates, and prints "ok pending ..."
// MOERUN_DIST: the package entry to import instead of 'moerun' (a sanitized addon's copy).
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const { loadModel } = await import(process.env.MOERUN_DIST ?? 'moerun');
const longText = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. '.repeat(20);

async function generateLong(model, onPiece, maxTokens = 400) {
  const session = model.createSession({ contextSize: 1024 });
  let n = 0;
  for await (const piece of session.generate(longText, { maxTokens, temperature: 0 })) onPiece(piece, ++n);
  return n;
}

if (!isMainThread) {
  // Worker: report each phase to the parent, which terminates it at the phase it waits for.
  const { modelPath } = workerData;
  parentPort.postMessage('loading');
  const model = await loadModel(modelPath, { threads: 2 });
  parentPort.postMessage('loaded');
  await generateLong(model, (_piece, n) => parentPort.postMessage(n === 1 ? 'decoding' : 'piece'));
  parentPort.postMessage('done');
} else {
  const [scenario, modelPath] = process.argv.slice(2);
  if (scenario === 'terminate') {
    // 'loaded' lands as the worker makes its next synchronous native call (createSession), which
    // used to abort the process (a constructor's empty result unwrapped with a null env).
    const phases = ['loading', 'loaded', 'decoding', 'loading', 'loaded', 'decoding'];
    const reached = [];
    for (const phase of phases) {
      const worker = new Worker(new URL(import.meta.url), { workerData: { modelPath } });
      const seen = await new Promise((resolve, reject) => {
        worker.on('message', (m) => {
          // 'loaded' is followed at once by the long prompt's evaluation on the native thread.
          if (m === phase) resolve(m);
        });
        worker.on('error', reject);
        worker.on('exit', () => resolve('exited before ' + phase));
      });
      const code = await worker.terminate();
      reached.push(`${seen}:${code}`);
    }
    const model = await loadModel(modelPath, { threads: 2 });
    const n = await generateLong(model, () => {}, 16);
    await model.dispose();
    console.log(`ok terminate ${reached.join(' ')}; then ${n} tokens in this thread`);
  } else if (scenario === 'exit') {
    const model = await loadModel(modelPath, { threads: 2 });
    // The first piece comes after the prompt; exit half-way through the next tokens, and also
    // while a second session's prompt evaluation is on the native thread.
    const second = model.createSession({ contextSize: 1024 });
    void second.evaluate(Array.from(model.tokenize(longText))).catch(() => {});
    await generateLong(model, (_piece, n) => {
      if (n === 3) {
        console.log('exiting with generation in flight');
        process.exit(7);
      }
    });
    console.log('generation finished before exit');  // the test fails on this
  } else if (scenario === 'dropped') {
    const rounds = Number(process.argv[4] ?? 6);
    for (let round = 0; round < rounds; round++) {
      const model = await loadModel(modelPath, { threads: 1 });
      const session = model.createSession({ contextSize: 1024 });
      // Started and never awaited, never disposed.
      void session.generate(longText, { maxTokens: 8 }).text().catch(() => {});
    }
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 200));
    globalThis.gc?.();
    console.log(`ok dropped ${rounds} models with generation in flight; exiting`);
    process.exit(0);
  } else if (scenario === 'pending') {
    const entry = import.meta.resolve(process.env.MOERUN_DIST ?? 'moerun');
    const { native } = await import(new URL('./native.js', entry).href);
    const binding = native();
    let thrown = 0;
    for (let i = 0; i < 3; i++) {
      // weightMemory is the last option read before the promise is made.
      const options = { threads: 1, get weightMemory() { throw new Error('options getter threw'); } };
      try {
        binding.loadModel(modelPath, options);
      } catch (e) {
        if (e.message === 'options getter threw') thrown++;
      }
    }
    // Work queued with no promise (the defect) completes within this wait and crashed the process.
    await new Promise((r) => setTimeout(r, 1000));
    const model = await loadModel(modelPath, { threads: 2 });
    const n = await generateLong(model, () => {}, 16);
    await model.dispose();
    console.log(`ok pending ${thrown} of 3 calls threw the getter's error; then ${n} tokens in this thread`);
  } else {
    console.error(`unknown scenario ${scenario}`);
    process.exit(2);
  }
}
