// "One binary, every x86-64 CPU": finds instructions beyond x86-64-v2 (AVX, AVX2, AVX-512, FMA,
// F16C, BMI1/2, LZCNT/TZCNT, MOVBE) in functions of a linked binary that do not come from the per-ISA
// kernel files, by disassembly (binutils' objdump and nm).
//   npx tsx scripts/isa-check.ts BINARY --isa 'OBJ...' --generic 'OBJ...'
// A function may hold such instructions only if its symbol is defined in a per-ISA object and in no
// generic object: an inline function compiled into both (one COMDAT copy kept by the linker) would
// otherwise run AVX code from the generic path if the linker kept the ISA copy.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';

export interface IsaViolation {
  /** The symbol as in the binary (mangled). */
  symbol: string;
  /** Why it is not allowed: 'not from a per-ISA file' or 'also defined in generic code'. */
  reason: string;
  /** The first offending instruction, as objdump prints it. */
  instruction: string;
  count: number;
}

// Asynchronous: a test worker's event loop stays free while objdump runs (seconds).
const exec = promisify(execFile);

// Mnemonics starting with v that are not VEX/EVEX vector ops (virtualisation, segment checks).
const NOT_VECTOR = new Set(['verr', 'verw', 'vmcall', 'vmlaunch', 'vmresume', 'vmxoff', 'vmxon', 'vmread', 'vmwrite', 'vmptrld', 'vmptrst', 'vmclear', 'vmfunc']);
// Scalar instructions newer than x86-64-v2 (BMI1, BMI2, LZCNT, MOVBE: x86-64-v3). Not TZCNT: its
// encoding is REP BSF, which a CPU without BMI1 runs as BSF, and GCC emits it for __builtin_ctz /
// std::countr_zero at -mtune=generic for that reason (with its own zero check where zero is
// defined). LZCNT has no such fallback: as BSR it gives another answer, so it stays listed.
const BEYOND_V2_SCALAR = new Set(['andn', 'bextr', 'blsi', 'blsmsk', 'blsr', 'bzhi', 'mulx', 'pdep', 'pext', 'rorx', 'sarx', 'shlx', 'shrx', 'lzcnt', 'movbe']);

/** True for an objdump (AT&T syntax) instruction that needs more than x86-64-v2. */
export function beyondX86_64v2(mnemonic: string, operands: string): boolean {
  const m = mnemonic.replace(/^\{[a-z0-9]+\}\s*/, '');
  if (/%[yz]mm\d|%k[0-7]\b/.test(operands)) return true;
  if (m.startsWith('v') && !NOT_VECTOR.has(m)) return true;
  if (/^k(and|andn|or|xor|xnor|not|mov|shift|test|ortest|add|unpck)/.test(m)) return true;
  if (/%tmm\d/.test(operands) || /^(ldtilecfg|sttilecfg|tilerelease|tilezero|tileloadd|tilestored|tdp)/.test(m)) return true; // AMX
  return BEYOND_V2_SCALAR.has(m.replace(/[lqw]$/, '')) || BEYOND_V2_SCALAR.has(m);
}

/** Names of the functions (text symbols, local or global) an object file defines. */
export async function definedFunctions(objects: string[]): Promise<Set<string>> {
  const names = new Set<string>();
  if (objects.length === 0) return names;
  const { stdout: out } = await exec('nm', ['--defined-only', ...objects], { encoding: 'utf8', maxBuffer: 256 << 20 });
  for (const line of out.split('\n')) {
    const m = /^[0-9a-f]+ ([tTwWi]) (\S+)$/.exec(line);
    if (m) names.add(m[2]!);
  }
  return names;
}

export interface IsaReport {
  violations: IsaViolation[];
  /** Per-ISA functions whose beyond-v2 instructions were allowed (0 means the check saw no kernel). */
  kernelFunctions: number;
}

export async function checkIsa(binary: string, isaObjects: string[], genericObjects: string[]): Promise<IsaReport> {
  const isa = await definedFunctions(isaObjects);
  const generic = await definedFunctions(genericObjects);
  const { stdout: out } = await exec('objdump', ['-d', '--no-show-raw-insn', '-w', binary], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const violations = new Map<string, IsaViolation>();
  const kernels = new Set<string>();
  let symbol = '';
  for (const line of out.split('\n')) {
    const head = /^[0-9a-f]+ <(.+)>:$/.exec(line);
    if (head) {
      symbol = head[1]!;
      continue;
    }
    // "  1234:\tvmovups (%rdi),%ymm0"
    const insn = /^\s+[0-9a-f]+:\t(\S+)\s*(.*)$/.exec(line);
    if (!insn || !beyondX86_64v2(insn[1]!, insn[2]!)) continue;
    const allowed = isa.has(symbol) && !generic.has(symbol);
    if (allowed) {
      kernels.add(symbol);
      continue;
    }
    const v = violations.get(symbol);
    if (v) v.count++;
    else violations.set(symbol, { symbol, reason: isa.has(symbol) ? 'also defined in generic code' : 'not from a per-ISA file', instruction: `${insn[1]} ${insn[2]}`.trim(), count: 1 });
  }
  return { violations: [...violations.values()], kernelFunctions: kernels.size };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [binary, ...rest] = process.argv.slice(2);
  const list = (flag: string) => {
    const i = rest.indexOf(flag);
    return i < 0 ? [] : rest[i + 1]!.split(/\s+/).filter(Boolean);
  };
  if (!binary) {
    process.stderr.write("usage: isa-check.ts BINARY --isa 'OBJ...' --generic 'OBJ...'\n");
    process.exit(2);
  }
  const { violations, kernelFunctions } = await checkIsa(binary, list('--isa'), list('--generic'));
  for (const v of violations) process.stdout.write(`${v.symbol}: ${v.count} instructions beyond x86-64-v2 (${v.reason}), e.g. ${v.instruction}\n`);
  process.stdout.write(violations.length ? `${violations.length} functions fail\n` : `ok: no instruction beyond x86-64-v2 outside the per-ISA kernels (${kernelFunctions} kernel functions use them)\n`);
  process.exit(violations.length ? 1 : 0);
}
