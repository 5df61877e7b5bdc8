// moerun's greedy continuation as a token list comparable with llamaCppGreedy's.

import type { Session } from 'moerun';

/**
 * The tokens `session` generates greedily after `prompt`, at most `n`. Generation stops at an
 * end-of-generation token, which the stream does not yield: it is appended here (as `eogToken`), so
 * the list is a prefix of what llama.cpp (which never stops) generates. The stream's final flush
 * chunk (leftover bytes of an incomplete UTF-8 character) repeats the last token and is dropped.
 */
export async function greedyTokens(session: Session, prompt: readonly number[], n: number, eogToken: number): Promise<{ tokens: number[]; stoppedAtEog: boolean }> {
  const stream = session.generate(prompt, { temperature: 0, maxTokens: n });
  const chunks: number[] = [];
  for await (const chunk of stream) chunks.push(chunk.token);
  const stats = stream.stats!;
  const stoppedAtEog = stats.stopReason === 'eog';
  const yielded = stats.generatedTokens - (stoppedAtEog ? 1 : 0);
  const tokens = chunks.slice(0, yielded);
  if (stoppedAtEog) tokens.push(eogToken);
  return { tokens, stoppedAtEog };
}
