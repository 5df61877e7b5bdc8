/**
 * The API a script writes against, met by a local {@link Model} and by a {@link RemoteModel} from
 * `connect()`: sessions that stream `generate()` and `chat()`. A function typed with these runs
 * unchanged on either.
 */
import type { ChatMessage } from '../chat.js';
import type { ChatChunk, ChatOptions, GenerateChunk, GenerateOptions, GenerateStats, SessionOptions } from '../session.js';

/** The stream `generate()` returns: chunks, then `stats` once iteration has finished. */
export interface TextGenerationStream extends AsyncIterableIterator<GenerateChunk, undefined> {
  /** Set once iteration has finished (normally, by break, or by an error or abort). */
  readonly stats: GenerateStats | undefined;
  /** Collects the whole generation as one string. */
  text(): Promise<string>;
}

/** The stream `chat()` returns: answer text and reasoning, then `stats`. */
export interface TextChatStream extends AsyncIterableIterator<ChatChunk, undefined> {
  /** Set once iteration has finished. */
  readonly stats: GenerateStats | undefined;
  /** Collects the whole answer: `{ text, reasoning }`. */
  collect(): Promise<{ text: string; reasoning: string }>;
}

/** A sequence on a model: a local {@link Session} or a {@link RemoteSession}. */
export interface TextSession {
  /** Continues the sequence with `prompt` and streams what follows. */
  generate(prompt: string | ArrayLike<number>, options?: GenerateOptions): TextGenerationStream;
  /** Answers a conversation with the model's chat template. */
  chat(messages: readonly ChatMessage[], options?: ChatOptions): TextChatStream;
  /** Clears the sequence. */
  reset(): void;
  /** Stops work in flight and frees the session. Safe to call twice. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A model sessions run on: a local {@link Model} or a {@link RemoteModel}. */
export interface TextModel {
  /** True once disposed. */
  readonly disposed: boolean;
  /** A new session. */
  createSession(options?: SessionOptions): TextSession;
  /** Frees the model and its sessions. Safe to call twice. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

// A local Model and RemoteModel both meet TextModel: checked here, at compile time.
type Meets<T extends TextModel> = T;
type LocalModelMeetsTextModel = Meets<import('../model.js').Model>;
type RemoteModelMeetsTextModel = Meets<import('./index.js').RemoteModel>;
