/**
 * The engine side of the port protocol: loads models and runs sessions for the requests arriving
 * on one endpoint (lib/electron/protocol.ts). Runs in Electron's utilityProcess
 * (lib/electron/utility.ts), or in a worker thread or child process.
 */
import { MoerunError, type MoerunErrorCode } from '../errors.js';
import { loadModel, type Model } from '../model.js';
import type { Session } from '../session.js';
import type { Endpoint, HostReply, HostRequest } from './protocol.js';

/** Serves requests on `endpoint` until it closes; returns a function that disposes everything. */
export function serveEndpoint(endpoint: Endpoint): () => Promise<void> {
  const models = new Map<number, Model>();
  const sessions = new Map<number, Session<Model>>();
  const running = new Map<number, AbortController>();
  let nextHandle = 1;
  const reply = (m: HostReply): void => endpoint.post(m);
  const fail = (id: number, err: unknown): void => {
    const code: MoerunErrorCode = err instanceof MoerunError ? err.code : 'ERR_INTERNAL';
    reply({ id, type: 'error', code, message: (err as Error)?.message ?? String(err) });
  };
  const session = (handle: number): Session<Model> => {
    const s = sessions.get(handle);
    if (!s) throw new MoerunError('ERR_INVALID_ARGUMENT', `no session ${handle} on this host (disposed?)`);
    return s;
  };

  async function handle(req: HostRequest): Promise<void> {
    switch (req.op) {
      case 'load': {
        const model = await loadModel(req.path, { ...req.options, onProgress: (fraction) => reply({ id: req.id, type: 'progress', fraction }) });
        const handle = nextHandle++;
        models.set(handle, model);
        return reply({ id: req.id, type: 'done', value: handle });
      }
      case 'createSession': {
        const model = models.get(req.model);
        if (!model) throw new MoerunError('ERR_INVALID_ARGUMENT', `no model ${req.model} on this host (disposed?)`);
        const handle = nextHandle++;
        sessions.set(handle, model.createSession(req.options));
        return reply({ id: req.id, type: 'done', value: handle });
      }
      case 'generate':
      case 'chat': {
        const controller = new AbortController();
        running.set(req.id, controller);
        try {
          const s = session(req.session);
          const options = { ...req.options, signal: controller.signal };
          const stream = req.op === 'generate' ? s.generate(req.prompt, options) : s.chat(req.messages, options);
          for await (const chunk of stream) reply({ id: req.id, type: 'chunk', chunk });
          return reply({ id: req.id, type: 'done', value: stream.stats });
        } finally {
          running.delete(req.id);
        }
      }
      case 'abort':
        running.get(req.id)?.abort();
        return;
      case 'reset':
        session(req.session).reset();
        return reply({ id: req.id, type: 'done' });
      case 'disposeSession':
        await sessions.get(req.session)?.dispose();
        sessions.delete(req.session);
        return reply({ id: req.id, type: 'done' });
      case 'disposeModel': {
        const model = models.get(req.model);
        models.delete(req.model);
        for (const [h, s] of sessions) if (s.model === model) sessions.delete(h);
        await model?.dispose();
        return reply({ id: req.id, type: 'done' });
      }
    }
  }

  endpoint.onMessage((message) => {
    const req = message as HostRequest;
    if (typeof req !== 'object' || req === null || typeof req.id !== 'number' || typeof req.op !== 'string') return;
    handle(req).catch((err) => fail(req.id, err));
  });

  return async () => {
    for (const c of running.values()) c.abort();
    for (const m of models.values()) await m.dispose();
    models.clear();
    sessions.clear();
  };
}
