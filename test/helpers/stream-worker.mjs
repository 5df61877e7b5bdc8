// Loads the addon in a worker thread or child process and generates greedily.
import { parentPort } from 'node:worker_threads';
import { bundledModelPath, loadModel } from 'moerun';
const model = await loadModel(bundledModelPath, { threads: 1 });
const text = await model.createSession({ contextSize: 128 }).generate('Once upon a time', { maxTokens: 20, temperature: 0 }).text();
await model.dispose();
if (parentPort) parentPort.postMessage(text);
else process.stdout.write(text);
