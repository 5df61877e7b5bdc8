// The stand-in for moerun/electron's utilityProcess in test/electron.test.ts: a child process
// (child_process.fork, through tsx) serving models on a real MessagePort, bridged to the parent's
// IPC channel: parent port <-> IPC <-> this process's port, as utilityProcess hands it a port.
import { MessageChannel } from 'node:worker_threads';
import { serveEndpoint } from '../../lib/electron/host.js';
import { nodePortEndpoint } from '../../lib/electron/protocol.js';

const { port1, port2 } = new MessageChannel();
serveEndpoint(nodePortEndpoint(port2));
port1.on('message', (m) => process.send!(m));
process.on('message', (m) => port1.postMessage(m));
process.on('disconnect', () => process.exit(0));
