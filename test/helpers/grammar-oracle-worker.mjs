// Child process for test/grammar.test.ts: llama.cpp's grammar parser and matcher (through
// node-llama-cpp's AddonGrammar.isTextCompatible: parse, feed every code point, accept iff a stack
// is empty at the end) on a list of grammars and strings, so a llama.cpp abort cannot take the
// test run down.
//
// argv[2]: path of a JSON request [{ grammar, root, strings: string[] }]. Prints one line
// `ORACLE-RESULT {json}` with [{ parsed: boolean, accepted: boolean[] }] (accepted is empty when
// the grammar does not parse).
import { readFileSync } from 'node:fs';
import { getLlama } from 'node-llama-cpp';

const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const results = cases.map(({ grammar, root, strings }) => {
  let g;
  try {
    g = new llama._bindings.AddonGrammar(grammar, { addonExports: llama._bindings, rootRuleName: root });
    // The constructor keeps the text; parsing happens on use: an empty probe tells parse failures apart.
    g.isTextCompatible('');
  } catch {
    return { parsed: false, accepted: [] };
  }
  return { parsed: true, accepted: strings.map((s) => g.isTextCompatible(s)) };
});
process.stdout.write(`ORACLE-RESULT ${JSON.stringify(results)}\n`);
