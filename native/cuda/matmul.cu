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

__global__ void quantize_q8_32(const float* x, int64_t k, int64_t m, bool with_sum, uint8_t* act) {
    const int64_t units = k / 32, b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (b >= units * m) return;
    const int64_t row = b / units, u = b % units;
    const mc::act_row_out o = mc::act_row_out_at(act, k, row);
    mc::quantize_unit_q8(x + row * k + u * 32, o.q + u * 32, o.d + u, o.s + u, with_sum);
}

__global__ void quantize_q8_k(const float* x, int64_t k, int64_t m, uint8_t* act) {
    const int64_t supers = k / 256, b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (b >= supers * m) return;
    const int64_t row = b / supers, sb = b % supers;
    const mc::act_row_out o = mc::act_row_out_at(act, k, row);
    mc::quantize_super_q8_k(x + row * k + sb * 256, o.q + sb * 256, o.d + sb * 8, o.bsum + sb * 16);
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
    for (int64_t u = lane; u < units; u += 32) {
        for (int t = 0; t < TILE; ++t) {
            acc[t] += mc::unit_dot<T>(wr, rows[t], u);
            if (wr2) acc2[t] += mc::unit_dot<T>(wr2, rows[t], u);
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

// Rounds or quantizes m rows of k floats into ctx->act for weights of `type`.
mc_status prepare_act(mc_context* ctx, uint32_t type, const float* x, int64_t k, int64_t m, act_kind* kind) {
    if (!mc::act_kind_of(type, kind)) return mc::fail(ctx, MC_UNSUPPORTED, "cuda: matmul: weight type %u has no CUDA kernel", type);
    const bool quantized = !mc::act_is_float(*kind);
    if (quantized && k % (*kind == act_kind::q8_k ? 256 : 32) != 0) {
        return mc::fail(ctx, MC_INVALID_ARGUMENT, "cuda: matmul: row length %lld is not a multiple of the block size", (long long)k);
    }
    MC_TRY(mc::reserve(ctx, &ctx->act, &ctx->act_bytes, mc::act_row_bytes(*kind, k) * size_t(m), "matmul activations"));
    uint8_t* act = static_cast<uint8_t*>(ctx->act);
    if (!quantized) {
        mc::launch(round_rows, mc::blocks_for(k * m, 256), 256, 0, ctx->stream, x, k, m, *kind, reinterpret_cast<float*>(act));
    } else if (*kind == act_kind::q8_k) {
        mc::launch(quantize_q8_k, mc::blocks_for(k / 256 * m, 64), 64, 0, ctx->stream, x, k, m, act);
    } else {
        mc::launch(quantize_q8_32, mc::blocks_for(k / 32 * m, 128), 128, 0, ctx->stream, x, k, m, *kind == act_kind::q8_1, act);
    }
    return mc::check_launch(ctx, "quantize activations");
}

}  // namespace

mc_status mc::op_matmul(mc_context* ctx, const mc_tensor* w, const float* x, int64_t m, float* y, int64_t y_stride) {
    if (m <= 0) return MC_OK;
    act_kind kind;
    MC_TRY(prepare_act(ctx, w->type, x, w->ne[0], m, &kind));
    if (!launch_any({w, nullptr, static_cast<const uint8_t*>(ctx->act), kind, m, y, y_stride, nullptr, nullptr, 1}, ctx->stream)) {
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
    MC_TRY(prepare_act(ctx, gate->type, x, gate->ne[0], n_tokens, &kind));
    if (gate->type == up->type) {  // one pass: both products of a weight unit, then SwiGLU
        launch_any({gate, up, static_cast<const uint8_t*>(ctx->act), kind, rows, h, n_ff, ids, slot_of, n_used}, ctx->stream);
        return mc::check_launch(ctx, "mul_mat_vec (experts, gate/up)");
    }
    // Gate and up of different types (llama.cpp's low-bit mixes, e.g. IQ1_S gate and IQ1_M up):
    // gate into h, up into scratch, each with its own activation blocks (stream order keeps the
    // gate pass's reads before the second quantization), then h = silu(h) * up.
    launch_any({gate, nullptr, static_cast<const uint8_t*>(ctx->act), kind, rows, h, n_ff, ids, slot_of, n_used}, ctx->stream);
    MC_TRY(mc::check_launch(ctx, "mul_mat_vec (experts, gate)"));
    MC_TRY(mc::reserve(ctx, &ctx->up, &ctx->up_bytes, size_t(rows * n_ff) * sizeof(float), "experts' up rows"));
    float* u = static_cast<float*>(ctx->up);
    MC_TRY(prepare_act(ctx, up->type, x, up->ne[0], n_tokens, &kind));
    launch_any({up, nullptr, static_cast<const uint8_t*>(ctx->act), kind, rows, u, n_ff, ids, slot_of, n_used}, ctx->stream);
    MC_TRY(mc::check_launch(ctx, "mul_mat_vec (experts, up)"));
    return mc::op_swiglu(ctx, h, u, rows * n_ff);
}

mc_status mc::op_moe_down(mc_context* ctx, const mc_tensor* down, const float* h, const int32_t* ids, const int32_t* slot_of, int64_t rows,
                          float* y) {
    if (rows <= 0) return MC_OK;
    act_kind kind;
    MC_TRY(prepare_act(ctx, down->type, h, down->ne[0], rows, &kind));
    launch_any({down, nullptr, static_cast<const uint8_t*>(ctx->act), kind, rows, y, down->ne[1], ids, slot_of, 1}, ctx->stream);
    return mc::check_launch(ctx, "mul_mat_vec (experts, down)");
}
