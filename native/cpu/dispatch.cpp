#include "dispatch.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "../base/error.h"
#include "../quant/reference.h"
#include "tile_prefetch.h"
#include "vector_ops.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace moerun {

namespace {

// Linux (5.16+) gives a process the 8 KiB AMX tile state only on request; without it the first
// tile instruction faults. Asked once, process-wide; false where refused or on other systems
// (and under valgrind, which does not know the request). x86-64 only.
[[maybe_unused]] bool os_grants_amx_tiles() {
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__linux__)
    constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;  // uapi asm/prctl.h, the XTILEDATA state component
    return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
#else
    return false;
#endif
}

}  // namespace

const cpu_features& cpu_detect() {
    static const cpu_features features = [] {
        cpu_features f;
#if defined(__x86_64__) || defined(_M_X64)
        unsigned a, b, c, d;
        if (__get_cpuid(0, &a, &b, &c, &d)) {
            char vendor[13] = {};  // the vendor string is in b, d, c
            std::memcpy(vendor, &b, 4);
            std::memcpy(vendor + 4, &d, 4);
            std::memcpy(vendor + 8, &c, 4);
            f.amd = !std::strcmp(vendor, "AuthenticAMD") || !std::strcmp(vendor, "HygonGenuine");
        }
        if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
        const bool osxsave = c & (1u << 27);
        f.fma = c & (1u << 12);
        f.f16c = c & (1u << 29);
        unsigned long long xcr0 = 0;
        if (osxsave) {
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            xcr0 = (unsigned long long)hi << 32 | lo;
        }
        const bool os_avx = (xcr0 & 0x6) == 0x6;
        const bool os_avx512 = (xcr0 & 0xe6) == 0xe6;
        const bool os_amx = (xcr0 & 0x60000) == 0x60000;
        if (!os_avx) { f.fma = f.f16c = false; return f; }
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
            f.avx2 = b & (1u << 5);
            if (os_avx512) {
                f.avx512f = b & (1u << 16);
                f.avx512dq = b & (1u << 17);
                f.avx512bw = b & (1u << 30);
                f.avx512vl = b & (1u << 31);
                f.avx512vnni = c & (1u << 11);
            }
            if (os_amx) {
                f.amx_bf16 = d & (1u << 22);
                f.amx_tile = d & (1u << 24);
                f.amx_int8 = d & (1u << 25);
            }
        }
        if (os_avx512 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512bf16 = a & (1u << 5);
        if (f.amx_tile && !os_grants_amx_tiles()) f.amx_tile = f.amx_int8 = f.amx_bf16 = false;
#elif defined(__aarch64__)
        f.neon = true;  // Advanced SIMD is part of every ARMv8-A application profile
#if defined(__linux__)
        // Linux's arm64 hwcap bits (uapi asm/hwcap.h): HWCAP_ASIMDDP, HWCAP2_I8MM.
        constexpr unsigned long hwcap_asimddp = 1ul << 20, hwcap2_i8mm = 1ul << 13;
        f.dotprod = getauxval(AT_HWCAP) & hwcap_asimddp;
        f.i8mm = getauxval(AT_HWCAP2) & hwcap2_i8mm;
#elif defined(__APPLE__)
        auto has = [](const char* name) {
            int v = 0;
            size_t size = sizeof(v);
            return sysctlbyname(name, &v, &size, nullptr, 0) == 0 && v != 0;
        };
        f.dotprod = has("hw.optional.arm.FEAT_DotProd");
        f.i8mm = has("hw.optional.arm.FEAT_I8MM");
#endif
#endif
        return f;
    }();
    return features;
}

namespace {
std::atomic<int> prefetch_rows_override{0};
}  // namespace

int decode_prefetch_rows(int tile_rows) {
    const int asked = prefetch_rows_override.load(std::memory_order_relaxed);
    if (asked < 0) return 0;  // benchmarks: no prefetch
    const int rows = asked > 0 ? asked : cpu_detect().amd ? 16 : 2 * tile_rows;
    return std::max(tile_rows, rows / tile_rows * tile_rows);
}

void set_decode_prefetch_rows(int rows) { prefetch_rows_override.store(std::max(-1, rows), std::memory_order_relaxed); }

bool cpu_path_supported(cpu_path path) {
    const cpu_features& f = cpu_detect();
    switch (path) {
        case cpu_path::scalar: return true;
        case cpu_path::avx2: return f.avx2 && f.fma && f.f16c;
        case cpu_path::avx512:
            return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
        case cpu_path::amx: return cpu_path_supported(cpu_path::avx512) && f.avx512vnni && f.amx_tile && f.amx_int8;
        case cpu_path::neon: return f.neon;
        case cpu_path::dotprod: return f.neon && f.dotprod;
        case cpu_path::i8mm: return f.neon && f.dotprod && f.i8mm;
    }
    return false;
}

const char* cpu_path_name(cpu_path path) {
    switch (path) {
        case cpu_path::scalar: return "scalar";
        case cpu_path::avx2: return "avx2";
        case cpu_path::avx512: return "avx512";
        case cpu_path::amx: return "amx";
        case cpu_path::neon: return "neon";
        case cpu_path::dotprod: return "dotprod";
        case cpu_path::i8mm: return "i8mm";
    }
    return "?";
}

namespace {

// The reference multi-row dot: a loop over the reference vec_dot, so it equals it bit for bit.
template <vec_dot_fn dot>
void vec_dot_n_loop(int64_t n, float* s, int64_t s_stride, const void* x, const void* y, size_t y_stride, int64_t ny) {
    for (int64_t j = 0; j < ny; ++j) dot(n, s + j * s_stride, x, static_cast<const uint8_t*>(y) + size_t(j) * y_stride);
}

// The scalar path's row for a type: the reference code, with its multi-row dot as a loop.
cpu_kernels reference_row(tensor_type type) {
    cpu_kernels k;
    static_cast<type_traits&>(k) = type_traits_reference(type);
    using T = tensor_type;
    switch (type) {
        case T::F32: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_f32>; break;
        case T::F16: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_f16>; break;
        case T::BF16: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_bf16>; break;
        case T::Q4_0: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_q4_0>; break;
        case T::Q4_1: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_q4_1>; break;
        case T::Q5_0: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_q5_0>; break;
        case T::Q5_1: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_q5_1>; break;
        case T::Q8_0: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_q8_0>; break;
        case T::Q2_K: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_q2_k>; break;
        case T::Q3_K: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_q3_k>; break;
        case T::Q4_K: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_q4_k>; break;
        case T::Q5_K: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_q5_k>; break;
        case T::Q6_K: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_q6_k>; break;
        case T::IQ4_NL: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_iq4_nl>; break;
        case T::IQ4_XS: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_iq4_xs>; break;
        case T::IQ2_XXS: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_iq2_xxs>; break;
        case T::IQ2_XS: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_iq2_xs>; break;
        case T::IQ2_S: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_iq2_s>; break;
        case T::IQ3_XXS: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_iq3_xxs>; break;
        case T::IQ3_S: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_iq3_s>; break;
        case T::IQ1_S: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_iq1_s>; break;
        case T::IQ1_M: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_iq1_m>; break;
        case T::TQ1_0: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_tq1_0>; break;
        case T::TQ2_0: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_tq2_0>; break;
        case T::MXFP4: k.vec_dot_n = vec_dot_n_loop<ref::vec_dot_mxfp4>; break;
        default: break;
    }
    return k;
}

struct dispatch_state {
    cpu_path path = cpu_path::scalar;
    std::string error;  // non-empty when MOERUN_CPU asks for something impossible
    std::array<cpu_kernels, k_tensor_type_count> table{};
    vector_ops ops = vector_ops_reference();
};

// Runs one registration function. A row whose vec_dot it replaces without also giving a
// vec_dot_n or an int8_tile loses the old ones (which would not match the new vec_dot bit for
// bit, and may read another activation layout): matmul then loops over the new vec_dot.
void apply_registration(void (*reg)(cpu_kernels*), cpu_kernels* table) {
    std::array<cpu_kernels, k_tensor_type_count> before;
    std::copy(table, table + k_tensor_type_count, before.begin());
    reg(table);
    for (uint32_t i = 0; i < k_tensor_type_count; ++i) {
        if (table[i].vec_dot == before[i].vec_dot) continue;
        if (table[i].vec_dot_n == before[i].vec_dot_n) table[i].vec_dot_n = nullptr;
        if (table[i].int8_tile == before[i].int8_tile) {
            table[i].int8_tile = nullptr;
            table[i].int8_tile_rows = 0;
        }
    }
}

void fill_table(cpu_path path, cpu_kernels* table) {
    for (uint32_t i = 0; i < k_tensor_type_count; ++i) table[i] = reference_row(tensor_type(i));
    const bool avx512 = path == cpu_path::avx512 || path == cpu_path::amx;
    if (path == cpu_path::avx2 || avx512) apply_registration(cpu_register_avx2, table);
    if (avx512) apply_registration(cpu_register_avx512, table);
    if (path == cpu_path::amx) apply_registration(cpu_register_amx, table);
    if (path == cpu_path::neon || path == cpu_path::dotprod || path == cpu_path::i8mm) apply_registration(cpu_register_neon, table);
    if (path == cpu_path::dotprod || path == cpu_path::i8mm) apply_registration(cpu_register_neon_dotprod, table);
    if (path == cpu_path::i8mm) apply_registration(cpu_register_neon_i8mm, table);
}

// The best path this CPU supports (the last supported one of each family's chain).
cpu_path best_path() {
    for (cpu_path p : {cpu_path::amx, cpu_path::avx512, cpu_path::avx2, cpu_path::i8mm, cpu_path::dotprod, cpu_path::neon}) {
        if (cpu_path_supported(p)) return p;
    }
    return cpu_path::scalar;
}

const dispatch_state& dispatch() {
    static const dispatch_state state = [] {
        dispatch_state s;
        for (uint32_t i = 0; i < k_tensor_type_count; ++i) s.table[i] = reference_row(tensor_type(i));
        cpu_path want = best_path();
        if (const char* env = std::getenv("MOERUN_CPU"); env && *env && std::strcmp(env, "auto") != 0) {
            bool known = false;
            for (cpu_path p : k_cpu_paths) {
                if (std::strcmp(env, cpu_path_name(p)) == 0) { want = p; known = true; }
            }
            if (!known) {
                s.error = std::string("MOERUN_CPU='") + env + "' is not one of auto, scalar, avx2, avx512, amx, neon, dotprod, i8mm";
            } else if (!cpu_path_supported(want)) {
                s.error = std::string("MOERUN_CPU='") + env + "' but this CPU does not support it";
            }
        }
        if (!s.error.empty()) return s;
        s.path = want;
        fill_table(want, s.table.data());
        s.ops = vector_ops_for_path(want);
        return s;
    }();
    return state;
}

}  // namespace

const cpu_kernels& cpu_kernels_for_path(cpu_path path, tensor_type type) {
    using table_t = std::array<cpu_kernels, k_tensor_type_count>;
    static const std::array<table_t, std::size(k_cpu_paths)> tables = [] {
        std::array<table_t, std::size(k_cpu_paths)> t{};
        for (cpu_path p : k_cpu_paths) {
            if (cpu_path_supported(p)) fill_table(p, t[size_t(p)].data());
        }
        return t;
    }();
    static const cpu_kernels unknown{};
    const uint32_t id = uint32_t(type);
    if (id >= k_tensor_type_count || !cpu_path_supported(path)) return unknown;
    return tables[size_t(path)][id];
}

vector_ops vector_ops_for_path(cpu_path path) {
    // As the kernel tables: the AVX-512 paths start from AVX2's operations and replace those
    // they have their own of (transpose_u16 stays AVX2's).
    vector_ops ops = vector_ops_reference();
    const bool avx512 = path == cpu_path::avx512 || path == cpu_path::amx;
    if (path == cpu_path::avx2 || avx512) cpu_register_avx2_vector_ops(&ops);
    if (avx512) cpu_register_avx512_vector_ops(&ops);
    return ops;
}

cpu_path cpu_active_path() {
    const dispatch_state& s = dispatch();
    if (!s.error.empty()) throw error(error_code::invalid_argument, s.error);
    return s.path;
}

const cpu_kernels& cpu_kernels_of(tensor_type type) {
    static const cpu_kernels unknown{};
    const uint32_t id = uint32_t(type);
    return id < k_tensor_type_count ? dispatch().table[id] : unknown;
}

const vector_ops& vector_ops_active() { return dispatch().ops; }

}  // namespace moerun
