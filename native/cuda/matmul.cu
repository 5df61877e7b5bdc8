// Matrix products against weights of every CPU type, dequantized in registers.
//
// Activations are first rounded to the weight's dot type exactly as the CPU rounds them
// (quant/types.h's vec_dot_type): F16/BF16 weights see activations rounded to halves; quantized
// weights see int8 blocks: Q8_0 (32 values, fp16 scale; also for MXFP4), Q8_1 (also the fp16
// scaled sum, for the affine Q4_1/Q5_1) or Q8_K (256 values, float scale, sums of 16; the K-quants,
// IQ4_XS, the lattice types IQ1_S..IQ3_S and the ternary TQ1_0/TQ2_0). The products of int8 blocks
// are exact integers (dp4a), so the CUDA and CPU results differ only in the order floats are added.
// Lattice weights are looked up in grids that dot.cuh keeps in global memory.
// The per-unit arithmetic and the activation rows' layout are in dot.cuh (host and device code,
// tested without a GPU by test/test_cuda_dots.cu).
//
// Kernels: one warp per (weight row, tile of activation rows); each lane takes 32-element units
// (a legacy block, a K-quant's 32-element sub-block) strided by 32 and dots them with dp4a, then
// the warp adds its lanes. Batch 1 uses a tile of 1; prompt batches a tile of 8 activation rows per
// weight row, so each weight unit is read once from memory for 8 rows (from L1 after the first).
#include "common.cuh"
#include "dot.cuh"

using moerun::tensor_type;
using mc::act_kind;
using mc::act_row;

namespace {

constexpr int k_warps_per_block = 4;
constexpr int k_prompt_tile = 8;

// ---- activation rounding and quantization (one thread per block) ----

__global__ void round_rows(const float* x, int64_t k, int64_t m, act_kind kind, float* out) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < k * m) out[i] = mc::round_act(x[i], kind);
}

// ---- activation quantization: one warp per block of values ----
// The same bytes as dot.cuh's quantize_unit_q8 and quantize_super_q8_k (the CPU's quantizers):
// their maxima and integer sums are exact in any order, and every other step is per value.

__device__ inline int warp_sum_int(int v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Q8_0 / Q8_1: lane j quantizes value j of a 32-value unit.
__global__ void quantize_q8_32(const float* x, int64_t k, int64_t m, bool with_sum, uint8_t* act) {
    const int64_t units = k / 32, b = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (b >= units * m) return;  // whole warps leave together
    const int64_t row = b / units, u = b % units;
    const mc::act_row_out o = mc::act_row_out_at(act, k, row);
    const float v = x[row * k + u * 32 + lane];
    const float amax = mc::warp_max(fabsf(v));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const int q = int(roundf(v * id));
    o.q[u * 32 + lane] = int8_t(q);
    const int sum = warp_sum_int(q);
    if (lane == 0) {
        o.d[u] = mc::round_f16(d);
        o.s[u] = with_sum ? mc::round_f16(float(sum) * d) : 0.0f;
    }
}

// Q8_K: lane l quantizes values 8l..8l+7 of a 256-value super-block; lanes 2g and 2g+1 make
// sum group g. The value of largest magnitude is the first on ties: (magnitude, position) pairs
// are compared, greater magnitude then lower position winning.
__global__ void quantize_q8_k(const float* x, int64_t k, int64_t m, uint8_t* act) {
    const int64_t supers = k / 256, b = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (b >= supers * m) return;
    const int64_t row = b / supers, sb = b % supers;
    const mc::act_row_out o = mc::act_row_out_at(act, k, row);
    const float* src = x + row * k + sb * 256 + lane * 8;
    float v[8], amax = 0.0f, max = 0.0f;
    int at = 256;  // none
    for (int j = 0; j < 8; ++j) {
        v[j] = src[j];
        if (fabsf(v[j]) > amax) {
            amax = fabsf(v[j]);
            max = v[j];
            at = lane * 8 + j;
        }
    }
    for (int off = 16; off > 0; off >>= 1) {
        const float other_amax = __shfl_xor_sync(0xffffffffu, amax, off), other_max = __shfl_xor_sync(0xffffffffu, max, off);
        const int other_at = __shfl_xor_sync(0xffffffffu, at, off);
        if (other_amax > amax || (other_amax == amax && other_at < at)) {
            amax = other_amax;
            max = other_max;
            at = other_at;
        }
    }
    int8_t* q = o.q + sb * 256 + lane * 8;
    if (amax == 0.0f) {
        for (int j = 0; j < 8; ++j) q[j] = 0;
        if (lane % 2 == 0) o.bsum[sb * 16 + lane / 2] = 0;
        if (lane < 8) o.d[sb * 8 + lane] = 0.0f;
        return;
    }
    const float iscale = -127.f / max;
    int sum = 0;
    for (int j = 0; j < 8; ++j) {
        const int qv = min(127, mc::nearest_int(iscale * v[j]));
        q[j] = int8_t(qv);
        sum += qv;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    if (lane % 2 == 0) o.bsum[sb * 16 + lane / 2] = sum;
    if (lane < 8) o.d[sb * 8 + lane] = 1 / iscale;
}

// Element e of a float weight row.
template <tensor_type T>
__device__ inline float float_at(const uint8_t* w, int64_t e) {
    if constexpr (T == tensor_type::F32) return reinterpret_cast<const float*>(w)[e];
    else if constexpr (T == tensor_type::F16) return __half2float(reinterpret_cast<const __half*>(w)[e]);
    else return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(w)[e]);
}

// y[r][o] for weight rows o and activation rows r. Dense: activation rows [tile * TILE, +TILE),
// all through the same weight. Experts (ids != null, TILE 1): activation row r = blockIdx.y goes
// through expert ids[r] (at slot slot_of[ids[r]] where slot_of is given; -1: not here, y untouched)
// and reads act row r / x_div. With w2 (gate/up), y = silu(w . x) * (w2 . x).
template <tensor_type T, int TILE>
__global__ void __launch_bounds__(32 * k_warps_per_block)
mul_mat_vec(const uint8_t* w, const uint8_t* w2, uint64_t w_row_stride, int64_t n_out, int64_t k, const uint8_t* act, act_kind kind,
            int64_t m, float* y, int64_t y_stride, const int32_t* ids, const int32_t* slot_of, int x_div) {
    const int lane = threadIdx.x % 32;
    const int64_t o = int64_t(blockIdx.x) * k_warps_per_block + threadIdx.x / 32;
    if (o >= n_out) return;
    const int64_t units = (k + 31) / 32;
    const int64_t r0 = int64_t(blockIdx.y) * TILE;
    size_t w_off = size_t(o) * w_row_stride;
    int64_t act0 = r0;
    if (ids) {
        const int32_t slot = slot_of ? slot_of[ids[r0]] : ids[r0];
        if (slot < 0) return;  // another pass (or the host) computes this row
        w_off += size_t(slot) * size_t(n_out) * w_row_stride;
        act0 = r0 / x_div;
    }
    const uint8_t* wr = w + w_off;
    const uint8_t* wr2 = w2 ? w2 + w_off : nullptr;
    float acc[TILE], acc2[TILE];
    act_row rows[TILE];
    for (int t = 0; t < TILE; ++t) {
        acc[t] = acc2[t] = 0.0f;
        rows[t] = mc::act_row_at(act, k, kind, act0 + t < m ? act0 + t : act0);
    }
    if constexpr (T == tensor_type::F32 || T == tensor_type::F16 || T == tensor_type::BF16) {
        // Float rows element by element, lane-interleaved: each load instruction of the warp
        // reads 32 neighbouring elements (a lane per 32-element unit would scatter them).
        for (int64_t e = lane; e < k; e += 32) {
            const float wv = float_at<T>(wr, e), wv2 = wr2 ? float_at<T>(wr2, e) : 0.0f;
            for (int t = 0; t < TILE; ++t) {
                acc[t] += wv * rows[t].f[e];
                acc2[t] += wv2 * rows[t].f[e];
            }
        }
    } else {
        for (int64_t u = lane; u < units; u += 32) {
            for (int t = 0; t < TILE; ++t) {
                acc[t] += mc::unit_dot<T>(wr, rows[t], u);
                if (wr2) acc2[t] += mc::unit_dot<T>(wr2, rows[t], u);
            }
        }
    }
    for (int t = 0; t < TILE; ++t) {
        const float s = mc::warp_sum(acc[t]);
        const float s2 = wr2 ? mc::warp_sum(acc2[t]) : 0.0f;
        if (lane == 0 && r0 + t < m) y[(r0 + t) * y_stride + o] = wr2 ? mc::silu(s) * s2 : s;
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
    const int32_t* slot_of;  // experts: where each is in w (null: at its id)
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
        mc::launch(mul_mat_vec<T, 1>, grid, block, 0, stream, w, w2, l.w->row_stride, n_out, k, l.act, l.kind, l.m, l.y, l.y_stride,
                   l.ids, l.slot_of, l.x_div);
    } else {
        const dim3 grid(mc::blocks_for(n_out, k_warps_per_block), mc::blocks_for(l.m, k_prompt_tile));
        mc::launch(mul_mat_vec<T, k_prompt_tile>, grid, block, 0, stream, w, w2, l.w->row_stride, n_out, k, l.act, l.kind, l.m, l.y,
                   l.y_stride, nullptr, nullptr, 1);
    }
}

bool launch_any(const launch& l, cudaStream_t stream) {
    switch (tensor_type(l.w->type)) {
#define MC_TYPE(T) \
    case tensor_type::T: launch_type<tensor_type::T>(l, stream); return true;
        MC_TYPE(F32) MC_TYPE(F16) MC_TYPE(BF16) MC_TYPE(Q8_0) MC_TYPE(Q4_0) MC_TYPE(Q4_1) MC_TYPE(Q5_0) MC_TYPE(Q5_1) MC_TYPE(IQ4_NL)
        MC_TYPE(Q2_K) MC_TYPE(Q3_K) MC_TYPE(Q4_K) MC_TYPE(Q5_K) MC_TYPE(Q6_K) MC_TYPE(IQ4_XS)
        MC_TYPE(IQ2_XXS) MC_TYPE(IQ2_XS) MC_TYPE(IQ2_S) MC_TYPE(IQ3_XXS) MC_TYPE(IQ3_S) MC_TYPE(IQ1_S) MC_TYPE(IQ1_M)
        MC_TYPE(TQ1_0) MC_TYPE(TQ2_0) MC_TYPE(MXFP4)
#undef MC_TYPE
        default: return false;
    }
}

// Rounds or quantizes m rows of k floats into ctx->act for weights of `type`, and points *act at
// them; F32 weights read x itself (rows of floats are their layout already).
mc_status prepare_act(mc_context* ctx, uint32_t type, const float* x, int64_t k, int64_t m, act_kind* kind, const uint8_t** act) {
    if (!mc::act_kind_of(type, kind)) return mc::fail(ctx, MC_UNSUPPORTED, "cuda: matmul: weight type %u has no CUDA kernel", type);
    if (*kind == act_kind::f32) {
        *act = reinterpret_cast<const uint8_t*>(x);
        return MC_OK;
    }
    const bool quantized = !mc::act_is_float(*kind);
    if (quantized && k % (*kind == act_kind::q8_k ? 256 : 32) != 0) {
        return mc::fail(ctx, MC_INVALID_ARGUMENT, "cuda: matmul: row length %lld is not a multiple of the block size", (long long)k);
    }
    MC_TRY(mc::reserve(ctx, &ctx->act, &ctx->act_bytes, mc::act_row_bytes(*kind, k) * size_t(m), "matmul activations"));
    uint8_t* out = static_cast<uint8_t*>(ctx->act);
    *act = out;
    if (!quantized) {
        mc::launch(round_rows, mc::blocks_for(k * m, 256), 256, 0, ctx->stream, x, k, m, *kind, reinterpret_cast<float*>(out));
    } else if (*kind == act_kind::q8_k) {  // a warp per block: 4 per thread block
        mc::launch(quantize_q8_k, mc::blocks_for(k / 256 * m, 4), 128, 0, ctx->stream, x, k, m, out);
    } else {
        mc::launch(quantize_q8_32, mc::blocks_for(k / 32 * m, 4), 128, 0, ctx->stream, x, k, m, *kind == act_kind::q8_1, out);
    }
    return mc::check_launch(ctx, "quantize activations");
}

}  // namespace

mc_status mc::op_matmul(mc_context* ctx, const mc_tensor* w, const float* x, int64_t m, float* y, int64_t y_stride) {
    if (m <= 0) return MC_OK;
    act_kind kind;
    const uint8_t* act;
    MC_TRY(prepare_act(ctx, w->type, x, w->ne[0], m, &kind, &act));
    if (!launch_any({w, nullptr, act, kind, m, y, y_stride, nullptr, nullptr, 1}, ctx->stream)) {
        return mc::fail(ctx, MC_UNSUPPORTED, "cuda: matmul: weight type %u has no CUDA kernel", w->type);
    }
    return mc::check_launch(ctx, "mul_mat_vec");
}

mc_status mc::op_moe_gate_up(mc_context* ctx, const mc_tensor* gate, const mc_tensor* up, const float* x, const int32_t* ids,
                             const int32_t* slot_of, int n_tokens, int n_used, float* h) {
    if (n_tokens <= 0) return MC_OK;
    if (gate->ne[0] != up->ne[0] || gate->ne[1] != up->ne[1] || gate->ne[2] != up->ne[2]) {
        return mc::fail(ctx, MC_INVALID_ARGUMENT, "cuda: moe_gate_up: gate and up experts differ in shape");
    }
    const int64_t rows = int64_t(n_tokens) * n_used, n_ff = gate->ne[1];
    act_kind kind;
    const uint8_t* act;
    MC_TRY(prepare_act(ctx, gate->type, x, gate->ne[0], n_tokens, &kind, &act));
    if (gate->type == up->type) {  // one pass: both products of a weight unit, then SwiGLU
        launch_any({gate, up, act, kind, rows, h, n_ff, ids, slot_of, n_used}, ctx->stream);
        return mc::check_launch(ctx, "mul_mat_vec (experts, gate/up)");
    }
    // Gate and up of different types (llama.cpp's low-bit mixes, e.g. IQ1_S gate and IQ1_M up):
    // gate into h, up into scratch, each with its own activation blocks (stream order keeps the
    // gate pass's reads before the second quantization), then h = silu(h) * up.
    launch_any({gate, nullptr, act, kind, rows, h, n_ff, ids, slot_of, n_used}, ctx->stream);
    MC_TRY(mc::check_launch(ctx, "mul_mat_vec (experts, gate)"));
    MC_TRY(mc::reserve(ctx, &ctx->up, &ctx->up_bytes, size_t(rows * n_ff) * sizeof(float), "experts' up rows"));
    float* u = static_cast<float*>(ctx->up);
    MC_TRY(prepare_act(ctx, up->type, x, up->ne[0], n_tokens, &kind, &act));
    launch_any({up, nullptr, act, kind, rows, u, n_ff, ids, slot_of, n_used}, ctx->stream);
    MC_TRY(mc::check_launch(ctx, "mul_mat_vec (experts, up)"));
    return mc::op_swiglu(ctx, h, u, rows * n_ff);
}

mc_status mc::op_moe_down(mc_context* ctx, const mc_tensor* down, const float* h, const int32_t* ids, const int32_t* slot_of, int64_t rows,
                          float* y) {
    if (rows <= 0) return MC_OK;
    act_kind kind;
    const uint8_t* act;
    MC_TRY(prepare_act(ctx, down->type, h, down->ne[0], rows, &kind, &act));
    launch_any({down, nullptr, act, kind, rows, y, down->ne[1], ids, slot_of, 1}, ctx->stream);
    return mc::check_launch(ctx, "mul_mat_vec (experts, down)");
}
