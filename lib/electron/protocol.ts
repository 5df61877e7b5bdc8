/**
 * The messages between a moerun host (the engine, in an Electron `utilityProcess` or any other
 * thread or process) and its clients, and the port adapters. Plain structured-clone data only:
 * options that cannot cross a port (`signal`, a compiled `Grammar`, `onProgress`) are replaced by
 * messages (`abort`) or their serializable form (GBNF text).
 * @internal
 */
import type { ChatMessage } from '../chat.js';
import type { MoerunErrorCode } from '../errors.js';
import type { ChatChunk, ChatOptions, GenerateChunk, GenerateOptions, GenerateStats, SessionOptions } from '../session.js';

/** Generate options that cross a port: no `signal` (abort is a message), a grammar as GBNF text. */
export type PortGenerateOptions = Omit<GenerateOptions, 'signal' | 'grammar'> & { grammar?: string };
export type PortChatOptions = Omit<ChatOptions, 'signal' | 'grammar'> & { grammar?: string };
/** loadModel options that cross a port (progress arrives as `progress` messages). */
export interface PortLoadOptions {
  threads?: number | 'auto';
  allowLargerThanRam?: boolean;
  /** As loadModel's (model.ts): where the host process reads the weights from. */
  weightMemory?: 'auto' | 'map' | 'copy';
}

/** Client -> host. `id` names the call; replies carry it back. */
export type HostRequest =
  | { op: 'load'; id: number; path: string; options: PortLoadOptions }
  | { op: 'createSession'; id: number; model: number; options: SessionOptions }
  | { op: 'generate'; id: number; session: number; prompt: string | number[]; options: PortGenerateOptions }
  | { op: 'chat'; id: number; session: number; messages: ChatMessage[]; options: PortChatOptions }
  /** Aborts the generate/chat call `id` (it ends with an ERR_ABORTED error reply). */
  | { op: 'abort'; id: number }
  | { op: 'reset'; id: number; session: number }
  | { op: 'disposeSession'; id: number; session: number }
  | { op: 'disposeModel'; id: number; model: number };

/** Host -> client. A call gets `progress`/`chunk` messages, then exactly one `done` or `error`. */
export type HostReply =
  | { id: number; type: 'progress'; fraction: number }
  | { id: number; type: 'chunk'; chunk: GenerateChunk | ChatChunk }
  /** `value`: a model or session handle for load/createSession, the stats for generate/chat. */
  | { id: number; type: 'done'; value?: number | GenerateStats }
  | { id: number; type: 'error'; code: MoerunErrorCode; message: string };

/**
 * One end of a message channel, whatever the port type: worker_threads' `MessagePort` (delivers
 * the value), Electron's `MessagePortMain` (delivers `{ data }`), a DOM `MessagePort` (`{ data }`).
 */
export interface Endpoint {
  post(message: HostRequest | HostReply): void;
  onMessage(listener: (message: unknown) => void): void;
  close(): void;
}

/** A Node `worker_threads` MessagePort (also a stand-in for Electron's in tests). */
export function nodePortEndpoint(port: import('node:worker_threads').MessagePort): Endpoint {
  return {
    post: (m) => port.postMessage(m),
    onMessage: (listener) => port.on('message', listener),
    close: () => port.close(),
  };
}

/** The shape shared by Electron's MessagePortMain and the DOM's MessagePort. */
export interface EventPortLike {
  postMessage(message: unknown): void;
  start(): void;
  close(): void;
}

/** Electron's `MessagePortMain` (main or utility process) or a renderer's DOM `MessagePort`. */
export function eventPortEndpoint(port: EventPortLike): Endpoint {
  const p = port as EventPortLike & {
    on?: (event: 'message', l: (e: { data: unknown }) => void) => void;
    addEventListener?: (event: 'message', l: (e: { data: unknown }) => void) => void;
  };
  return {
    post: (m) => p.postMessage(m),
    onMessage: (listener) => {
      const handler = (e: { data: unknown }) => listener(e.data);
      if (p.on) p.on('message', handler);
      else p.addEventListener!('message', handler);
      p.start();
    },
    close: () => p.close(),
  };
}
