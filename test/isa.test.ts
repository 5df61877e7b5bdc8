// One binary, every x86-64 CPU: the built addon holds no AVX/AVX2/AVX-512 (nor other beyond-x86-64-v2)
// instruction outside the per-ISA kernel files (native/cpu/avx2, native/cpu/avx512), checked by
// disassembly; and the check itself catches a planted AVX loop in generic code.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { beyondX86_64v2, checkIsa } from '../scripts/isa-check.js';
import { hasData, hasTool, run } from './helpers/run.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const release = path.join(root, 'build/Release');
const canDisassemble =
  hasTool('objdump', 'isa.test') && hasTool('nm', 'isa.test') && hasTool('g++', 'isa.test') &&
  hasData(process.arch === 'x64', 'an x86-64 host (the check reads x86-64 code)', 'isa.test');
const hasAddon = hasData(existsSync(path.join(release, 'moerun.node')), 'the built addon (build/Release/moerun.node)', 'isa.test');

function objectsUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.o')).map((f) => path.join(dir, f));
}

describe('x86-64 instruction classes', () => {
  it('flags VEX/EVEX vector ops, ymm/zmm/k registers and BMI, not SSE', () => {
    expect(beyondX86_64v2('vmovups', '(%rdi),%ymm0')).toBe(true);
    expect(beyondX86_64v2('vpxor', '%xmm1,%xmm1,%xmm1')).toBe(true);
    expect(beyondX86_64v2('kmovw', '%k1,%eax')).toBe(true);
    expect(beyondX86_64v2('vaddps', '%zmm1,%zmm2,%zmm3{%k1}')).toBe(true);
    expect(beyondX86_64v2('shlx', '%rax,%rbx,%rcx')).toBe(true);
    expect(beyondX86_64v2('lzcnt', '%rax,%rbx')).toBe(true);
    expect(beyondX86_64v2('tdpbsud', '%tmm2,%tmm0,%tmm4')).toBe(true);
    expect(beyondX86_64v2('tilerelease', '')).toBe(true);
    expect(beyondX86_64v2('ldtilecfg', '(%rdi)')).toBe(true);
    expect(beyondX86_64v2('tzcnt', '%rax,%rbx')).toBe(false); // REP BSF: runs as BSF before BMI1
    expect(beyondX86_64v2('movups', '(%rdi),%xmm0')).toBe(false);
    expect(beyondX86_64v2('pshufb', '%xmm1,%xmm0')).toBe(false);
    expect(beyondX86_64v2('popcnt', '%rax,%rbx')).toBe(false);
    expect(beyondX86_64v2('mov', '%rax,%rbx')).toBe(false);
  });
});

describe.skipIf(!canDisassemble)('the addon at x86-64-v2 outside the per-ISA kernels', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'moerun-isa-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it.skipIf(!hasAddon)('build/Release/moerun.node: every AVX instruction is in a function of native/cpu/avx2 or avx512', async () => {
    const isa = [path.join(release, 'moerun_avx2.a'), path.join(release, 'moerun_avx512.a')];
    const generic = objectsUnder(path.join(release, 'obj.target/moerun'));
    expect(generic.length).toBeGreaterThan(20);
    const report = await checkIsa(path.join(release, 'moerun.node'), isa, generic);
    expect(report.violations).toEqual([]);
    // The kernels were seen: the check is not vacuous.
    expect(report.kernelFunctions).toBeGreaterThan(20);
  }, 120_000);

  it('catches a planted AVX2 loop in generic code, and an ISA inline function kept for the generic path', async () => {
    // kernel.cpp is the per-ISA file; generic.cpp holds the plant when compiled with -mavx2.
    const kernel = path.join(scratch, 'kernel.cpp');
    const generic = path.join(scratch, 'generic.cpp');
    const shared = 'inline float shared_sum(const float* a, int n) { float s = 0; for (int i = 0; i < n; i++) s += a[i] * a[i]; return s; }\n';
    writeFileSync(kernel, `${shared}extern "C" float kernel_sum(float* a, int n) { for (int i = 0; i < n; i++) a[i] = a[i] * 3.0f + 1.0f; return shared_sum(a, n); }\n`);
    writeFileSync(generic, `${shared}extern "C" float generic_sum(float* a, int n) { for (int i = 0; i < n; i++) a[i] *= 2.5f; return shared_sum(a, n); }\n`);
    const build = async (name: string, genericFlags: string[], order: 'kernel-first' | 'generic-first') => {
      const k = path.join(scratch, `${name}-kernel.o`);
      const g = path.join(scratch, `${name}-generic.o`);
      const so = path.join(scratch, `${name}.so`);
      const common = ['-O3', '-ffast-math', '-fPIC', '-fno-inline', '-c'];
      for (const [src, obj, flags] of [[kernel, k, ['-mavx2', '-mfma']], [generic, g, genericFlags]] as const) {
        const r = await run('g++', [...common, ...flags, src, '-o', obj]);
        expect(r.status, r.output).toBe(0);
      }
      const r = await run('g++', ['-shared', '-o', so, ...(order === 'kernel-first' ? [k, g] : [g, k])]);
      expect(r.status, r.output).toBe(0);
      return checkIsa(so, [k], [g]);
    };
    const clean = await build('clean', ['-march=x86-64-v2'], 'generic-first');
    expect(clean.violations).toEqual([]);
    expect(clean.kernelFunctions).toBeGreaterThan(0);

    const planted = await build('planted', ['-march=x86-64-v2', '-mavx2'], 'generic-first');
    expect(planted.violations.map((v) => v.symbol)).toContain('generic_sum');
    expect(planted.violations.find((v) => v.symbol === 'generic_sum')!.reason).toBe('not from a per-ISA file');

    // The linker keeps the first COMDAT copy of shared_sum: the kernel's AVX one when its object comes first.
    const comdat = await build('comdat', ['-march=x86-64-v2'], 'kernel-first');
    const shared_ = comdat.violations.find((v) => v.symbol.includes('shared_sum'));
    expect(shared_?.reason).toBe('also defined in generic code');
  }, 60_000);
});

describe.skipIf(!hasAddon)('moerun info', () => {
  it('prints the binary and the kernel path in use among those this CPU supports (MOERUN_CPU overrides)', async () => {
    const cli = (env: NodeJS.ProcessEnv) => run(process.execPath, ['--import', 'tsx', 'lib/cli.ts', 'info'], { cwd: root, env: { ...process.env, ...env } });
    const auto = await cli({});
    expect(auto.status, auto.output).toBe(0);
    const m = /^cpu kernels: (\w+) \(this CPU supports ([\w, ]+)\)$/m.exec(auto.stdout);
    expect(m, auto.stdout).not.toBeNull();
    const supported = m![2]!.split(', ');
    expect(supported).toContain('scalar');
    expect(supported).toContain(m![1]);
    expect(auto.stdout).toContain(`.node (${process.platform}-${process.arch})\n`);
    const scalar = await cli({ MOERUN_CPU: 'scalar' });
    expect(scalar.stdout).toMatch(/^cpu kernels: scalar /m);
    const bogus = await cli({ MOERUN_CPU: 'bogus' });
    expect(bogus.stdout).toMatch(/^cpu kernels: none: .*bogus/m);
  }, 60_000);
});
