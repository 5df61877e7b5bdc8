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

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../base/tensor_type.h"
#include "../quant/blocks.h"

#define MC_HD __host__ __device__ inline

namespace mc {

using moerun::tensor_type;

// IQ4_NL/IQ4_XS levels (quant/blocks.h's table) in constant memory, initialized at module load.
#define MC_IQ4(i) moerun::k_iq4nl_values[i]
static __constant__ int8_t c_iq4nl_values[16] = {MC_IQ4(0),  MC_IQ4(1),  MC_IQ4(2),  MC_IQ4(3),  MC_IQ4(4),  MC_IQ4(5),
                                                 MC_IQ4(6),  MC_IQ4(7),  MC_IQ4(8),  MC_IQ4(9),  MC_IQ4(10), MC_IQ4(11),
                                                 MC_IQ4(12), MC_IQ4(13), MC_IQ4(14), MC_IQ4(15)};
#undef MC_IQ4

// ---- the dot type of each weight type (quant/types.h's vec_dot_type) ----
enum class act_kind { f32, f16, bf16, q8_0, q8_1, q8_k };

inline bool act_kind_of(uint32_t type, act_kind* out) {
    switch (tensor_type(type)) {
        case tensor_type::F32: *out = act_kind::f32; return true;
        case tensor_type::F16: *out = act_kind::f16; return true;
        case tensor_type::BF16: *out = act_kind::bf16; return true;
        case tensor_type::Q4_0: case tensor_type::Q5_0: case tensor_type::Q8_0: case tensor_type::IQ4_NL:
            *out = act_kind::q8_0; return true;
        case tensor_type::Q4_1: case tensor_type::Q5_1: *out = act_kind::q8_1; return true;
        case tensor_type::Q2_K: case tensor_type::Q3_K: case tensor_type::Q4_K: case tensor_type::Q5_K: case tensor_type::Q6_K:
        case tensor_type::IQ4_XS:
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
MC_HD float f16_at(const uint8_t* p) { return __half2float(*reinterpret_cast<const __half*>(p)); }

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

MC_HD int iq4nl_value(uint32_t i) {
#ifdef __CUDA_ARCH__
    return c_iq4nl_values[i];
#else
    return moerun::k_iq4nl_values[i];
#endif
}
MC_HD int iq4nl_lookup(uint32_t nibbles4) {  // 4 nibbles (one per byte's low 4 bits) -> 4 packed int8 levels
    const uint32_t v0 = uint8_t(iq4nl_value(nibbles4 & 15)), v1 = uint8_t(iq4nl_value((nibbles4 >> 8) & 15)),
                   v2 = uint8_t(iq4nl_value((nibbles4 >> 16) & 15)), v3 = uint8_t(iq4nl_value((nibbles4 >> 24) & 15));
    return int(v0 | (v1 << 8) | (v2 << 16) | (v3 << 24));
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
        } else if constexpr (T == tensor_type::Q4_0 || T == tensor_type::Q4_1 || T == tensor_type::IQ4_NL) {
            constexpr size_t size = T == tensor_type::Q4_1 ? sizeof(moerun::block_q4_1) : sizeof(moerun::block_q4_0);
            constexpr int qs_at = T == tensor_type::Q4_1 ? 4 : 2;
            const uint8_t* b = w + u * size;
            int sumi = 0, sumx = 0;
            for (int i = 0; i < 4; ++i) {
                const uint32_t v = u32_a2(b + qs_at + 4 * i);
                if constexpr (T == tensor_type::IQ4_NL) {
                    sumi = dp4a(iq4nl_lookup(v & 0x0F0F0F0Fu), xi[i], sumi);
                    sumi = dp4a(iq4nl_lookup((v >> 4) & 0x0F0F0F0Fu), xi[i + 4], sumi);
                } else {
                    sumi = dp4a(int(v & 0x0F0F0F0Fu), xi[i], sumi);
                    sumi = dp4a(int((v >> 4) & 0x0F0F0F0Fu), xi[i + 4], sumi);
                }
                sumx += sum4(xi[i]) + sum4(xi[i + 4]);
            }
            if constexpr (T == tensor_type::Q4_0) sumi -= 8 * sumx;
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
                int sc, m;  // get_scale_min_k4
                if (j < 4) {
                    sc = scales[j] & 63;
                    m = scales[j + 4] & 63;
                } else {
                    sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
                    m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
                }
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
                    dot = dp4a(iq4nl_lookup(v & 0x0F0F0F0Fu), xi[i], dot);
                    dot = dp4a(iq4nl_lookup((v >> 4) & 0x0F0F0F0Fu), xi[i + 4], dot);
                }
                return f16_at(b) * xd * float(ls * dot);
            } else {
                static_assert(T == tensor_type::F32, "no unit_dot for this type");
                return 0.0f;
            }
        }
    }
}

}  // namespace mc
