// One 32-element unit of a weight row against the same unit of an activation row, for every weight
// type, and the activation rounding/quantization that prepares those rows: the arithmetic of
// matmul.cu's kernels, as __host__ __device__ functions so that test/test_cuda_dots.cu checks
// them on a machine without a GPU against the CPU's reference dots (quant/reference.h).
//
// An activation row of k elements (the "act row"), for every quantized dot type:
//   int8 q[k] | float d[k/32] | float s[k/32] | int32 bsum[k/16]
// d: each 32-unit's scale (Q8_K: its super-block's, repeated); s: Q8_1's d*sum(q); bsum: Q8_K's
// sums of 16. Float dot types keep k floats (the rounded values).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "../base/tensor_type.h"
#include "../quant/blocks.h"
#include "../quant/iq_grids.h"

#define MC_HD __host__ __device__ inline

namespace mc {

using moerun::tensor_type;

// ---- the formats' tables on the device ----
// Each is a copy of quant/'s array (blocks.h, iq_grids.h), made by the compiler from that array
// when the module is built, so there is nothing to paste or to copy at run time. The device reads
// its copy, the host (test_cuda_dots) the array itself: MC_TABLE(copy, array)[i].
template <typename T, size_t N>
struct device_table {
    T v[N];
};
template <typename Array, size_t... I>
constexpr auto device_table_of(const Array& a, std::index_sequence<I...>) {
    return device_table<std::remove_cv_t<std::remove_reference_t<decltype(a[0])>>, sizeof...(I)>{{a[I]...}};
}
template <typename T, size_t N>
constexpr device_table<T, N> device_table_of(const T (&a)[N]) { return device_table_of(a, std::make_index_sequence<N>{}); }
template <typename T, size_t N>
constexpr device_table<T, N> device_table_of(const std::array<T, N>& a) { return device_table_of(a, std::make_index_sequence<N>{}); }
#ifdef __CUDA_ARCH__
#define MC_TABLE(device_copy, host_array) device_copy.v
#else
#define MC_TABLE(device_copy, host_array) host_array
#endif

// The 16 levels of IQ4_NL/IQ4_XS and MXFP4 (E2M1 doubled): constant memory.
static __constant__ const device_table<int8_t, 16> c_iq4nl_values = device_table_of(moerun::k_iq4nl_values);
static __constant__ const device_table<int8_t, 16> c_mxfp4_values = device_table_of(moerun::k_mxfp4_values);
// The lattice grids (8 bytes per IQ1/IQ2 point, 4 per IQ3 point; 33 KiB in all) in global memory:
// the lanes of a warp read different points, which constant memory would serve one at a time.
static __device__ const device_table<uint64_t, 256> g_iq2xxs_grid = device_table_of(moerun::k_iq2xxs_grid);
static __device__ const device_table<uint64_t, 512> g_iq2xs_grid = device_table_of(moerun::k_iq2xs_grid);
static __device__ const device_table<uint64_t, 1024> g_iq2s_grid = device_table_of(moerun::k_iq2s_grid);
static __device__ const device_table<uint32_t, 256> g_iq3xxs_grid = device_table_of(moerun::k_iq3xxs_grid);
static __device__ const device_table<uint32_t, 512> g_iq3s_grid = device_table_of(moerun::k_iq3s_grid);
static __device__ const device_table<uint64_t, 2048> g_iq1s_grid = device_table_of(moerun::k_iq1s_grid);

// ---- the dot type of each weight type (quant/types.h's vec_dot_type) ----
enum class act_kind { f32, f16, bf16, q8_0, q8_1, q8_k };

inline bool act_kind_of(uint32_t type, act_kind* out) {
    switch (tensor_type(type)) {
        case tensor_type::F32: *out = act_kind::f32; return true;
        case tensor_type::F16: *out = act_kind::f16; return true;
        case tensor_type::BF16: *out = act_kind::bf16; return true;
        case tensor_type::Q4_0: case tensor_type::Q5_0: case tensor_type::Q8_0: case tensor_type::IQ4_NL: case tensor_type::MXFP4:
            *out = act_kind::q8_0; return true;
        case tensor_type::Q4_1: case tensor_type::Q5_1: *out = act_kind::q8_1; return true;
        case tensor_type::Q2_K: case tensor_type::Q3_K: case tensor_type::Q4_K: case tensor_type::Q5_K: case tensor_type::Q6_K:
        case tensor_type::IQ4_XS: case tensor_type::IQ2_XXS: case tensor_type::IQ2_XS: case tensor_type::IQ2_S:
        case tensor_type::IQ3_XXS: case tensor_type::IQ3_S: case tensor_type::IQ1_S: case tensor_type::IQ1_M:
        case tensor_type::TQ1_0: case tensor_type::TQ2_0:
            *out = act_kind::q8_k; return true;
        default: return false;
    }
}

MC_HD bool act_is_float(act_kind kind) { return kind == act_kind::f32 || kind == act_kind::f16 || kind == act_kind::bf16; }

MC_HD size_t act_row_bytes(act_kind kind, int64_t k) {
    if (act_is_float(kind)) return size_t(k) * sizeof(float);
    return size_t(k) + 8 * size_t(k / 32) + 4 * size_t(k / 16);
}

// ---- rounding and quantizing activations ----

MC_HD uint32_t bits_of(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
#endif
}
MC_HD float float_of(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, 4);
    return f;
#endif
}
// As quant/types.h's fp32_to_bf16 (round to nearest even, NaN quieted), back to float.
MC_HD float round_bf16(float f) {
    const uint32_t u = bits_of(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return float_of(((u >> 16) | 64u) << 16);
    return float_of(((u + (0x7fffu + ((u >> 16) & 1u))) >> 16) << 16);
}
MC_HD float round_f16(float f) { return __half2float(__float2half_rn(f)); }
MC_HD float round_act(float v, act_kind kind) { return kind == act_kind::f16 ? round_f16(v) : kind == act_kind::bf16 ? round_bf16(v) : v; }

// Round half to even, as quant/search.h's nearest_int.
MC_HD int nearest_int(float f) {
#ifdef __CUDA_ARCH__
    return __float2int_rn(f);
#else
    return int(std::nearbyint(f));
#endif
}

// Q8_0 / Q8_1 of 32 values: d = amax / 127 (kept as its fp16 value), q = round-half-away(x / d),
// s = fp16(d * sum(q)) (Q8_1), as the reference's quantize_32_i8.
MC_HD void quantize_unit_q8(const float* src, int8_t* q, float* d_out, float* s_out, bool with_sum) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = fmaxf(amax, fabsf(src[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
        const int v = int(roundf(src[j] * id));
        q[j] = int8_t(v);
        sum += v;
    }
    *d_out = round_f16(d);
    *s_out = with_sum ? round_f16(float(sum) * d) : 0.0f;
}

// Q8_K of 256 values: the value of largest magnitude (first on ties) maps to -127; q =
// round-half-even, at most 127; d = 1 / iscale (a float), written to each of the 8 units.
MC_HD void quantize_super_q8_k(const float* src, int8_t* q, float* d_out, int* bsum) {
    float amax = 0, max = 0;
    for (int j = 0; j < 256; ++j) {
        const float ax = fabsf(src[j]);
        if (ax > amax) { amax = ax; max = src[j]; }
    }
    if (amax == 0.0f) {
        for (int j = 0; j < 256; ++j) q[j] = 0;
        for (int j = 0; j < 16; ++j) bsum[j] = 0;
        for (int j = 0; j < 8; ++j) d_out[j] = 0.0f;
        return;
    }
    const float iscale = -127.f / max;
    for (int g = 0; g < 16; ++g) {
        int sum = 0;
        for (int l = 0; l < 16; ++l) {
            const int v = min(127, nearest_int(iscale * src[16 * g + l]));
            q[16 * g + l] = int8_t(v);
            sum += v;
        }
        bsum[g] = sum;
    }
    const float d = 1 / iscale;
    for (int j = 0; j < 8; ++j) d_out[j] = d;
}

// Where unit u's pieces of act row `row` are (m rows of k elements at `act`).
struct act_row_out {
    int8_t* q;
    float* d;
    float* s;
    int* bsum;
};
MC_HD act_row_out act_row_out_at(uint8_t* act, int64_t k, int64_t row) {
    uint8_t* base = act + size_t(row) * act_row_bytes(act_kind::q8_0, k);
    act_row_out o;
    o.q = reinterpret_cast<int8_t*>(base);
    o.d = reinterpret_cast<float*>(base + k);
    o.s = o.d + k / 32;
    o.bsum = reinterpret_cast<int*>(base + k + 8 * (k / 32));
    return o;
}

// ---- one 32-element unit of a weight row against the same unit of an act row ----

struct act_row {
    const int8_t* q;
    const float* d;
    const float* s;
    const int* bsum;
    const float* f;  // float dot types
    int64_t n;       // elements in the row (float rows may end inside a unit)
};

MC_HD act_row act_row_at(const uint8_t* act, int64_t k, act_kind kind, int64_t row) {
    act_row a{};
    a.n = k;
    if (kind == act_kind::f32 || kind == act_kind::f16 || kind == act_kind::bf16) {
        a.f = reinterpret_cast<const float*>(act) + row * k;
        return a;
    }
    const uint8_t* base = act + size_t(row) * (size_t(k) + 8 * size_t(k / 32) + 4 * size_t(k / 16));
    a.q = reinterpret_cast<const int8_t*>(base);
    a.d = reinterpret_cast<const float*>(base + k);
    a.s = a.d + k / 32;
    a.bsum = reinterpret_cast<const int*>(base + k + 8 * (k / 32));
    return a;
}

// 4 bytes at a 2-byte aligned address (blocks of 18, 22, 34, 110, 210 bytes are only 2-aligned).
MC_HD uint32_t u32_a2(const uint8_t* p) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
    return uint32_t(h[0]) | (uint32_t(h[1]) << 16);
}
// 4 bytes at any address (MXFP4's blocks of 17 bytes).
MC_HD uint32_t u32_a1(const uint8_t* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24); }
MC_HD uint16_t u16_at(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }
MC_HD float f16_of(uint16_t bits) {
    __half_raw raw;
    raw.x = bits;
    return __half2float(__half(raw));
}
MC_HD float f16_at(const uint8_t* p) { return f16_of(u16_at(p)); }
// MXFP4's E8M0 exponent e as 2^(e-128), as quant/blocks.h's e8m0_to_fp32_half (e 0 and 1 subnormal).
MC_HD float e8m0_half(uint8_t e) { return float_of(e < 2 ? 0x00200000u << e : uint32_t(e - 1) << 23); }

// c + the dot product of 4 packed int8 values of a and b (the dp4a instruction on the device).
MC_HD int dp4a(int a, int b, int c) {
#ifdef __CUDA_ARCH__
    return __dp4a(a, b, c);
#else
    for (int i = 0; i < 4; ++i) c += int(int8_t(uint32_t(a) >> (8 * i))) * int(int8_t(uint32_t(b) >> (8 * i)));
    return c;
#endif
}

// The sum of 4 packed int8 values.
MC_HD int sum4(int x) { return dp4a(x, 0x01010101, 0); }

// Bits 0..3 of b moved to bit 4 of bytes 0..3.
MC_HD int bits_to_bit4(uint32_t b) {
    return int(((b & 1u) << 4) | ((b & 2u) << 11) | ((b & 4u) << 18) | ((b & 8u) << 25));
}

// Level `nibble` (0..15) of weight type T: MXFP4's, or IQ4_NL/IQ4_XS's.
template <tensor_type T>
MC_HD int level_of(uint32_t nibble) {
    if constexpr (T == tensor_type::MXFP4) return MC_TABLE(c_mxfp4_values, moerun::k_mxfp4_values)[nibble];
    else return MC_TABLE(c_iq4nl_values, moerun::k_iq4nl_values)[nibble];
}
// 4 nibbles (one per byte's low 4 bits) -> 4 packed int8 levels.
template <tensor_type T>
MC_HD int level_lookup(uint32_t nibbles4) {
    uint32_t out = 0;
    for (int i = 0; i < 4; ++i) out |= uint32_t(uint8_t(level_of<T>((nibbles4 >> (8 * i)) & 15))) << (8 * i);
    return int(out);
}

// ---- lattice formats (IQ1/IQ2/IQ3) ----

MC_HD uint64_t iq2xxs_point(uint32_t i) { return MC_TABLE(g_iq2xxs_grid, moerun::k_iq2xxs_grid)[i]; }
MC_HD uint64_t iq2xs_point(uint32_t i) { return MC_TABLE(g_iq2xs_grid, moerun::k_iq2xs_grid)[i]; }
MC_HD uint64_t iq2s_point(uint32_t i) { return MC_TABLE(g_iq2s_grid, moerun::k_iq2s_grid)[i]; }
MC_HD uint32_t iq3xxs_point(uint32_t i) { return MC_TABLE(g_iq3xxs_grid, moerun::k_iq3xxs_grid)[i]; }
MC_HD uint32_t iq3s_point(uint32_t i) { return MC_TABLE(g_iq3s_grid, moerun::k_iq3s_grid)[i]; }
MC_HD uint64_t iq1s_point(uint32_t i) { return MC_TABLE(g_iq1s_grid, moerun::k_iq1s_grid)[i]; }

// The 8 signs of a group of 8 from its 7 stored bits: bit 7 makes the number of minus signs even
// (quant/blocks.h's k_iq_signs).
MC_HD uint32_t iq_signs8(uint32_t bits7) {
#ifdef __CUDA_ARCH__
    return bits7 | uint32_t(__popc(bits7) & 1) << 7;
#else
    return bits7 | uint32_t(__builtin_popcount(bits7) & 1) << 7;
#endif
}

// 4 packed int8 values, byte i negated where bit i of signs4 is set (values within -127..127).
MC_HD int negate_where(uint32_t v, uint32_t signs4) {
    const uint32_t mask = ((signs4 & 15u) * 0x00204081u & 0x01010101u) * 0xffu;  // bit i -> 0xff in byte i
#ifdef __CUDA_ARCH__
    return int(__vsub4(v ^ mask, mask));
#else
    uint32_t out = 0;
    for (int i = 0; i < 4; ++i) out |= uint32_t(uint8_t((uint8_t(v >> (8 * i)) ^ uint8_t(mask >> (8 * i))) - uint8_t(mask >> (8 * i)))) << (8 * i);
    return int(out);
#endif
}

// Byte-wise v - c, each byte modulo 256: values 0..2c-1 in v become signed -c..c-1.
MC_HD int bytes_minus(uint32_t v, uint32_t c) {
#ifdef __CUDA_ARCH__
    return int(__vsub4(v, c));
#else
    uint32_t out = 0;
    for (int i = 0; i < 4; ++i) out |= uint32_t(uint8_t(uint8_t(v >> (8 * i)) - uint8_t(c >> (8 * i)))) << (8 * i);
    return int(out);
#endif
}

// acc + the dot of 8 non-negative grid values (lo: elements 0..3, hi: 4..7) with signs8 applied,
// and 8 activations (2 packed ints).
MC_HD int signed_dot8(uint32_t lo, uint32_t hi, uint32_t signs8, const int* x, int acc) {
    acc = dp4a(negate_where(lo, signs8), x[0], acc);
    return dp4a(negate_where(hi, signs8 >> 4), x[1], acc);
}

// ---- ternary formats ----

// TQ1_0 holds 5 trits per byte as a base-3 fraction scaled to 0..255: trit k of byte q is
// (uint8(q * 3^k) * 3) >> 8. This does 4 bytes at once, two in the 16-bit halves of each product
// (no product reaches 2^16). Trits 0..2 in bytes 0..3; pow3 = 3^k.
MC_HD int tq1_trits4(uint32_t bytes4, uint32_t pow3) {
    const uint32_t even = ((bytes4 & 0x00ff00ffu) * pow3) & 0x00ff00ffu;  // bytes 0, 2 times 3^k mod 256
    const uint32_t odd = (((bytes4 >> 8) & 0x00ff00ffu) * pow3) & 0x00ff00ffu;
    return int((((even * 3) >> 8) & 0x00ff00ffu) | ((((odd * 3) >> 8) & 0x00ff00ffu) << 8));
}

// The 6-bit scale and min of sub-block j (< 8) of a Q4_K/Q5_K super-block's 12 scale bytes.
MC_HD void scale_min_k4(const uint8_t* scales, int j, int* sc, int* m) {
    if (j < 4) {
        *sc = scales[j] & 63;
        *m = scales[j + 4] & 63;
    } else {
        *sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
        *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

template <tensor_type T>
MC_HD float unit_dot(const uint8_t* w, const act_row& a, int64_t u) {
    if constexpr (T == tensor_type::F32 || T == tensor_type::F16 || T == tensor_type::BF16) {
        const float* x = a.f + u * 32;
        const int n = a.n - u * 32 < 32 ? int(a.n - u * 32) : 32;
        float sum = 0;
        for (int j = 0; j < n; ++j) {
            float wv;
            if constexpr (T == tensor_type::F32) wv = reinterpret_cast<const float*>(w)[u * 32 + j];
            else if constexpr (T == tensor_type::F16) wv = __half2float(reinterpret_cast<const __half*>(w)[u * 32 + j]);
            else wv = __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(w)[u * 32 + j]);
            sum += wv * x[j];
        }
        return sum;
    } else {
        const int* xi = reinterpret_cast<const int*>(a.q + u * 32);  // 8 ints: elements 0..31 of the unit
        const float xd = a.d[u];
        if constexpr (T == tensor_type::Q8_0) {
            const uint8_t* b = w + u * sizeof(moerun::block_q8_0);
            int sumi = 0;
            for (int i = 0; i < 8; ++i) sumi = dp4a(int(u32_a2(b + 2 + 4 * i)), xi[i], sumi);
            return f16_at(b) * xd * float(sumi);
        } else if constexpr (T == tensor_type::Q4_0 || T == tensor_type::Q4_1 || T == tensor_type::IQ4_NL || T == tensor_type::MXFP4) {
            // 16 bytes of nibbles: element j in the low nibble of byte j, element j + 16 in the high.
            constexpr bool levels = T == tensor_type::IQ4_NL || T == tensor_type::MXFP4;
            constexpr size_t size = T == tensor_type::Q4_1    ? sizeof(moerun::block_q4_1)
                                    : T == tensor_type::MXFP4 ? sizeof(moerun::block_mxfp4)
                                                              : sizeof(moerun::block_q4_0);
            constexpr size_t qs_at = size - 16;
            const uint8_t* b = w + u * size;
            int sumi = 0, sumx = 0;
            for (int i = 0; i < 4; ++i) {
                const uint32_t v = T == tensor_type::MXFP4 ? u32_a1(b + qs_at + 4 * i) : u32_a2(b + qs_at + 4 * i);
                if constexpr (levels) {
                    sumi = dp4a(level_lookup<T>(v & 0x0F0F0F0Fu), xi[i], sumi);
                    sumi = dp4a(level_lookup<T>((v >> 4) & 0x0F0F0F0Fu), xi[i + 4], sumi);
                } else {
                    sumi = dp4a(int(v & 0x0F0F0F0Fu), xi[i], sumi);
                    sumi = dp4a(int((v >> 4) & 0x0F0F0F0Fu), xi[i + 4], sumi);
                }
                sumx += sum4(xi[i]) + sum4(xi[i + 4]);
            }
            if constexpr (T == tensor_type::Q4_0) sumi -= 8 * sumx;
            if constexpr (T == tensor_type::MXFP4) return xd * e8m0_half(b[0]) * float(sumi);
            const float dw = f16_at(b);
            if constexpr (T == tensor_type::Q4_1) return dw * xd * float(sumi) + f16_at(b + 2) * a.s[u];
            return dw * xd * float(sumi);
        } else if constexpr (T == tensor_type::Q5_0 || T == tensor_type::Q5_1) {
            constexpr bool affine = T == tensor_type::Q5_1;
            const uint8_t* b = w + u * (affine ? sizeof(moerun::block_q5_1) : sizeof(moerun::block_q5_0));
            const uint8_t* qh_at = b + (affine ? 4 : 2);
            const uint8_t* qs = qh_at + 4;
            const uint32_t qh = u32_a2(qh_at);
            int sumi = 0, sumx = 0;
            for (int i = 0; i < 4; ++i) {
                const uint32_t v = u32_a2(qs + 4 * i);
                const int lo = int(v & 0x0F0F0F0Fu) | bits_to_bit4(qh >> (4 * i));
                const int hi = int((v >> 4) & 0x0F0F0F0Fu) | bits_to_bit4(qh >> (16 + 4 * i));
                sumi = dp4a(lo, xi[i], sumi);
                sumi = dp4a(hi, xi[i + 4], sumi);
                sumx += sum4(xi[i]) + sum4(xi[i + 4]);
            }
            if constexpr (!affine) sumi -= 16 * sumx;
            const float dw = f16_at(b);
            if constexpr (affine) return dw * xd * float(sumi) + f16_at(b + 2) * a.s[u];
            return dw * xd * float(sumi);
        } else {
            // K-quants and IQ4_XS: super-block u / 8, 32-element sub-block j = u % 8.
            const int64_t sb = u / 8;
            const int j = int(u % 8);
            if constexpr (T == tensor_type::Q2_K) {
                const uint8_t* b = w + sb * sizeof(moerun::block_q2_K);
                const uint8_t* qs = b + 16 + 32 * (j / 4);
                const int shift = 2 * (j % 4);
                int isum = 0, msum = 0;
                for (int half = 0; half < 2; ++half) {  // two sub-blocks of 16
                    int dot = 0;
                    for (int i = 4 * half; i < 4 * half + 4; ++i) dot = dp4a(int((u32_a2(qs + 4 * i) >> shift) & 0x03030303u), xi[i], dot);
                    const uint8_t sc = b[2 * j + half];
                    isum += (sc & 0xF) * dot;
                    msum += (sc >> 4) * a.bsum[2 * u + half];
                }
                return f16_at(b + 80) * xd * float(isum) - f16_at(b + 82) * xd * float(msum);
            } else if constexpr (T == tensor_type::Q3_K) {
                const uint8_t* b = w + sb * sizeof(moerun::block_q3_K);
                const uint8_t* qs = b + 32 + 32 * (j / 4);
                const uint8_t* sc_bytes = b + 96;
                const int shift = 2 * (j % 4);
                int isum = 0;
                for (int half = 0; half < 2; ++half) {
                    int dot = 0, sumx = 0;
                    for (int i = 4 * half; i < 4 * half + 4; ++i) {
                        const uint32_t lo = (u32_a2(qs + 4 * i) >> shift) & 0x03030303u;
                        const uint32_t hbit = (u32_a2(b + 4 * i) >> j) & 0x01010101u;
                        dot = dp4a(int(lo | (hbit << 2)), xi[i], dot);
                        sumx += sum4(xi[i]);
                    }
                    const int s = 2 * j + half;  // sub-block of 16 (q3k_unpack_scales)
                    const int lo = s < 8 ? sc_bytes[s] & 0xF : sc_bytes[s - 8] >> 4;
                    const int hi = (sc_bytes[8 + s % 4] >> (2 * (s / 4))) & 3;
                    isum += ((lo | (hi << 4)) - 32) * (dot - 4 * sumx);
                }
                return f16_at(b + 108) * xd * float(isum);
            } else if constexpr (T == tensor_type::Q4_K || T == tensor_type::Q5_K) {
                constexpr bool five = T == tensor_type::Q5_K;
                const uint8_t* b = w + sb * (five ? sizeof(moerun::block_q5_K) : sizeof(moerun::block_q4_K));
                const uint8_t* scales = b + 4;
                const uint8_t* qs = b + (five ? 48 : 16) + 32 * (j / 2);
                int dot = 0;
                for (int i = 0; i < 8; ++i) {
                    const uint32_t v = u32_a2(qs + 4 * i);
                    uint32_t q = (j & 1 ? v >> 4 : v) & 0x0F0F0F0Fu;
                    if constexpr (five) q |= ((u32_a2(b + 16 + 4 * i) >> j) & 0x01010101u) << 4;
                    dot = dp4a(int(q), xi[i], dot);
                }
                int sc, m;
                scale_min_k4(scales, j, &sc, &m);
                const int bs = a.bsum[2 * u] + a.bsum[2 * u + 1];
                return f16_at(b) * xd * float(sc * dot) - f16_at(b + 2) * xd * float(m * bs);
            } else if constexpr (T == tensor_type::Q6_K) {
                const uint8_t* b = w + sb * sizeof(moerun::block_q6_K);
                const int half = j / 4, k = j % 4;
                const uint8_t* ql = b + 64 * half + 32 * (k & 1);
                const uint8_t* qh = b + 128 + 32 * half;
                const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
                int isum = 0;
                for (int h = 0; h < 2; ++h) {
                    int dot = 0, sumx = 0;
                    for (int i = 4 * h; i < 4 * h + 4; ++i) {
                        const uint32_t v = u32_a2(ql + 4 * i);
                        const uint32_t lo = (k >= 2 ? v >> 4 : v) & 0x0F0F0F0Fu;
                        const uint32_t hi = ((u32_a2(qh + 4 * i) >> (2 * k)) & 0x03030303u) << 4;
                        dot = dp4a(int(lo | hi), xi[i], dot);
                        sumx += sum4(xi[i]);
                    }
                    isum += scales[2 * j + h] * (dot - 32 * sumx);
                }
                return f16_at(b + 208) * xd * float(isum);
            } else if constexpr (T == tensor_type::IQ4_XS) {
                const uint8_t* b = w + sb * sizeof(moerun::block_iq4_xs);
                const uint16_t scales_h = *reinterpret_cast<const uint16_t*>(b + 2);
                const int ls = (((b[4 + j / 2] >> (4 * (j % 2))) & 0xF) | (((scales_h >> (2 * j)) & 3) << 4)) - 32;
                const uint8_t* qs = b + 8 + 16 * j;
                int dot = 0;
                for (int i = 0; i < 4; ++i) {
                    const uint32_t v = u32_a2(qs + 4 * i);
                    dot = dp4a(level_lookup<T>(v & 0x0F0F0F0Fu), xi[i], dot);
                    dot = dp4a(level_lookup<T>((v >> 4) & 0x0F0F0F0Fu), xi[i + 4], dot);
                }
                return f16_at(b) * xd * float(ls * dot);
            } else if constexpr (T == tensor_type::IQ2_XXS) {
                // Sub-block j: 4 byte-wide grid indices, then a word of 4 x 7 sign bits | ls << 28.
                const uint8_t* b = w + sb * sizeof(moerun::block_iq2_xxs);
                const uint32_t idx = u32_a2(b + 2 + 8 * j), aux = u32_a2(b + 6 + 8 * j);
                int dot = 0;
                for (int l = 0; l < 4; ++l) {
                    const uint64_t p = iq2xxs_point((idx >> (8 * l)) & 0xff);
                    dot = signed_dot8(uint32_t(p), uint32_t(p >> 32), iq_signs8((aux >> (7 * l)) & 127), xi + 2 * l, dot);
                }
                return f16_at(b) * xd * float(dot * int(2 * (aux >> 28) + 1)) * 0.125f;
            } else if constexpr (T == tensor_type::IQ2_XS || T == tensor_type::IQ2_S) {
                // Groups l of 8 with a scale per 16 (l / 2). IQ2_XS: a word per group, 9-bit index |
                // 7 sign bits << 9; IQ2_S: index bits 0-7 in qs, 8-9 in qh, a full sign byte.
                constexpr bool xs = T == tensor_type::IQ2_XS;
                using block = std::conditional_t<xs, moerun::block_iq2_xs, moerun::block_iq2_s>;
                const uint8_t* b = w + sb * sizeof(block);
                const uint8_t sc = b[offsetof(block, scales) + j];
                int isum = 0;
                for (int h = 0; h < 2; ++h) {
                    int dot = 0;
                    for (int l = 2 * h; l < 2 * h + 2; ++l) {
                        uint64_t p;
                        uint32_t signs;
                        if constexpr (xs) {
                            const uint16_t q = u16_at(b + 2 + 2 * (4 * j + l));
                            p = iq2xs_point(q & 511);
                            signs = iq_signs8(q >> 9);
                        } else {
                            const uint32_t qh = b[offsetof(moerun::block_iq2_s, qh) + j];
                            p = iq2s_point(b[2 + 4 * j + l] | ((qh << (8 - 2 * l)) & 0x300));
                            signs = b[2 + 32 + 4 * j + l];
                        }
                        dot = signed_dot8(uint32_t(p), uint32_t(p >> 32), signs, xi + 2 * l, dot);
                    }
                    isum += dot * (2 * ((sc >> (4 * h)) & 0xf) + 1);
                }
                return f16_at(b) * xd * float(isum) * 0.125f;
            } else if constexpr (T == tensor_type::IQ3_XXS) {
                // Sub-block j: 8 byte-wide indices of 4-value points, and a word of 4 x 7 sign bits | ls << 28.
                const uint8_t* b = w + sb * sizeof(moerun::block_iq3_xxs);
                const uint8_t* q3 = b + 2 + 8 * j;
                const uint32_t aux = u32_a2(b + 2 + 64 + 4 * j);
                int dot = 0;
                for (int l = 0; l < 4; ++l) {
                    dot = signed_dot8(iq3xxs_point(q3[2 * l]), iq3xxs_point(q3[2 * l + 1]), iq_signs8((aux >> (7 * l)) & 127), xi + 2 * l, dot);
                }
                return f16_at(b) * xd * float(dot * int(2 * (aux >> 28) + 1)) * 0.25f;
            } else if constexpr (T == tensor_type::IQ3_S) {
                // Index k of sub-block j: 8 bits from qs, bit 8 from bit k of qh[j]; a sign bit per weight.
                using block = moerun::block_iq3_s;
                const uint8_t* b = w + sb * sizeof(block);
                const uint8_t* qs = b + offsetof(block, qs) + 8 * j;
                const uint32_t qh = b[offsetof(block, qh) + j];
                const uint8_t* signs = b + offsetof(block, signs) + 4 * j;
                int dot = 0;
                for (int l = 0; l < 4; ++l) {
                    const uint32_t p1 = iq3s_point(qs[2 * l] | (((qh >> (2 * l)) & 1) << 8));
                    const uint32_t p2 = iq3s_point(qs[2 * l + 1] | (((qh >> (2 * l + 1)) & 1) << 8));
                    dot = signed_dot8(p1, p2, signs[l], xi + 2 * l, dot);
                }
                const int ls = 2 * ((b[offsetof(block, scales) + j / 2] >> (4 * (j % 2))) & 0xf) + 1;
                return f16_at(b) * xd * float(ls * dot);
            } else if constexpr (T == tensor_type::IQ1_S) {
                // w = d*ls * (point + delta): the points' dot in integers, delta (+-1/8) times the
                // activations' sum, which Q8_K rows carry per 16.
                using block = moerun::block_iq1_s;
                const uint8_t* b = w + sb * sizeof(block);
                const uint8_t* qs = b + offsetof(block, qs) + 4 * j;
                const uint32_t qh = u16_at(b + offsetof(block, qh) + 2 * j);  // 3 index bits per group, ls, delta sign
                int dot = 0;
                for (int l = 0; l < 4; ++l) {
                    const uint64_t p = iq1s_point(qs[l] | (((qh >> (3 * l)) & 7) << 8));
                    dot = dp4a(int(uint32_t(p)), xi[2 * l], dot);
                    dot = dp4a(int(uint32_t(p >> 32)), xi[2 * l + 1], dot);
                }
                const int ls = int(2 * ((qh >> 12) & 7) + 1);
                const int bs = a.bsum[2 * u] + a.bsum[2 * u + 1];
                return f16_at(b) * xd * (float(ls * dot) + moerun::k_iq1_delta * float(ls * (qh & 0x8000 ? -bs : bs)));
            } else if constexpr (T == tensor_type::IQ1_M) {
                // As IQ1_S with a scale per 16 and a delta sign per 8; d is spread over the scale words.
                using block = moerun::block_iq1_m;
                const uint8_t* b = w + sb * sizeof(block);
                const uint8_t* qs = b + offsetof(block, qs) + 4 * j;
                const uint8_t* sc = b + offsetof(block, scales);  // 4 words: 4 x 3-bit ls, d's bits in the top nibbles
                const uint32_t s0 = u16_at(sc), s1 = u16_at(sc + 2), s2 = u16_at(sc + 4), s3 = u16_at(sc + 6);
                const float d = f16_of(uint16_t((s0 >> 12) | ((s1 >> 8) & 0x00f0) | ((s2 >> 4) & 0x0f00) | (s3 & 0xf000)));
                const uint32_t scale_word = u16_at(sc + 2 * (j / 2));
                int isum = 0, dsum = 0;
                for (int h = 0; h < 2; ++h) {
                    const uint32_t qh = b[offsetof(block, qh) + 2 * j + h];  // groups 2h, 2h + 1: index bits 8-10, delta sign at 3 / 7
                    int dot = 0, delta = 0;
                    for (int l = 2 * h; l < 2 * h + 2; ++l) {
                        const uint64_t p = iq1s_point(qs[l] | ((qh << (8 - 4 * (l % 2))) & 0x700));
                        dot = dp4a(int(uint32_t(p)), xi[2 * l], dot);
                        dot = dp4a(int(uint32_t(p >> 32)), xi[2 * l + 1], dot);
                        const int sumx = sum4(xi[2 * l]) + sum4(xi[2 * l + 1]);
                        delta += qh & (l % 2 ? 0x80 : 0x08) ? -sumx : sumx;
                    }
                    const int ls = int(2 * ((scale_word >> (6 * (j % 2) + 3 * h)) & 7) + 1);
                    isum += dot * ls;
                    dsum += delta * ls;
                }
                return d * xd * (float(isum) + moerun::k_iq1_delta * float(dsum));
            } else if constexpr (T == tensor_type::TQ1_0) {
                // Elements 0..159: trit j of qs[0..31]; 160..239: trits 0..4 of qs[32..47] in runs of
                // 16; 240..255: trits 0..3 of qh[0..3] in runs of 4. Trits are w/d + 1.
                using block = moerun::block_tq1_0;
                const uint8_t* b = w + sb * sizeof(block);
                int dot = 0;
                for (int i = 0; i < 8; ++i) {  // elements 4i..4i+3 of the unit
                    const uint8_t* src;
                    int k;
                    if (j < 5) src = b + 4 * i, k = j;
                    else if (j < 7 || i < 4) src = b + 32 + 4 * (i % 4), k = 2 * (j - 5) + i / 4;
                    else src = b + offsetof(block, qh), k = i - 4;
                    const uint32_t pow3 = k == 0 ? 1 : k == 1 ? 3 : k == 2 ? 9 : k == 3 ? 27 : 81;
                    dot = dp4a(tq1_trits4(u32_a2(src), pow3), xi[i], dot);
                }
                const int isum = dot - (a.bsum[2 * u] + a.bsum[2 * u + 1]);
                return float(isum) * (f16_at(b + offsetof(block, d)) * xd);
            } else if constexpr (T == tensor_type::TQ2_0) {
                // As Q2_K's packing: element l + 32k of each 128 at bits 2k of byte l; values w/d + 1.
                using block = moerun::block_tq2_0;
                const uint8_t* b = w + sb * sizeof(block);
                const uint8_t* qs = b + 32 * (j / 4);
                const int shift = 2 * (j % 4);
                int dot = 0;
                for (int i = 0; i < 8; ++i) dot = dp4a(int((u32_a2(qs + 4 * i) >> shift) & 0x03030303u), xi[i], dot);
                const int isum = dot - (a.bsum[2 * u] + a.bsum[2 * u + 1]);
                return float(isum) * (xd * f16_at(b + offsetof(block, d)));
            } else {
                static_assert(T == tensor_type::F32, "no unit_dot for this type");
                return 0.0f;
            }
        }
    }
}

// ---- the weights as 4-value quads and scales, for the tensor-core kernels ----
// For the types below, a 32-element unit u of a weight row dots with the same unit of an act row as
//   (w0 * Σ_{e<16} q_e x_e + w1 * Σ_{e>=16} q_e x_e) * A - m * S
// where q_e are signed int8 weight values (weight_quad gives 4 of them), {w0, w1, m} are the
// unit's weight scales (weight_scales: a half per 16 elements, for the types with scales per 16),
// A the act row's scale of the unit and S its scaled sum (act_scales). Tensor cores then take the
// integer sums of 16 (mma m16n8k16): the same products as unit_dot, added in another order.

__host__ __device__ constexpr bool has_weight_quads(tensor_type t) {
    return t == tensor_type::Q8_0 || t == tensor_type::Q4_0 || t == tensor_type::Q4_K || t == tensor_type::Q5_K || t == tensor_type::Q6_K;
}

struct unit_scales {
    float w0, w1, m;
};

// Elements e..e+3 (e a multiple of 4) of unit u of a weight row, as 4 packed signed int8.
template <tensor_type T>
MC_HD int weight_quad(const uint8_t* w, int64_t u, int e) {
    if constexpr (T == tensor_type::Q8_0) {
        return int(u32_a2(w + u * sizeof(moerun::block_q8_0) + 2 + e));
    } else if constexpr (T == tensor_type::Q4_0) {  // element e: the low nibble of byte e, e + 16: the high
        const uint32_t v = u32_a2(w + u * sizeof(moerun::block_q4_0) + 2 + (e & 15));
        return bytes_minus(((e < 16 ? v : v >> 4) & 0x0F0F0F0Fu), 0x08080808u);
    } else if constexpr (T == tensor_type::Q4_K || T == tensor_type::Q5_K) {
        constexpr bool five = T == tensor_type::Q5_K;
        const int j = int(u % 8);
        const uint8_t* b = w + u / 8 * (five ? sizeof(moerun::block_q5_K) : sizeof(moerun::block_q4_K));
        const uint32_t v = u32_a2(b + (five ? 48 : 16) + 32 * (j / 2) + e);
        uint32_t q = (j & 1 ? v >> 4 : v) & 0x0F0F0F0Fu;
        if constexpr (five) q |= ((u32_a2(b + 16 + e) >> j) & 0x01010101u) << 4;
        return int(q);
    } else if constexpr (T == tensor_type::Q6_K) {
        const int j = int(u % 8), half = j / 4, k = j % 4;
        const uint8_t* b = w + u / 8 * sizeof(moerun::block_q6_K);
        const uint32_t lo = (u32_a2(b + 64 * half + 32 * (k & 1) + e) >> (k >= 2 ? 4 : 0)) & 0x0F0F0F0Fu;
        const uint32_t hi = ((u32_a2(b + 128 + 32 * half + e) >> (2 * k)) & 0x03030303u) << 4;
        return bytes_minus(lo | hi, 0x20202020u);
    } else {
        static_assert(T == tensor_type::Q8_0, "no weight quads for this type");
        return 0;
    }
}

template <tensor_type T>
MC_HD unit_scales weight_scales(const uint8_t* w, int64_t u) {
    if constexpr (T == tensor_type::Q8_0 || T == tensor_type::Q4_0) {
        const float d = f16_at(w + u * (T == tensor_type::Q8_0 ? sizeof(moerun::block_q8_0) : sizeof(moerun::block_q4_0)));
        return {d, d, 0.0f};
    } else if constexpr (T == tensor_type::Q4_K || T == tensor_type::Q5_K) {
        const int j = int(u % 8);
        const uint8_t* b = w + u / 8 * (T == tensor_type::Q5_K ? sizeof(moerun::block_q5_K) : sizeof(moerun::block_q4_K));
        const uint8_t* scales = b + 4;
        int sc, m;
        scale_min_k4(scales, j, &sc, &m);
        const float d = f16_at(b) * float(sc);
        return {d, d, f16_at(b + 2) * float(m)};
    } else {
        static_assert(T == tensor_type::Q6_K, "no weight scales for this type");
        const int j = int(u % 8);
        const uint8_t* b = w + u / 8 * sizeof(moerun::block_q6_K);
        const float d = f16_at(b + 208);
        const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
        return {d * float(scales[2 * j]), d * float(scales[2 * j + 1]), 0.0f};
    }
}

// The act row's scale A of unit u and its scaled sum S (Q8_K: d times the unit's two sums of 16;
// not used by the Q8_0 types, whose weights have no min).
MC_HD float act_unit_scale(const act_row& a, int64_t u) { return a.d[u]; }
MC_HD float act_unit_sum(const act_row& a, act_kind kind, int64_t u) {
    return kind == act_kind::q8_k ? a.d[u] * float(a.bsum[2 * u] + a.bsum[2 * u + 1]) : 0.0f;
}

}  // namespace mc
