// The server under load: `moerun serve` in its own process, N concurrent clients on loopback for a
// fixed time, each cycling through a mix of requests, with the server's RSS sampled every 250 ms.
//
//   npx tsx bench/soak-server.ts [--seconds 60] [--min-requests 0] [--warmup-requests 1500] [--clients 4] [--parallel 2]
//                                [--model PATH] [--json out.json] [--no-rss-verdict]
//
// The mix, per client in turn: chat streamed; completion; chat with a json_schema response_format
// (the answer must parse); a streamed completion the client abandons after 5 events (a disconnect:
// the server must abort it); malformed JSON (must be a 400); chat with a stop string. Every request
// must get its expected answer; a request that fails, hangs past 30 s or gets another status is an
// error. Afterwards the server's /metrics must show every request answered, nothing running or
// queued, and it must exit 0 on SIGTERM.
//
// RSS: V8 grows its heap lazily under load, so the server's RSS rises for its first ~1,000-1,500
// requests and then levels (bench/serve-heap.ts shows the heap after GC level from the start). The
// clients first send --warmup-requests requests (checked like the rest, RSS not judged), then run
// for --seconds; RSS is "flat" when the median of that window's last quarter is within
// max(8 MiB, 5%) of its first quarter's. The summary also gives the least-squares slope, MiB/min.
// Exit status 1 on any error or a growth past that bound. Prints one line per 10 s and a summary
// (JSON with --json).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    // Keep going past --seconds until this many requests were measured (a loaded machine is slow).
    'min-requests': { type: 'string', default: '0' },
    'warmup-requests': { type: 'string', default: '1500' },
    clients: { type: 'string', default: '4' },
    parallel: { type: 'string', default: '2' },
    model: { type: 'string', default: path.join(root, 'models/stories260K.gguf') },
    json: { type: 'string' },
    // Report RSS without judging it (a run of a few seconds is all warm-up).
    'no-rss-verdict': { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const warmupRequests = Number(values['warmup-requests']);
const clients = Number(values.clients);
const parallel = Number(values.parallel);
const minRequests = Number(values['min-requests']);
if (!(seconds > 0) || !Number.isInteger(warmupRequests) || warmupRequests < 0 || !Number.isInteger(clients) || clients < 1 || !Number.isInteger(parallel) || parallel < 1 ||
  !Number.isInteger(minRequests) || minRequests < 0) {
  throw new Error('--seconds must be positive, --warmup-requests and --min-requests non-negative integers, --clients and --parallel positive integers');
}

const REQUEST_TIMEOUT_MS = 30_000;
type Kind = 'chatStream' | 'completion' | 'jsonSchema' | 'abandoned' | 'malformed' | 'chatStop';
const kinds: Kind[] = ['chatStream', 'completion', 'jsonSchema', 'abandoned', 'malformed', 'chatStop'];

/** VmRSS of a process, MiB (Linux). */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) / 1024;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
}

async function startServer(): Promise<{ url: string; pid: number; exited: Promise<number | null>; stop: () => void }> {
  const cli = path.join(root, 'dist/cli.js');
  const child = spawn(process.execPath, [cli, 'serve', '--model', values.model, '--port', '0', '--parallel', String(parallel), '--model-name', 'soak'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  let url: string | undefined;
  while (!(url = /at (http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(stderr)?.[1])) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the server did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { url, pid: child.pid!, exited, stop: () => child.kill('SIGTERM') };
}

/** Reads a streamed answer's events until [DONE] (or `keep` events, then abandons it). */
async function readEvents(response: Response, keep: number | undefined, abort: AbortController): Promise<{ events: number; done: boolean; text: string }> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let events = 0;
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { events, done: false, text };
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const data = buffer.slice(0, end).replace(/^data: /, '');
      buffer = buffer.slice(end + 2);
      if (data === '[DONE]') return { events, done: true, text };
      const chunk = JSON.parse(data) as { choices?: { text?: string; delta?: { content?: string } }[]; error?: unknown };
      if (chunk.error) throw new Error(`error event: ${data}`);
      text += chunk.choices?.[0]?.text ?? chunk.choices?.[0]?.delta?.content ?? '';
      events++;
      if (keep !== undefined && events >= keep) {
        abort.abort();
        return { events, done: false, text };
      }
    }
  }
}

interface Tally {
  sent: number;
  ok: Record<Kind, number>;
  errors: string[];
  latencyMs: number[];
}

const personSchema = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 } },
  required: ['name', 'age'],
  additionalProperties: false,
};

/** One request of `kind`; throws when the answer is not what it must be. */
async function oneRequest(url: string, kind: Kind, seed: number): Promise<void> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
  const post = (route: string, body: object | string): Promise<Response> =>
    fetch(`${url}/${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), signal: abort.signal });
  const messages = [{ role: 'user', content: `Tell story number ${seed}.` }];
  try {
    switch (kind) {
      case 'chatStream': {
        const r = await post('chat/completions', { model: 'soak', messages, max_tokens: 64, seed, stream: true, stream_options: { include_usage: true } });
        if (r.status !== 200) throw new Error(`status ${r.status}: ${await r.text()}`);
        const { done } = await readEvents(r, undefined, abort);
        if (!done) throw new Error('the stream ended without [DONE]');
        return;
      }
      case 'completion': {
        const r = await post('completions', { model: 'soak', prompt: 'Once upon a time', max_tokens: 64, seed });
        const body = (await r.json()) as { choices?: { text: string }[]; usage?: { completion_tokens: number } };
        if (r.status !== 200 || typeof body.choices?.[0]?.text !== 'string' || !(body.usage!.completion_tokens > 0)) throw new Error(`status ${r.status}: ${JSON.stringify(body)}`);
        return;
      }
      case 'jsonSchema': {
        const r = await post('chat/completions', { model: 'soak', messages, max_tokens: 120, seed, temperature: 1, response_format: { type: 'json_schema', json_schema: { name: 'person', schema: personSchema } } });
        const body = (await r.json()) as { choices?: { message: { content: string } }[] };
        if (r.status !== 200) throw new Error(`status ${r.status}: ${JSON.stringify(body)}`);
        const value = JSON.parse(body.choices![0]!.message.content) as { name?: unknown; age?: unknown };
        if (typeof value.name !== 'string' || !Number.isInteger(value.age)) throw new Error(`does not match the schema: ${body.choices![0]!.message.content}`);
        return;
      }
      case 'abandoned': {
        const r = await post('completions', { model: 'soak', prompt: 'Once upon a time', max_tokens: 1500, seed, stream: true });
        if (r.status !== 200) throw new Error(`status ${r.status}: ${await r.text()}`);
        const { events } = await readEvents(r, 5, abort);
        if (events !== 5) throw new Error(`abandoned after ${events} events, not 5`);
        return;
      }
      case 'malformed': {
        const r = await post('chat/completions', '{"model": "soak", "messages": [');
        const body = (await r.json()) as { error?: { code?: string } };
        if (r.status !== 400 || body.error?.code !== 'invalid_json') throw new Error(`status ${r.status}: ${JSON.stringify(body)}`);
        return;
      }
      case 'chatStop': {
        const r = await post('chat/completions', { model: 'soak', messages, max_tokens: 64, seed, stop: ['.'] });
        const body = (await r.json()) as { choices?: { message: { content: string } }[] };
        if (r.status !== 200 || body.choices![0]!.message.content.includes('.')) throw new Error(`status ${r.status}: ${JSON.stringify(body)}`);
        return;
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

async function main(): Promise<number> {
  const server = await startServer();
  // RSS every 250 ms: during warm-up into warmupSamples, then into samples (t from the window's start).
  const warmupSamples: { t: number; rss: number }[] = [];
  const samples: { t: number; rss: number }[] = [];
  const tStart = performance.now();
  let measuring = warmupRequests === 0;
  let t0 = tStart;
  let deadline = measuring ? t0 + seconds * 1000 : Infinity;
  const warmup = { requests: 0, seconds: 0 };
  const sampler = setInterval(() => (measuring ? samples : warmupSamples).push({ t: (performance.now() - t0) / 1000, rss: rssMiB(server.pid) }), 250);
  const tally: Tally = { sent: 0, ok: Object.fromEntries(kinds.map((k) => [k, 0])) as Record<Kind, number>, errors: [], latencyMs: [] };
  let lastReport = tStart;
  const client = async (c: number): Promise<void> => {
    const more = () => performance.now() < deadline || (measuring && tally.sent - warmup.requests < minRequests);
    for (let i = c; more(); i++) {
      const kind = kinds[i % kinds.length]!;
      tally.sent++;
      const start = performance.now();
      try {
        await oneRequest(server.url, kind, tally.sent);
        tally.ok[kind]++;
        tally.latencyMs.push(performance.now() - start);
      } catch (err) {
        tally.errors.push(`${kind}: ${(err as Error).message}`);
      }
      if (!measuring && tally.sent >= warmupRequests) {
        measuring = true;
        warmup.requests = tally.sent;
        warmup.seconds = (performance.now() - tStart) / 1000;
        t0 = performance.now();
        deadline = t0 + seconds * 1000;
        console.log(`warm-up: ${warmup.requests} requests in ${warmup.seconds.toFixed(0)} s, RSS ${warmupSamples.at(-1)?.rss.toFixed(1)} MiB; measuring for ${seconds} s`);
      }
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        console.log(`${((lastReport - tStart) / 1000).toFixed(0).padStart(3)} s: ${tally.sent} requests, ${tally.errors.length} errors, RSS ${(samples.at(-1) ?? warmupSamples.at(-1))?.rss.toFixed(1)} MiB`);
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
  clearInterval(sampler);
  // Abandoned streams end on the server shortly after the client leaves: wait for it to be idle.
  let metrics: { requests: Record<string, Record<string, number>>; activeGenerations: number; queueLength: number; generations: Record<string, number>; generatedTokens: number; decodeSeconds: number };
  const idleBy = Date.now() + 10_000;
  for (;;) {
    metrics = (await (await fetch(`${server.url.replace(/\/v1$/, '')}/metrics?format=json`)).json()) as typeof metrics;
    if ((metrics.activeGenerations === 0 && metrics.queueLength === 0) || Date.now() > idleBy) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const answered = ['/v1/chat/completions', '/v1/completions'].reduce((n, route) => n + Object.values(metrics.requests[route] ?? {}).reduce((a, b) => a + b, 0), 0);
  server.stop();
  const exitCode = await server.exited;

  const quarter = samples.length / 4;
  const firstQuarter = median(samples.slice(0, Math.floor(quarter)).map((s) => s.rss));
  const lastQuarter = median(samples.slice(Math.floor(3 * quarter)).map((s) => s.rss));
  const bound = Math.max(8, firstQuarter * 0.05);
  const flat = lastQuarter - firstQuarter <= bound;
  const meanT = samples.reduce((a, p) => a + p.t, 0) / samples.length;
  const meanR = samples.reduce((a, p) => a + p.rss, 0) / samples.length;
  const slopePerMin = (60 * samples.reduce((a, p) => a + (p.t - meanT) * (p.rss - meanR), 0)) / samples.reduce((a, p) => a + (p.t - meanT) ** 2, 0);
  const problems = [...tally.errors];
  if (!flat && !values['no-rss-verdict']) problems.push(`RSS grew from ${firstQuarter.toFixed(1)} to ${lastQuarter.toFixed(1)} MiB between the first and last quarters of the measured window (bound ${bound.toFixed(1)})`);
  if (answered !== tally.sent) problems.push(`the server counted ${answered} answered requests, the clients sent ${tally.sent}`);
  if (metrics.activeGenerations !== 0 || metrics.queueLength !== 0) problems.push(`not idle after the run: ${metrics.activeGenerations} running, ${metrics.queueLength} queued`);
  if (exitCode !== 0) problems.push(`the server exited with ${exitCode} on SIGTERM`);
  if (tally.ok.abandoned > 0 && !(metrics.generations.abort! >= 1)) problems.push('no abandoned stream was counted as aborted');

  const latency = [...tally.latencyMs].sort((a, b) => a - b);
  const summary = {
    seconds, clients, parallel, model: path.basename(values.model),
    warmup: { ...warmup, rssFirst: warmupSamples[0]?.rss, rssLast: warmupSamples.at(-1)?.rss },
    requests: tally.sent,
    measuredRequests: tally.sent - warmup.requests,
    byKind: tally.ok,
    errors: tally.errors.length,
    requestsPerSecond: (tally.sent - warmup.requests) / seconds,
    latencyMs: { p50: latency[Math.floor(latency.length * 0.5)], p95: latency[Math.floor(latency.length * 0.95)], max: latency.at(-1) },
    serverAnswered: answered,
    generations: metrics.generations,
    generatedTokens: metrics.generatedTokens,
    rssMiB: {
      byTenth: Array.from({ length: 10 }, (_, k) => median(samples.slice(Math.floor((k * samples.length) / 10), Math.floor(((k + 1) * samples.length) / 10)).map((s) => s.rss))),
      firstQuarter, lastQuarter, bound, flat, slopePerMin, max: Math.max(...samples.map((s) => s.rss)),
    },
    exitCode,
    problems,
  };
  console.log(JSON.stringify(summary, null, 2));
  if (values.json) await writeFile(values.json, JSON.stringify({ ...summary, warmupRssSamples: warmupSamples, rssSamples: samples }, null, 2));
  return problems.length === 0 ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
