/**
 * `moerun/electron`: the engine in an Electron `utilityProcess`, the same typed streaming API
 * (sessions with `generate`, `chat`, `signal` abort, `dispose`) in the main process over a
 * MessagePort. The native addon is loaded only in the utility process, from outside the asar
 * archive (see README, "Electron").
 *
 *   import { startMoerunProcess } from 'moerun/electron';      // in Electron's main process
 *   const engine = await startMoerunProcess();
 *   const model = await engine.loadModel('/path/model.gguf');
 *   for await (const chunk of model.createSession().generate('Hi')) ...
 *
 * To serve a renderer: create a MessageChannelMain, pass port1 to `engine.serveOn` and post port2
 * to the renderer (`webContents.postMessage('moerun', null, [port2])`); the renderer calls
 * `loadModelOverPort(eventPortEndpoint(port), path)` (lib/electron/client.ts and protocol.ts
 * import nothing from Node).
 * The protocol (lib/electron/protocol.ts, host.ts, client.ts) is plain Node and tested with
 * worker_threads ports; this Electron glue is not tested (Electron cannot be installed here).
 */
import { fileURLToPath } from 'node:url';
import { loadModelOverPort, type PortModel } from './client.js';
import { eventPortEndpoint, type EventPortLike, type PortLoadOptions } from './protocol.js';

export { loadModelOverPort, PortModel, PortSession } from './client.js';
export { serveEndpoint } from './host.js';
export { eventPortEndpoint, nodePortEndpoint, type Endpoint, type EventPortLike, type PortLoadOptions } from './protocol.js';

/** The engine's utility process and how to reach it. */
export interface MoerunProcess {
  /** Loads a model in the utility process. */
  loadModel(path: string, options?: PortLoadOptions & { onProgress?: (fraction: number) => void }): Promise<PortModel>;
  /** Gives the utility process another port to serve (e.g. one whose other end goes to a renderer). */
  serveOn(port: EventPortLike): void;
  /** Ends the utility process. */
  kill(): void;
}

interface ElectronMain {
  utilityProcess: {
    fork(modulePath: string, args?: string[], options?: { serviceName?: string }): {
      postMessage(message: unknown, transfer?: EventPortLike[]): void;
      kill(): boolean;
    };
  };
  MessageChannelMain: new () => { port1: EventPortLike; port2: EventPortLike };
}

/** Forks the engine's utility process (Electron main process only). */
export async function startMoerunProcess(): Promise<MoerunProcess> {
  const electron = (await import('electron' as string)) as ElectronMain & { default?: ElectronMain };
  const { utilityProcess, MessageChannelMain } = electron.default ?? electron;
  const entry = fileURLToPath(new URL('./utility.js', import.meta.url));
  const child = utilityProcess.fork(entry, [], { serviceName: 'moerun' });
  const serveOn = (port: EventPortLike) => child.postMessage({ moerun: 'port' }, [port]);
  return {
    loadModel: (path, options) => {
      const { port1, port2 } = new MessageChannelMain();
      serveOn(port2);
      return loadModelOverPort(eventPortEndpoint(port1), path, options);
    },
    serveOn,
    kill: () => void child.kill(),
  };
}
