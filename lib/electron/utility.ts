/**
 * The entry point of the Electron `utilityProcess` that runs the engine (forked by
 * {@link startMoerunProcess}): it serves models on each MessagePort its parent sends.
 * Not tested here: Electron cannot be installed on the build machine (its npm package downloads
 * the binary at install); the protocol it runs is tested in Node (test/electron.test.ts).
 */
import { serveEndpoint } from './host.js';
import { eventPortEndpoint, type EventPortLike } from './protocol.js';

interface ParentPort {
  on(event: 'message', listener: (e: { ports: EventPortLike[] }) => void): void;
}

const parentPort = (process as unknown as { parentPort?: ParentPort }).parentPort;
if (!parentPort) {
  process.stderr.write('moerun/electron: utility.js runs inside an Electron utilityProcess (process.parentPort is missing)\n');
  process.exit(1);
}
// Every port the parent sends (one per loadModel, or one per renderer) is served on its own.
parentPort.on('message', (e) => {
  for (const port of e.ports) serveEndpoint(eventPortEndpoint(port));
});
