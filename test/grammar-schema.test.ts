// The done-when test of constrained JSON: 100 varied schemas from a seeded generator, and the
// bundled model sampling at temperature 1 (no top-k/top-p/min-p) under each one. Every output
// must parse, validate with ajv (draft 2020-12, ajv-formats), and end where the schema's JSON
// ends (stopReason 'eog': end of generation allowed only once the grammar is complete, and
// generation stopped when nothing more may follow). Then compiler unit checks: texts in and out
// of a schema's grammar agree with ajv, and unsupported keywords are refused.
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { compileJsonSchema, Grammar, loadModel, MoerunError, type JsonSchema } from '../lib/index.js';
import { rng } from './helpers/random.js';

const bundledModel = fileURLToPath(new URL('../models/stories260K.gguf', import.meta.url));

function makeAjv() {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  return ajv;
}

type Schema = Record<string, unknown>;

/** A seeded generator of varied, bounded schemas (outputs must fit the model's 512-token context). */
function schemaGenerator(seed: number) {
  const r = rng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const words = ['red', 'blue', 'cat', 'dog', 'Lily', 'Tom', 'sun', 'tree', 'a b', 'x"y', 'é'];
  const patterns = ['^[a-z]{2,6}$', '^\\d{3}-\\d{2}$', '^(yes|no|maybe)$', '^[A-Z][a-z]{1,5}( [A-Z][a-z]{1,5})?$', '^id_[0-9a-f]{4}$', '^[^"\\\\]{1,4}!$', '^a.c$'];
  const formats = ['date', 'time', 'date-time', 'uuid', 'email'];

  const leaf = (): Schema => {
    switch (int(0, 11)) {
      case 0: {
        const min = int(0, 3);
        return { type: 'string', maxLength: min + int(0, 8), ...(r() < 0.5 ? { minLength: min } : {}) };
      }
      case 1: return { type: 'string', pattern: pick(patterns) };
      case 2: return { type: 'string', format: pick(formats) };
      case 3: return { enum: Array.from({ length: int(1, 4) }, () => pick<unknown>([...words, 1, 2.5, null, true])) };
      case 4: return { const: pick<unknown>([...words, 42, { k: [1, 'v'] }]) };
      case 5: {
        const lo = int(-50, 50);
        return { type: 'integer', ...(r() < 0.8 ? { minimum: lo } : {}), ...(r() < 0.8 ? { maximum: lo + int(0, 300) } : {}) };
      }
      case 6: {
        const lo = int(-20, 20) + pick([0, 0.5, 0.25]);
        return { type: 'number', ...(r() < 0.5 ? { exclusiveMinimum: lo } : { minimum: lo }), ...(r() < 0.7 ? { maximum: lo + int(1, 100) } : {}) };
      }
      case 7: return { type: 'integer', ...(r() < 0.5 ? { exclusiveMaximum: int(-5, 5) } : { exclusiveMinimum: int(-5, 5) }) };
      case 8: return { type: 'boolean' };
      case 9: return { type: 'null' };
      case 10: return { type: ['string', 'null'], maxLength: int(1, 6) };
      default: return { type: 'number', minimum: 0, maximum: 1 };
    }
  };

  const node = (depth: number): Schema => {
    const kind = depth >= 2 ? 0 : int(0, 9);
    if (kind <= 4) return leaf();
    if (kind <= 6) return object(depth + 1);
    if (kind === 7) {
      const min = int(0, 2);
      return { type: 'array', items: node(depth + 1), minItems: min, maxItems: min + int(0, 2) };
    }
    if (kind === 8) return { type: 'array', prefixItems: [leaf(), leaf()], items: r() < 0.5 ? false : leaf(), minItems: int(0, 2), maxItems: 3 };
    return { [pick(['anyOf', 'oneOf'])]: [{ type: 'integer', minimum: 0, maximum: 9 }, { type: 'string', maxLength: 4 }, object(depth + 1)] };
  };

  const object = (depth: number): Schema => {
    const n = int(1, depth === 0 ? 5 : 3);
    const properties: Record<string, Schema> = {};
    for (let i = 0; i < n; i++) properties[pick(['name', 'age', 'kind', 'id', 'tags', 'when', 'score', 'x', 'nested', 'ok']) + (i > 0 && r() < 0.3 ? i : '')] = node(depth);
    const names = Object.keys(properties);
    const required = names.filter(() => r() < 0.6);
    const extra = r() < 0.5 ? { additionalProperties: false } : {};
    return { type: 'object', properties, ...(required.length ? { required } : {}), ...extra };
  };

  return (): Schema => {
    // Some schemas go through $defs / $ref, one of them recursive (bounded by maxItems and depth).
    const root = object(0);
    if (r() < 0.2) {
      return {
        $defs: { item: leaf(), tree: { type: 'object', properties: { v: { type: 'integer', minimum: 0, maximum: 9 }, kids: { type: 'array', items: { $ref: '#/$defs/leafy' }, maxItems: 2 } }, required: ['v'] }, leafy: { type: 'object', properties: { w: { $ref: '#/$defs/item' } }, required: ['w'], additionalProperties: false } },
        type: 'object',
        properties: { ...(root.properties as object), t: { $ref: '#/$defs/tree' } },
        required: ['t'],
      };
    }
    return root;
  };
}

describe('JSON Schema output on the bundled model', () => {
  it('100 seeded schemas: every output parses, validates and ends at the schema end', async () => {
    await using model = await loadModel(bundledModel);
    const session = model.createSession({ contextSize: 512 });
    const ajv = makeAjv();
    const next = schemaGenerator(16);
    const failures: string[] = [];
    let tokens = 0;
    const shapes = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const schema = next();
      session.reset();
      const stream = session.generate('Once upon a time', {
        jsonSchema: schema, temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1000 + i, maxTokens: 500,
      });
      const text = await stream.text();
      tokens += stream.stats!.generatedTokens;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        failures.push(`#${i}: not JSON: ${text}`);
        continue;
      }
      if (!ajv.validate(schema, value)) failures.push(`#${i}: ${JSON.stringify(schema)}\n  ${text}\n  ${ajv.errorsText()}`);
      if (stream.stats!.stopReason !== 'eog') failures.push(`#${i}: stopped by ${stream.stats!.stopReason}: ${text}`);
      shapes.add(typeof value === 'object' && value ? Object.keys(value).sort().join(',') : typeof value);
    }
    expect(failures).toEqual([]);
    expect(shapes.size).toBeGreaterThan(30);  // the schemas (and outputs) really vary
    expect(tokens).toBeGreaterThan(100 * 10);
  }, 600_000); // ~10 s of CPU; a loaded 2-core machine stretched it past 120 s
});

describe('compileJsonSchema', () => {
  const cases: { schema: JsonSchema; valid: string[]; invalid: string[] }[] = [
    { schema: { type: 'integer', minimum: -12, maximum: 305 }, valid: ['-12', '0', '9', '10', '99', '100', '305', '-1'], invalid: ['-13', '306', '1000', '01', '-0', '1.5'] },
    { schema: { type: 'integer', exclusiveMinimum: 7 }, valid: ['8', '10', '123456'], invalid: ['7', '-1', '0'] },
    { schema: { type: 'number', minimum: -1.5, exclusiveMaximum: 2 }, valid: ['-1', '0', '1', '0.5', '1.99', '-0.5'], invalid: ['2', '2.5', '-2', '-1.7'] },
    { schema: { type: 'string', minLength: 2, maxLength: 3 }, valid: ['"ab"', '"abc"', '"\\n\\""', '"é\\u00e9"'], invalid: ['"a"', '"abcd"', '"\\ud800x"'] },
    { schema: { type: 'string', format: 'date' }, valid: ['"2024-01-31"', '"1999-02-28"', '"2000-04-30"'], invalid: ['"2024-02-30"', '"2024-04-31"', '"2024-13-01"', '"24-01-01"'] },
    { schema: { type: 'string', format: 'date-time' }, valid: ['"2024-01-31T23:59:59Z"', '"2024-01-31T00:00:00.123+05:30"'], invalid: ['"2024-01-31T24:00:00Z"', '"2024-01-31 10:00:00Z"', '"2024-01-31T10:00:00"'] },
    { schema: { type: 'string', format: 'uuid' }, valid: ['"123e4567-e89b-12d3-a456-426614174000"'], invalid: ['"123e4567e89b12d3a456426614174000"'] },
    { schema: { type: 'string', pattern: '^\\d{3}(-[a-c]+)?$' }, valid: ['"123"', '"123-abca"'], invalid: ['"12"', '"123-"', '"123-d"'] },
    { schema: { type: 'string', pattern: 'ab' }, valid: ['"ab"', '"xxabyy"'], invalid: ['"a"', '"ba"'] },
    { schema: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'boolean' } }, required: ['b'] }, valid: ['{"b":true}', '{"a": 1, "b": false}', '{"a":1,"b":true}'], invalid: ['{}', '{"a":1}', '{"b":true,"a":1}', '{"b":true,}', '{"b":true,"c":1}'] },
    { schema: { type: 'object', properties: { a: { type: 'integer' } }, additionalProperties: { type: 'string', maxLength: 2 } }, valid: ['{"a":1,"b":"x"}', '{"zz":"", "aa":"y"}', '{"ab":"c"}', '{}'], invalid: ['{"a":"x"}', '{"b":1}', '{"b":"xyz"}'] },
    { schema: { type: 'array', items: { enum: ['x', 2] }, minItems: 1, maxItems: 3 }, valid: ['["x"]', '[2, "x", 2]'], invalid: ['[]', '["x","x","x","x"]', '["y"]'] },
    { schema: { type: 'array', prefixItems: [{ type: 'integer' }, { type: 'string', maxLength: 1 }], items: false }, valid: ['[]', '[1]', '[1, "a"]'], invalid: ['[1, "a", 2]', '["a"]'] },
    { schema: { $defs: { n: { anyOf: [{ type: 'null' }, { type: 'array', items: { $ref: '#/$defs/n' }, maxItems: 2 }] } }, $ref: '#/$defs/n' }, valid: ['null', '[]', '[null,[[],null]]'], invalid: ['[1]', '[null,null,null]'] },
    { schema: { const: { k: ['v', 1] } }, valid: ['{"k":["v",1]}'], invalid: ['{"k": ["v", 1]}', '{"k":["v"]}'] },
    { schema: true, valid: ['1', '"s"', '{"a":[true,null]}', '[]'], invalid: ['', 'nul', '{'] },
  ];

  it('accepts texts that validate and refuses texts that do not (checked by ajv too)', () => {
    const ajv = makeAjv();
    for (const { schema, valid, invalid } of cases) {
      const g = Grammar.fromJsonSchema(schema);
      for (const t of valid) {
        expect(ajv.validate(schema, JSON.parse(t)), `ajv: ${t} for ${JSON.stringify(schema)}`).toBe(true);
        expect(g.matches(t), `${t} for ${JSON.stringify(schema)}\n${g.source}`).toBe(true);
      }
      for (const t of invalid) expect(g.matches(t), `${t} for ${JSON.stringify(schema)}`).toBe(false);
    }
  });

  it('refuses what it cannot enforce, and malformed schemas, with MoerunErrors', () => {
    const refused: [unknown, RegExp][] = [
      [{ type: 'array', uniqueItems: true }, /'uniqueItems' is not supported/],
      [{ type: 'string', format: 'hostname' }, /format "hostname" is not supported/],
      [{ type: 'string', pattern: '(?=a)b' }, /lookaround/],
      [{ type: 'string', pattern: '(a)\\1' }, /backreference/],
      [{ type: 'strin' }, /unknown type "strin"/],
      [{ $ref: 'http://example.com/s.json' }, /only local references/],
      [{ $ref: '#/$defs/missing' }, /points at nothing/],
      [{ type: 'string', pattern: '[' }, /not a valid regular expression/],
      [{ type: 'integer', minimum: 5, maximum: 4 }, /no integer lies within the bounds/],
      [false, /accepts nothing/],
      [null, /expected a schema object/],
    ];
    for (const [schema, message] of refused) {
      let err: unknown;
      try {
        compileJsonSchema(schema as JsonSchema);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(schema)).toBeInstanceOf(MoerunError);
      expect((err as Error).message).toMatch(message);
    }
  });
});
