// Every chat template of llama.cpp's own models/templates/ collection, rendered by moerun's engine
// (lib/chat/jinja.ts) and by llama.cpp's Jinja engine (common/jinja, built here from the llama.cpp
// source node-llama-cpp bundles, as test/oracle/jinja_render.cpp), for conversations with system
// prompts, multi-turn history, tools, tool calls and results, and non-ASCII text: byte-identical
// output, or both engines refusing. Also the engine's corner cases (test/oracle/conversations.ts)
// and the render limits (issue 18): a template that loops or expands without bound is a MoerunError
// well within a second.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MoerunError, renderChatTemplate } from 'moerun';
import { JinjaTemplate } from '../lib/chat/jinja.js';
import { conversations, probeContext, probeTemplates, renderTime } from './oracle/conversations.js';
import { hasTool, run } from './helpers/run.js';

const root = path.join(__dirname, '..');
const bundle = path.join(root, 'node_modules/node-llama-cpp/llama/gitRelease.bundle');
const cacheDir = path.join(root, 'node_modules/.cache/moerun-templates');
const driverSource = path.join(__dirname, 'oracle/jinja_render.cpp');
const haveTools = hasTool('git', 'templates.test.ts') && hasTool('g++', 'templates.test.ts');
const now = new Date(renderTime * 1000);

interface Job {
  name: string;
  template: string;
  context: Record<string, unknown>;
}

/** The llama.cpp source of node-llama-cpp's bundle, cloned once into the cache (a local clone). */
async function llamaSource(): Promise<string> {
  const st = statSync(bundle);
  const dir = path.join(cacheDir, `llama.cpp-${st.size}-${Math.floor(st.mtimeMs)}`);
  if (!existsSync(path.join(dir, 'common/jinja/runtime.cpp'))) {
    mkdirSync(cacheDir, { recursive: true });
    const r = await run('git', ['clone', '--quiet', bundle, dir]);
    if (r.status !== 0) throw new Error(`git clone of ${bundle} failed:\n${r.output}`);
  }
  return dir;
}

/** Builds the oracle driver against that source (about a minute on 2 cores; cached by content). */
async function buildOracle(src: string): Promise<string> {
  const sources = [driverSource, ...readdirSync(path.join(src, 'common/jinja')).filter((f) => f.endsWith('.cpp')).map((f) => path.join(src, 'common/jinja', f)),
    path.join(src, 'common/json.cpp'), path.join(src, 'common/unicode.cpp')];
  const key = createHash('sha256').update(sources.map((f) => readFileSync(f, 'utf8')).join('\0')).digest('hex').slice(0, 16);
  const exe = path.join(cacheDir, `jinja_render-${key}`);
  if (existsSync(exe)) return exe;
  // Two compiler processes (CI has 2 cores), then one link.
  const objects = sources.map((f, i) => path.join(cacheDir, `${key}-${i}.o`));
  const flags = ['-std=c++17', '-O1', '-I', path.join(src, 'common'), '-I', path.join(src, 'vendor'), '-I', path.join(src, 'ggml/include')];
  const queue = sources.map((f, i) => i);
  const worker = async () => {
    for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
      const r = await run('g++', [...flags, '-c', sources[i]!, '-o', objects[i]!]);
      if (r.status !== 0) throw new Error(`g++ ${sources[i]} failed:\n${r.output}`);
    }
  };
  await Promise.all([worker(), worker()]);
  const r = await run('g++', ['-o', exe, ...objects]);
  for (const o of objects) rmSync(o, { force: true });
  if (r.status !== 0) throw new Error(`linking the oracle failed:\n${r.output}`);
  return exe;
}

/** Renders every job with llama.cpp's engine: its text or its error. */
async function renderWithLlama(exe: string, jobs: Job[]): Promise<{ text?: string; error?: string }[]> {
  const file = path.join(cacheDir, `jobs-${process.pid}.json`);
  writeFileSync(file, JSON.stringify(jobs.map((j) => ({ template: j.template, context: j.context, time: renderTime }))));
  const r = await run(exe, [file], { env: { ...process.env, TZ: 'UTC' } });
  rmSync(file, { force: true });
  if (r.status !== 0) throw new Error(`the oracle failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as { text?: string; error?: string }[];
}

/** moerun's render of a job, with the oracle's time zone. */
function renderWithMoerun(job: Job): { text?: string; error?: string } {
  const tz = process.env.TZ;
  process.env.TZ = 'UTC';
  try {
    return { text: new JinjaTemplate(job.template).render(job.context, { now }) };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  }
}

describe.runIf(haveTools)("llama.cpp's models/templates/: moerun renders every template as llama.cpp's Jinja engine does", () => {
  let templates: [string, string][] = [];
  let results: { job: Job; llama: { text?: string; error?: string }; moerun: { text?: string; error?: string } }[] = [];

  beforeAll(async () => {
    const src = await llamaSource();
    const exe = await buildOracle(src);
    const dir = path.join(src, 'models/templates');
    templates = readdirSync(dir).filter((f) => f.endsWith('.jinja')).sort().map((f) => [f, readFileSync(path.join(dir, f), 'utf8')]);
    const jobs: Job[] = [
      ...Object.entries(probeTemplates).map(([name, template]) => ({ name: `probe ${name}`, template, context: probeContext })),
      ...templates.flatMap(([file, template]) => Object.entries(conversations).map(([name, context]) => ({ name: `${file} ${name}`, template, context }))),
    ];
    const llama = await renderWithLlama(exe, jobs);
    results = jobs.map((job, i) => ({ job, llama: llama[i]!, moerun: renderWithMoerun(job) }));
  });

  it('the collection is there: about 70 templates, each rendered for every conversation', () => {
    expect(templates.length).toBeGreaterThanOrEqual(60);
    expect(results.length).toBe(Object.keys(probeTemplates).length + templates.length * Object.keys(conversations).length);
  });

  it('every render is byte-identical, or both engines refuse it', () => {
    const mismatches = results.filter((r) => !(r.llama.text !== undefined ? r.moerun.text === r.llama.text : r.moerun.error !== undefined));
    const identical = results.filter((r) => r.llama.text !== undefined && r.moerun.text === r.llama.text).length;
    const bothRefuse = results.filter((r) => r.llama.error !== undefined && r.moerun.error !== undefined).length;
    console.log(`templates.test.ts: ${identical} identical renders, ${bothRefuse} refused by both engines, ${mismatches.length} mismatches of ${results.length}`);
    expect(mismatches.map((m) => ({ name: m.job.name, llama: m.llama, moerun: m.moerun }))).toEqual([]);
    // Most renders succeed: refusals are templates that require what a conversation lacks.
    expect(identical).toBeGreaterThan(results.length * 0.9);
  });

  it('a refusal is the template raising on purpose, or a template that needs object arguments given a string (as chat() never does)', () => {
    for (const r of results.filter((x) => x.llama.error !== undefined)) {
      if (!r.job.name.endsWith(' toolCallsStringArguments')) expect(r.job.template.includes('raise_exception'), r.job.name).toBe(true);
    }
  });

  it('tool definitions, tool calls and results, and non-ASCII text reach the output', () => {
    const hermes = results.find((r) => r.job.name === 'NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja toolCalls')!;
    expect(hermes.moerun.text).toContain('"name": "get_weather"');
    expect(hermes.moerun.text).toContain('<tool_response>');
    const qwen = results.find((r) => r.job.name === 'Qwen-Qwen3-0.6B.jinja nonAscii')!;
    expect(qwen.moerun.text).toContain('你好 👋');
  });
});

describe('render limits: a runaway template is a MoerunError, not a hang', () => {
  const runaway: Record<string, string> = {
    'range(10**9)': '{% for i in range(10**9) %}x{% endfor %}',
    'nested loops': '{% for i in range(10000) %}{% for j in range(10000) %}{{ j }}{% endfor %}{% endfor %}',
    'recursive macro': '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}',
    'recursion through a namespace': '{% set ns = namespace(f=none) %}{% macro g(n) %}{{ ns.f(n + 1) }}{% endmacro %}{% set ns.f = g %}{{ g(0) }}',
    'string multiplication': "{{ 'x' * 10**9 }}",
    'a loop writing long strings': "{% for i in range(100000) %}{{ 'x' * 30000000 }}{% endfor %}",
    'a loop over a long list made by split': "{% for c in ('a,' * 5000000).split(',') %}{{ c }}{% endfor %}",
    'doubling': "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
  };
  for (const [name, template] of Object.entries(runaway)) {
    it(`${name}: ERR_INVALID_ARGUMENT within a second of the JS thread's time`, () => {
      const [cpu0, wall0] = [process.cpuUsage(), performance.now()];
      let caught: unknown;
      try {
        renderChatTemplate(template, [{ role: 'user', content: 'hi' }]);
      } catch (err) {
        caught = err;
      }
      const cpu = process.cpuUsage(cpu0);
      const [cpuMs, wallMs] = [(cpu.user + cpu.system) / 1000, performance.now() - wall0];
      expect(caught).toBeInstanceOf(MoerunError);
      expect((caught as MoerunError).code).toBe('ERR_INVALID_ARGUMENT');
      expect((caught as MoerunError).message).toMatch(/^chat template: stopped/);
      // The budget is 300 ms of the JS thread's CPU time (the process's, GC included, bounds it);
      // wall time only bounds a hang (a loaded 2-core CI machine may share the core).
      expect(cpuMs).toBeLessThan(1000);
      expect(wallMs).toBeLessThan(5000);
    });
  }

  it("a long ordinary conversation stays inside the limits (they grow with the conversation): Qwen3's template, 2,000 messages", () => {
    const template = readFileSync(path.join(__dirname, 'fixtures/templates/Qwen-Qwen3-0.6B.jinja'), 'utf8');
    const messages = Array.from({ length: 2000 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `message ${i} `.repeat(50) }));
    expect(renderChatTemplate(template, messages).length).toBeGreaterThan(2000 * 600);
  });

  it('the limits are options: a tight step limit stops a small loop', () => {
    expect(() => renderChatTemplate('{% for i in range(1000) %}{{ i }}{% endfor %}', [{ role: 'user', content: 'hi' }], { limits: { steps: 100 } }))
      .toThrow(/chat template: stopped: the template ran over 100 steps/);
  });
});
