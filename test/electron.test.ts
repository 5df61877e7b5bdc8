// moerun/electron's protocol: the engine in a child process behind real MessagePorts (a
// child_process.fork bridged to a MessageChannel on each side stands in for Electron's
// utilityProcess; Electron itself cannot be installed here), with
// the TextModel API on this side: streaming, abort by signal and by leaving the loop, errors as
// MoerunErrors, dispose.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fork, type ChildProcess } from 'node:child_process';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Grammar, MoerunError, type TextModel } from '../lib/index.js';
import { loadModelOverPort, type PortModel } from '../lib/electron/client.js';
import { nodePortEndpoint } from '../lib/electron/protocol.js';
import { hasData } from './helpers/run.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const modelPath = path.join(root, 'models/stories260K.gguf');
const hasModel = hasData(existsSync(modelPath), 'models/stories260K.gguf', 'electron.test');
const golden = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.';

/** Written against TextModel only: runs unchanged on a local Model and on a PortModel. */
async function story(model: TextModel): Promise<string> {
  const session = model.createSession({ contextSize: 256 });
  const text = await session.generate('Once upon a time', { maxTokens: 60, temperature: 0 }).text();
  await session.dispose();
  return text;
}

/** Forks the host; returns the port this side talks on (bridged to the child's IPC) and the child. */
function startHost(): { port: MessagePort; child: ChildProcess } {
  const child = fork(path.join(root, 'test/helpers/electron-host.ts'), { execArgv: ['--import', 'tsx'], serialization: 'advanced', stdio: 'inherit' });
  const { port1, port2 } = new MessageChannel();
  port2.on('message', (m) => child.send(m));
  child.on('message', (m) => port2.postMessage(m));
  child.on('exit', () => port2.close());
  return { port: port1, child };
}

describe.skipIf(!hasModel)('moerun/electron protocol over a MessagePort', () => {
  let host: { port: MessagePort; child: ChildProcess };
  let model: PortModel;
  const progress: number[] = [];

  beforeAll(async () => {
    host = startHost();
    model = await loadModelOverPort(nodePortEndpoint(host.port), modelPath, { threads: 2, onProgress: (f) => progress.push(f) });
  }, 60_000);
  afterAll(async () => {
    await model?.dispose();
    host?.child.kill();
  });

  it('loads with progress and streams the golden greedy story', async () => {
    expect(progress.at(-1)).toBe(1);
    expect('Once upon a time' + (await story(model))).toContain(golden);
  });

  it('streams chunks with token ids, then stats', async () => {
    const session = model.createSession();
    const stream = session.generate('Once upon a time', { maxTokens: 8, temperature: 0 });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks).toHaveLength(8);
    expect(chunks.every((c) => Number.isInteger(c.token) && typeof c.text === 'string')).toBe(true);
    expect(stream.stats).toMatchObject({ generatedTokens: 8, stopReason: 'maxTokens' });
    await session.dispose();
  });

  it('aborts through the signal mid-stream, and the session runs again afterwards', async () => {
    const session = model.createSession();
    const controller = new AbortController();
    let seen = 0;
    const run = async () => {
      for await (const _ of session.generate('Once upon a time', { maxTokens: 200, temperature: 0, signal: controller.signal })) {
        if (++seen === 3) controller.abort();
      }
    };
    await expect(run()).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(seen).toBeLessThan(200);
    session.reset();
    const again = await session.generate('Once upon a time', { maxTokens: 4, temperature: 0 }).text();
    expect(again.length).toBeGreaterThan(0);
    await session.dispose();
  });

  it('leaving the loop early stops the host, which then takes the next call', async () => {
    const session = model.createSession();
    for await (const _ of session.generate('Once upon a time', { maxTokens: 200, temperature: 0 })) break;
    const text = await session.generate(' and', { maxTokens: 4, temperature: 0 }).text();
    expect(typeof text).toBe('string');
    await session.dispose();
  });

  it('errors arrive as MoerunErrors with their codes', async () => {
    const other = startHost();
    try {
      const err = await loadModelOverPort(nodePortEndpoint(other.port), path.join(root, 'no-such-model.gguf')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MoerunError);
      expect((err as MoerunError).code).toBe('ERR_IO');
    } finally {
      other.child.kill();
    }
    const session = model.createSession();
    expect(() => session.generate('x', { grammar: new Grammar('root ::= "a"') })).toThrow(/GBNF text/);
    await expect(session.generate('x', { maxTokens: -1 }).text()).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await session.dispose();
    expect(() => session.generate('x')).toThrow(MoerunError);
  });
});
