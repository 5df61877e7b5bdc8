// Matrix products against weights of every CPU type, dequantized in registers.
//
// Activations are first rounded to the weight's dot type exactly as the CPU rounds them
// (quant/types.h's vec_dot_type): F16/BF16 weights see activations rounded to halves; quantized
// weights see int8 blocks: Q8_0 (32 values, fp16 scale), Q8_1 (also the fp16 scaled sum, for the
// affine Q4_1/Q5_1) or Q8_K (256 values, float scale, sums of 16). The products of int8 blocks are
// exact integers (dp4a), so the CUDA and CPU results differ only in the order floats are added.
//
// An activation row of k elements (the "act row") on the device, for every quantized dot type:
//   int8 q[k] | float d[k/32] | float s[k/32] | int32 bsum[k/16]
// d: each 32-unit's scale (Q8_K: its super-block's, repeated); s: Q8_1's d*sum(q); bsum: Q8_K's
// sums of 16. Float dot types keep k floats (the rounded values).
//
// Kernels: one warp per (weight row, tile of activation rows); each lane takes 32-element units
// (a legacy block, a K-quant's 32-element sub-block) strided by 32 and dots them with dp4a, then
// the warp adds its lanes. Batch 1 uses a tile of 1; prompt batches a tile of 8 activation rows per
// weight row, so each weight unit is read once from memory for 8 rows (from L1 after the first).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>

#include "../base/tensor_type.h"
#include "../quant/blocks.h"
#include "common.cuh"

using moerun::tensor_type;

namespace {

constexpr int k_warps_per_block = 4;
constexpr int k_prompt_tile = 8;

__constant__ int8_t c_iq4nl_values[16];

// ---- the dot type of each weight type ----
enum class act_kind { f32, f16, bf16, q8_0, q8_1, q8_k };

bool act_kind_of(uint32_t type, act_kind* out) {
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

size_t act_row_bytes(act_kind kind, int64_t k) {
    if (kind == act_kind::f32 || kind == act_kind::f16 || kind == act_kind::bf16) return size_t(k) * sizeof(float);
    return size_t(k) + 8 * size_t(k / 32) + 4 * size_t(k / 16);
}

// ---- activation rounding and quantization (one thread per block) ----

__device__ inline float round_bf16(float f) {  // as quant/types.h's fp32_to_bf16: RNE, NaN quieted
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __uint_as_float(((u >> 16) | 64u) << 16);
    return __uint_as_float(((u + (0x7fffu + ((u >> 16) & 1u))) >> 16) << 16);
}

__global__ void round_rows(const float* x, int64_t k, int64_t m, act_kind kind, float* out) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= k * m) return;
    const float v = x[i];
    out[i] = kind == act_kind::f16 ? __half2float(__float2half_rn(v)) : kind == act_kind::bf16 ? round_bf16(v) : v;
}

// Q8_0 / Q8_1: d = amax / 127 (stored as fp16), q = round-half-away(x / d), as the reference.
__global__ void quantize_q8_32(const float* x, int64_t k, int64_t m, bool with_sum, uint8_t* act) {
    const int64_t units = k / 32, b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (b >= units * m) return;
    const int64_t row = b / units, u = b % units;
    const float* src = x + row * k + u * 32;
    uint8_t* base = act + size_t(row) * (size_t(k) + 8 * size_t(units) + 4 * size_t(k / 16));
    int8_t* q = reinterpret_cast<int8_t*>(base) + u * 32;
    float* d_out = reinterpret_cast<float*>(base + k);
    float* s_out = d_out + units;
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
    d_out[u] = __half2float(__float2half_rn(d));
    s_out[u] = with_sum ? __half2float(__float2half_rn(float(sum) * d)) : 0.0f;
}

// Q8_K: the value of largest magnitude (first on ties) maps to -127; q = round-half-even.
__global__ void quantize_q8_k(const float* x, int64_t k, int64_t m, uint8_t* act) {
    const int64_t supers = k / 256, b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (b >= supers * m) return;
    const int64_t row = b / supers, sb = b % supers;
    const float* src = x + row * k + sb * 256;
    uint8_t* base = act + size_t(row) * (size_t(k) + 8 * size_t(k / 32) + 4 * size_t(k / 16));
    int8_t* q = reinterpret_cast<int8_t*>(base) + sb * 256;
    float* d_out = reinterpret_cast<float*>(base + k) + sb * 8;
    int* bsum = reinterpret_cast<int*>(base + k + 8 * (k / 32)) + sb * 16;
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
            const int v = min(127, __float2int_rn(iscale * src[16 * g + l]));
            q[16 * g + l] = int8_t(v);
            sum += v;
        }
        bsum[g] = sum;
    }
    const float d = 1 / iscale;
    for (int j = 0; j < 8; ++j) d_out[j] = d;
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

__device__ inline act_row act_row_at(const uint8_t* act, int64_t k, act_kind kind, int64_t row) {
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
__device__ inline uint32_t u32_a2(const uint8_t* p) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
    return uint32_t(h[0]) | (uint32_t(h[1]) << 16);
}
__device__ inline float f16_at(const uint8_t* p) { return __half2float(*reinterpret_cast<const __half*>(p)); }

// The sum of 4 packed int8 values.
__device__ inline int sum4(int x) { return __dp4a(x, 0x01010101, 0); }

// Bits 0..3 of b moved to bit 4 of bytes 0..3.
__device__ inline int bits_to_bit4(uint32_t b) {
    return int(((b & 1u) << 4) | ((b & 2u) << 11) | ((b & 4u) << 18) | ((b & 8u) << 25));
}

__device__ inline int iq4nl_lookup(uint32_t nibbles4) {  // 4 nibbles (one per byte's low 4 bits)
    const uint32_t v0 = uint8_t(c_iq4nl_values[nibbles4 & 15]), v1 = uint8_t(c_iq4nl_values[(nibbles4 >> 8) & 15]),
                   v2 = uint8_t(c_iq4nl_values[(nibbles4 >> 16) & 15]), v3 = uint8_t(c_iq4nl_values[(nibbles4 >> 24) & 15]);
    return int(v0 | (v1 << 8) | (v2 << 16) | (v3 << 24));
}

template <tensor_type T>
__device__ float unit_dot(const uint8_t* w, const act_row& a, int64_t u) {
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
            for (int i = 0; i < 8; ++i) sumi = __dp4a(int(u32_a2(b + 2 + 4 * i)), xi[i], sumi);
            return f16_at(b) * xd * float(sumi);
        } else if constexpr (T == tensor_type::Q4_0 || T == tensor_type::Q4_1 || T == tensor_type::IQ4_NL) {
            constexpr size_t size = T == tensor_type::Q4_1 ? sizeof(moerun::block_q4_1) : sizeof(moerun::block_q4_0);
            constexpr int qs_at = T == tensor_type::Q4_1 ? 4 : 2;
            const uint8_t* b = w + u * size;
            int sumi = 0, sumx = 0;
            for (int i = 0; i < 4; ++i) {
                const uint32_t v = u32_a2(b + qs_at + 4 * i);
                if constexpr (T == tensor_type::IQ4_NL) {
                    sumi = __dp4a(iq4nl_lookup(v & 0x0F0F0F0Fu), xi[i], sumi);
                    sumi = __dp4a(iq4nl_lookup((v >> 4) & 0x0F0F0F0Fu), xi[i + 4], sumi);
                } else {
                    sumi = __dp4a(int(v & 0x0F0F0F0Fu), xi[i], sumi);
                    sumi = __dp4a(int((v >> 4) & 0x0F0F0F0Fu), xi[i + 4], sumi);
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
                sumi = __dp4a(lo, xi[i], sumi);
                sumi = __dp4a(hi, xi[i + 4], sumi);
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
                    for (int i = 4 * half; i < 4 * half + 4; ++i) dot = __dp4a(int((u32_a2(qs + 4 * i) >> shift) & 0x03030303u), xi[i], dot);
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
                        dot = __dp4a(int(lo | (hbit << 2)), xi[i], dot);
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
                    dot = __dp4a(int(q), xi[i], dot);
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
                        dot = __dp4a(int(lo | hi), xi[i], dot);
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
                    dot = __dp4a(iq4nl_lookup(v & 0x0F0F0F0Fu), xi[i], dot);
                    dot = __dp4a(iq4nl_lookup((v >> 4) & 0x0F0F0F0Fu), xi[i + 4], dot);
                }
                return f16_at(b) * xd * float(ls * dot);
            } else {
                static_assert(T == tensor_type::F32, "no unit_dot for this type");
                return 0.0f;
            }
        }
    }
}

__device__ inline float silu(float x) { return x / (1.0f + expf(-x)); }

// y[r][o] for weight rows o and activation rows r. Dense: activation rows [tile * TILE, +TILE),
// all through the same weight. Experts (ids != null, TILE 1): activation row r = blockIdx.y goes
// through expert ids[r] and reads act row r / x_div. With w2 (gate/up), y = silu(w . x) * (w2 . x).
template <tensor_type T, int TILE>
__global__ void __launch_bounds__(32 * k_warps_per_block)
mul_mat_vec(const uint8_t* w, const uint8_t* w2, uint64_t w_row_stride, int64_t n_out, int64_t k, const uint8_t* act, act_kind kind,
            int64_t m, float* y, int64_t y_stride, const int32_t* ids, int x_div) {
    const int lane = threadIdx.x % 32;
    const int64_t o = int64_t(blockIdx.x) * k_warps_per_block + threadIdx.x / 32;
    if (o >= n_out) return;
    const int64_t units = (k + 31) / 32;
    const int64_t r0 = int64_t(blockIdx.y) * TILE;
    size_t w_off = size_t(o) * w_row_stride;
    int64_t act0 = r0;
    if (ids) {
        w_off += size_t(ids[r0]) * size_t(n_out) * w_row_stride;
        act0 = r0 / x_div;
    }
    const uint8_t* wr = w + w_off;
    const uint8_t* wr2 = w2 ? w2 + w_off : nullptr;
    float acc[TILE], acc2[TILE];
    act_row rows[TILE];
    for (int t = 0; t < TILE; ++t) {
        acc[t] = acc2[t] = 0.0f;
        rows[t] = act_row_at(act, k, kind, act0 + t < m ? act0 + t : act0);
    }
    for (int64_t u = lane; u < units; u += 32) {
        for (int t = 0; t < TILE; ++t) {
            acc[t] += unit_dot<T>(wr, rows[t], u);
            if (wr2) acc2[t] += unit_dot<T>(wr2, rows[t], u);
        }
    }
    for (int t = 0; t < TILE; ++t) {
        const float s = mc::warp_sum(acc[t]);
        const float s2 = wr2 ? mc::warp_sum(acc2[t]) : 0.0f;
        if (lane == 0 && r0 + t < m) y[(r0 + t) * y_stride + o] = wr2 ? silu(s) * s2 : s;
    }
}

// ---- launching ----

struct launch {
    const mc_tensor* w;
    const mc_tensor* w2;  // optional second weight (gate/up)
    const uint8_t* act;
    act_kind kind;
    int64_t m;            // output rows
    float* y;
    int64_t y_stride;
    const int32_t* ids;   // experts: one per output row
    int x_div;
};

template <tensor_type T>
void launch_type(const launch& l, cudaStream_t stream) {
    const int64_t n_out = l.w->ne[1], k = l.w->ne[0];
    const uint8_t* w = static_cast<const uint8_t*>(l.w->data);
    const uint8_t* w2 = l.w2 ? static_cast<const uint8_t*>(l.w2->data) : nullptr;
    const dim3 block(32 * k_warps_per_block);
    if (l.ids || l.m < k_prompt_tile) {
        const dim3 grid(mc::blocks_for(n_out, k_warps_per_block), unsigned(l.m));
        mul_mat_vec<T, 1><<<grid, block, 0, stream>>>(w, w2, l.w->row_stride, n_out, k, l.act, l.kind, l.m, l.y, l.y_stride, l.ids, l.x_div);
    } else {
        const dim3 grid(mc::blocks_for(n_out, k_warps_per_block), mc::blocks_for(l.m, k_prompt_tile));
        mul_mat_vec<T, k_prompt_tile><<<grid, block, 0, stream>>>(w, w2, l.w->row_stride, n_out, k, l.act, l.kind, l.m, l.y, l.y_stride,
                                                                  nullptr, 1);
    }
}

bool launch_any(const launch& l, cudaStream_t stream) {
    switch (tensor_type(l.w->type)) {
#define MC_TYPE(T) \
    case tensor_type::T: launch_type<tensor_type::T>(l, stream); return true;
        MC_TYPE(F32) MC_TYPE(F16) MC_TYPE(BF16) MC_TYPE(Q8_0) MC_TYPE(Q4_0) MC_TYPE(Q4_1) MC_TYPE(Q5_0) MC_TYPE(Q5_1) MC_TYPE(IQ4_NL)
        MC_TYPE(Q2_K) MC_TYPE(Q3_K) MC_TYPE(Q4_K) MC_TYPE(Q5_K) MC_TYPE(Q6_K) MC_TYPE(IQ4_XS)
#undef MC_TYPE
        default: return false;
    }
}

// Rounds or quantizes m rows of k floats into ctx->act for weights of `type`.
mc_status prepare_act(mc_context* ctx, uint32_t type, const float* x, int64_t k, int64_t m, act_kind* kind) {
    if (!act_kind_of(type, kind)) return mc::fail(ctx, MC_UNSUPPORTED, "cuda: matmul: weight type %u has no CUDA kernel", type);
    const bool quantized = *kind != act_kind::f32 && *kind != act_kind::f16 && *kind != act_kind::bf16;
    if (quantized && k % (*kind == act_kind::q8_k ? 256 : 32) != 0) {
        return mc::fail(ctx, MC_INVALID_ARGUMENT, "cuda: matmul: row length %lld is not a multiple of the block size", (long long)k);
    }
    MC_TRY(mc::reserve(ctx, &ctx->act, &ctx->act_bytes, act_row_bytes(*kind, k) * size_t(m), "matmul activations"));
    uint8_t* act = static_cast<uint8_t*>(ctx->act);
    if (!quantized) {
        round_rows<<<mc::blocks_for(k * m, 256), 256, 0, ctx->stream>>>(x, k, m, *kind, reinterpret_cast<float*>(act));
    } else if (*kind == act_kind::q8_k) {
        quantize_q8_k<<<mc::blocks_for(k / 256 * m, 64), 64, 0, ctx->stream>>>(x, k, m, act);
    } else {
        quantize_q8_32<<<mc::blocks_for(k / 32 * m, 128), 128, 0, ctx->stream>>>(x, k, m, *kind == act_kind::q8_1, act);
    }
    return mc::check_launch(ctx, "quantize activations");
}

// __constant__ tables are per device: filled once for each (the context's device is current).
mc_status init_tables(mc_context* ctx) {
    static std::atomic<bool> done[64];
    std::atomic<bool>* d = ctx->device < 64 ? &done[ctx->device] : nullptr;
    if (d && d->load()) return MC_OK;
    MC_TRY(mc::check(ctx, cudaMemcpyToSymbol(c_iq4nl_values, moerun::k_iq4nl_values, sizeof moerun::k_iq4nl_values), "IQ4 table"));
    if (d) d->store(true);
    return MC_OK;
}

}  // namespace

mc_status mc::op_matmul(mc_context* ctx, const mc_tensor* w, const float* x, int64_t m, float* y, int64_t y_stride) {
    if (m <= 0) return MC_OK;
    MC_TRY(init_tables(ctx));
    act_kind kind;
    MC_TRY(prepare_act(ctx, w->type, x, w->ne[0], m, &kind));
    if (!launch_any({w, nullptr, static_cast<const uint8_t*>(ctx->act), kind, m, y, y_stride, nullptr, 1}, ctx->stream)) {
        return mc::fail(ctx, MC_UNSUPPORTED, "cuda: matmul: weight type %u has no CUDA kernel", w->type);
    }
    return mc::check_launch(ctx, "mul_mat_vec");
}

mc_status mc::op_moe_gate_up(mc_context* ctx, const mc_tensor* gate, const mc_tensor* up, const float* x, const int32_t* ids, int n_tokens,
                         int n_used, float* h) {
    if (n_tokens <= 0) return MC_OK;
    if (gate->type != up->type || gate->ne[0] != up->ne[0] || gate->ne[1] != up->ne[1]) {
        return mc::fail(ctx, MC_UNSUPPORTED, "cuda: moe_gate_up: gate and up experts differ in type or shape");
    }
    MC_TRY(init_tables(ctx));
    act_kind kind;
    MC_TRY(prepare_act(ctx, gate->type, x, gate->ne[0], n_tokens, &kind));
    const int64_t rows = int64_t(n_tokens) * n_used;
    launch_any({gate, up, static_cast<const uint8_t*>(ctx->act), kind, rows, h, gate->ne[1], ids, n_used}, ctx->stream);
    return mc::check_launch(ctx, "mul_mat_vec (experts, gate/up)");
}

mc_status mc::op_moe_down(mc_context* ctx, const mc_tensor* down, const float* h, const int32_t* ids, int64_t rows, float* y) {
    if (rows <= 0) return MC_OK;
    MC_TRY(init_tables(ctx));
    act_kind kind;
    MC_TRY(prepare_act(ctx, down->type, h, down->ne[0], rows, &kind));
    launch_any({down, nullptr, static_cast<const uint8_t*>(ctx->act), kind, rows, y, down->ne[1], ids, 1}, ctx->stream);
    return mc::check_launch(ctx, "mul_mat_vec (experts, down)");
}
