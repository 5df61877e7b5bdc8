// CPU feature detection and kernel selection. The ISA is picked once, at first use, by cpuid on
// x86-64 and by the OS's feature bits on arm64 (getauxval on Linux, sysctl on macOS); overridable
// with MOERUN_CPU=scalar|avx2|avx512|amx|neon|dotprod|i8mm. Kernels live in per-ISA files compiled
// with their own -m/-march flags, so one binary runs on every x86-64 and every ARMv8-A CPU.
#pragma once

#include <string>

#include "kernels.h"
#include "vector_ops.h"

namespace moerun {

// amx: AVX-512 with VNNI plus the AMX tile unit (AMX-TILE, AMX-INT8: Sapphire Rapids and later),
// which prompt batches use; the OS must grant the tile state (cpu_detect asks Linux for it).
// neon: ARMv8-A Advanced SIMD (every arm64 CPU); dotprod adds SDOT (ARMv8.2 DotProd), i8mm adds
// SMMLA (ARMv8.6 I8MM). Each path's table starts from the one before it (scalar < avx2 < avx512
// < amx, scalar < neon < dotprod < i8mm).
enum class cpu_path { scalar, avx2, avx512, amx, neon, dotprod, i8mm };
inline constexpr cpu_path k_cpu_paths[] = {cpu_path::scalar, cpu_path::avx2, cpu_path::avx512, cpu_path::amx,
                                           cpu_path::neon, cpu_path::dotprod, cpu_path::i8mm};

struct cpu_features {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
    bool avx512vnni = false, avx512bf16 = false;
    // The AMX bits are set only where the OS also granted this process the tile state (Linux:
    // arch_prctl(ARCH_REQ_XCOMP_PERM)); a refusal leaves them false, and the avx512 path is used.
    bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
    bool neon = false, dotprod = false, i8mm = false;
    // AMD (or Hygon, the same cores): its hardware prefetchers want a nearer software prefetch
    // ahead of a decode tile than Intel's (cpu/tile_prefetch.h).
    bool amd = false;
};

const cpu_features& cpu_detect();
bool cpu_path_supported(cpu_path path);
const char* cpu_path_name(cpu_path path);

// The path in use. Throws moerun::error if MOERUN_CPU names an unknown path or one this CPU lacks.
cpu_path cpu_active_path();

// The table a given path would install (reference rows overridden by that path's registration
// functions), independent of the active path; for tests that compare paths. The path must be
// supported by this CPU (cpu_path_supported); unknown ids give a row with name == nullptr.
const cpu_kernels& cpu_kernels_for_path(cpu_path path, tensor_type type);

// The row operations a given path would install (cpu/vector_ops.h), likewise for tests.
vector_ops vector_ops_for_path(cpu_path path);

// Per-ISA registration: each overrides the table rows it has faster kernels for. Defined in
// cpu/avx2/ and cpu/avx512/ (AMX too: its kernels share the AVX-512 files' packing; empty on
// non-x86 builds) and cpu/neon/register.cpp (empty on non-arm64 builds).
void cpu_register_avx2(cpu_kernels* table);
void cpu_register_avx512(cpu_kernels* table);
void cpu_register_amx(cpu_kernels* table);
void cpu_register_neon(cpu_kernels* table);
void cpu_register_neon_dotprod(cpu_kernels* table);
void cpu_register_neon_i8mm(cpu_kernels* table);

}  // namespace moerun
