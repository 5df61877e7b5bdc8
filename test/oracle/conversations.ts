/**
 * Conversations rendered through every template of llama.cpp's `models/templates/` by both moerun's
 * Jinja engine and llama.cpp's (test/templates.test.ts). Each is the template context llama.cpp's
 * `common_chat_template_direct_apply` builds: messages, bos/eos, enable_thinking, tools when there
 * are any, the date variables, and `add_generation_prompt` only when true.
 */

/** A fixed render time (2026-03-14 15:09:26 UTC), so `strftime_now` and the date variables agree. */
export const renderTime = 1773500966;

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city.',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', description: 'City name, e.g. "Zürich"' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      },
      required: ['city'],
    },
  },
};

const searchTool = {
  type: 'function',
  function: {
    name: 'search',
    description: 'Searches the web.',
    parameters: { type: 'object', properties: { query: { type: 'string' }, limit: { type: 'integer' } }, required: ['query'] },
  },
};

const toolCallTurns = (argumentsAs: 'object' | 'string') => {
  const args = { city: 'Zürich', unit: 'celsius' };
  return [
    { role: 'system', content: 'You are a helpful assistant with tools.' },
    { role: 'user', content: 'What is the weather in Zürich?' },
    {
      role: 'assistant',
      content: '',
      tool_calls: [{ id: 'call_0001', type: 'function', function: { name: 'get_weather', arguments: argumentsAs === 'object' ? args : JSON.stringify(args) } }],
    },
    { role: 'tool', tool_call_id: 'call_0001', name: 'get_weather', content: '{"temperature": 21, "sky": "clear"}' },
    { role: 'assistant', content: 'It is 21 °C and clear in Zürich.' },
    { role: 'user', content: 'And tomorrow?' },
  ];
};

const common = { bos_token: '<s>', eos_token: '</s>', enable_thinking: true, datetime: 'Mar 14 2026', date_string: '14 Mar 2026' };

/** name -> template context. */
export const conversations: Record<string, Record<string, unknown>> = {
  single: { ...common, messages: [{ role: 'user', content: 'Hello!' }], add_generation_prompt: true },
  system: {
    ...common,
    messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hi.' }],
    add_generation_prompt: true,
  },
  multiTurn: {
    ...common,
    messages: [
      { role: 'system', content: 'You are a poet.' },
      { role: 'user', content: 'Write a line about the sea.' },
      { role: 'assistant', content: 'The sea keeps every secret it is told.' },
      { role: 'user', content: 'Another, about rivers.' },
      { role: 'assistant', content: 'Rivers forget their source and never mind.' },
      { role: 'user', content: 'Now one about lakes.' },
    ],
    add_generation_prompt: true,
  },
  noGenerationPrompt: {
    ...common,
    messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello, how can I help?' }],
  },
  nonAscii: {
    ...common,
    messages: [
      { role: 'system', content: 'Réponds en français. 回答要简洁。' },
      { role: 'user', content: 'Grüße! 你好 👋 — “quotes”, \'single\', "double", back\\slash, tab\tand\nnewline; emoji 🇨🇭 ½ ≠ ∞' },
      { role: 'assistant', content: 'Привет! こんにちは 🌍' },
      { role: 'user', content: '  leading spaces and trailing newline\n' },
    ],
    add_generation_prompt: true,
  },
  tools: {
    ...common,
    messages: [{ role: 'system', content: 'You can call tools.' }, { role: 'user', content: 'Weather in Paris, and search for "crêpes"?' }],
    tools: [weatherTool, searchTool],
    add_generation_prompt: true,
  },
  toolCalls: { ...common, messages: toolCallTurns('object'), tools: [weatherTool, searchTool], add_generation_prompt: true },
  toolCallsStringArguments: { ...common, messages: toolCallTurns('string'), tools: [weatherTool], add_generation_prompt: true },
  toolsNoSystem: {
    ...common,
    messages: [{ role: 'user', content: 'Search the web for moerun.' }],
    tools: [searchTool],
    add_generation_prompt: true,
  },
  reasoningHistory: {
    ...common,
    enable_thinking: false,
    messages: [
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: '4', reasoning_content: 'Two plus two is four.' },
      { role: 'user', content: 'And 3+3?' },
    ],
    add_generation_prompt: true,
  },
};

/**
 * Small templates that pin the engine's corners (printing, numbers, lenient undefined, methods,
 * JSON), each rendered with the `probe` context below by both engines.
 */
export const probeTemplates: Record<string, string> = {
  printing: "{{ true }}|{{ false }}|{{ none }}|{{ undefined_var }}|{{ [1, 'a', [2, 3]] }}|{{ {'k': 1} }}|{{ 1.5 }}|{{ 2.0 }}|{{ 7 / 2 }}|{{ 10 % 3 }}",
  strings: "{{ 'ab' * 3 }}|{{ 'x' ~ 1 ~ true ~ none }}|{{ 'a' + none }}|{{ none + 'b' }}|{{ '  pad  ' | trim }}|{{ '\\n\\nx\\n' .lstrip('\\n') }}|{{ 'a-b-c'.split('-') | join('+') }}|{{ 'Hi {} and {}'.format('A', 2) }}|{{ 'HeLLo' | lower }}{{ 'x' | upper }}|{{ 'hello world' | title }}|{{ 'abc'[1:] }}",
  undefinedLenient: "{% for x in nothing %}never{% endfor %}{{ nothing | length }}|{{ nothing | default('dflt') }}|{{ none | default('for-none') }}|{{ '' | default('kept') }}|{{ '' | default('bool', true) }}|{{ nothing | selectattr('a') | list | length }}|{{ none | selectattr('a') | list | length }}|{{ nothing | trim }}|{{ nothing is defined }}|{{ none is none }}",
  dicts: "{% set d = {1: 'one', 0: 'zero', 'k': 'v'} %}{{ d[1] }}|{% for k, v in d | dictsort %}{{ k }}={{ v }};{% endfor %}|{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}|{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}{{ v }}{% endfor %}|{{ {'a': 1}.get('a') }}{{ {'a': 1}.get('z', 'dz') }}|{{ d | string }}",
  lists: "{% set ns = namespace(l=[]) %}{% set _ = ns.l.append(3) %}{% set _ = ns.l.append(1) %}{{ ns.l }}|{{ ns.l | length }}|{{ [3, 1, 2] | min }}{{ [3, 1, 2] | max }}|{{ [3, 1, 2] | sort | join(',') }}|{{ ([1, 2] + [3]) | join }}|{{ [1, 2, 3] | first }}{{ [1, 2, 3] | last }}|{{ [1, 2, 3][::-1] | join }}|{% set l = [1, 2, 3] %}{{ l.pop(0) }}{{ l | join }}|{{ ['a', 'b'] | string }}|{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}",
  json: "{{ probe | tojson }}|{{ probe | tojson(indent=2) }}|{{ probe.list | tojson(separators=(',', ':')) }}|{{ 'é\"\\\\' | tojson }}|{{ 1.25 | tojson }}|{{ [] | tojson }}{{ {} | tojson }}",
  loops: "{% for m in probe.list %}{{ loop.index }}/{{ loop.length }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %} {% endfor %}|{% for m in probe.list if m > 1 %}{{ m }}{% endfor %}|{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}",
  macros: "{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }}|{% set x %}captured {{ 1 + 1 }}{% endset %}{{ x }}|{% filter upper %}shout{% endfilter %}",
  time: "{{ strftime_now('%Y-%m-%d %H:%M:%S %A %B %d %b %y %j %p %I') }}|{{ date_string }}",
};

export const probeContext = {
  probe: { name: 'Zoë', n: 3, f: 0.5, ok: true, none: null, list: [1, 2, 3], nested: { a: [{ b: 'c' }], s: 'línea\n"q"' } },
  messages: [],
  date_string: '14 Mar 2026',
};
