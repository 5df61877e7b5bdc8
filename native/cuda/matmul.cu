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
// A prompt batch's expert rows (token, slot) are first grouped by expert on the device
// (group_rows_by_expert), so that the tiles of 8 hold rows of one expert and read its weights once
// for all of them, instead of once per row. Float weights (F32, F16, BF16) of a decode step take a
// block per weight row instead (mul_mat_vec_float): the router's 256 rows were too few warps.
#include <algorithm>
#include <cstdlib>
#include <cstring>

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

// ---- a prompt batch's expert rows, grouped by expert ----

// Up to k_prompt_tile rows that go through the same expert slot; count 0: an unused tile.
struct expert_tile {
    int32_t slot;
    int32_t count;
    int32_t rows[k_prompt_tile];
};

// The most tiles `rows` rows over n_slots expert slots can need: each slot's last tile may be partial.
inline int64_t max_expert_tiles(int64_t rows, int64_t n_slots) { return (rows + k_prompt_tile - 1) / k_prompt_tile + std::min(rows, n_slots); }

// One thread block: row r goes through slot slot_of[ids[r]] (ids[r] without slot_of; < 0: not
// here). Writes tiles[0, max_tiles): each used slot's rows in tiles of k_prompt_tile, the rest
// unused. Which tile a row lands in depends on the order of the atomics, its result does not: a
// row's dot product is summed the same way in any tile. Dynamic shared memory: 3 ints per slot.
__global__ void group_rows_by_expert(const int32_t* ids, const int32_t* slot_of, int64_t rows, int n_slots, expert_tile* tiles,
                                     int64_t max_tiles) {
    MC_DYNAMIC_SHARED(int, shared);
    int* count = shared;                // rows per slot
    int* first_tile = shared + n_slots;  // the slot's first tile
    int* filled = shared + 2 * n_slots;  // rows placed so far
    __shared__ int used_tiles;
    const auto slot_of_row = [&](int64_t r) {
        const int32_t s = slot_of ? slot_of[ids[r]] : ids[r];
        return s < n_slots ? s : -1;
    };
    for (int s = threadIdx.x; s < n_slots; s += blockDim.x) count[s] = filled[s] = 0;
    __syncthreads();
    for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
        const int s = slot_of_row(r);
        if (s >= 0) atomicAdd(&count[s], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {  // a few hundred slots: one thread's prefix sum
        int t = 0;
        for (int s = 0; s < n_slots; ++s) {
            first_tile[s] = t;
            t += (count[s] + k_prompt_tile - 1) / k_prompt_tile;
        }
        used_tiles = t;
    }
    __syncthreads();
    for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
        const int s = slot_of_row(r);
        if (s < 0) continue;
        const int at = atomicAdd(&filled[s], 1);
        tiles[first_tile[s] + at / k_prompt_tile].rows[at % k_prompt_tile] = int32_t(r);
    }
    for (int s = threadIdx.x; s < n_slots; s += blockDim.x) {
        for (int i = 0; i * k_prompt_tile < count[s]; ++i) {
            tiles[first_tile[s] + i].slot = s;
            tiles[first_tile[s] + i].count = min(k_prompt_tile, count[s] - i * k_prompt_tile);
        }
    }
    for (int64_t t = used_tiles + threadIdx.x; t < max_tiles; t += blockDim.x) tiles[t].count = 0;
}

// A prompt block's output rows and the act rows they read, by column c < cols: dense, the rows
// from blockIdx.y * cols (each reads its own act row); grouped, tile blockIdx.y's rows (row r
// reads act row r / x_div). Columns past `count` have no output row (-1) and read column 0's.
struct block_rows {
    const expert_tile* tile;  // null: dense
    int64_t first;
    int count;  // 0: an unused tile, nothing to do
    int x_div;
    __device__ int64_t out(int c) const { return c >= count ? -1 : tile ? tile->rows[c] : first + c; }
    __device__ int64_t act(int c) const {
        const int i = c < count ? c : 0;
        return tile ? tile->rows[i] / x_div : first + i;
    }
};
__device__ inline block_rows rows_of_block(const expert_tile* tiles, int cols, int64_t m, int x_div) {
    if (tiles) return {&tiles[blockIdx.y], 0, tiles[blockIdx.y].count, x_div};
    const int64_t first = int64_t(blockIdx.y) * cols;
    return {nullptr, first, m - first < cols ? int(m - first) : cols, 1};
}

// Element e of a float weight row.
template <tensor_type T>
__device__ inline float float_at(const uint8_t* w, int64_t e) {
    if constexpr (T == tensor_type::F32) return reinterpret_cast<const float*>(w)[e];
    else if constexpr (T == tensor_type::F16) return __half2float(reinterpret_cast<const __half*>(w)[e]);
    else return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(w)[e]);
}

// A shared expert joined to a decode step's expert rows: output rows from `first` on go through
// w (and w2) here instead of an expert, row first + i reading act row act0 + i.
struct joined_shared {
    const uint8_t* w = nullptr;
    const uint8_t* w2 = nullptr;
    int64_t first = INT64_MAX;
    int64_t act0 = 0;
};

// Where expert row r of a row-per-block launch reads: expert ids[r] (at slot slot_of[ids[r]] where
// slot_of is given; expert_bytes apart in w and w2) with act row r / x_div, or from shared.first on
// the joined shared expert. False: slot -1, a row another pass (or the host) computes.
struct row_source {
    const uint8_t* w;
    const uint8_t* w2;
    int64_t act;
};
__device__ inline bool source_of_expert_row(int64_t r, const uint8_t* w, const uint8_t* w2, size_t expert_bytes, const int32_t* ids,
                                            const int32_t* slot_of, int x_div, const joined_shared& shared, row_source* out) {
    if (r >= shared.first) {
        *out = {shared.w, shared.w2, shared.act0 + (r - shared.first)};
        return true;
    }
    const int32_t slot = slot_of ? slot_of[ids[r]] : ids[r];
    if (slot < 0) return false;
    const size_t off = size_t(slot) * expert_bytes;
    *out = {w + off, w2 ? w2 + off : nullptr, r / x_div};
    return true;
}

// y[r][o] for weight rows o and output rows r. Dense: output rows [tile * TILE, +TILE) read the
// same activation rows, all through the same weight. Experts, one row (ids != null, TILE 1):
// output row r = blockIdx.y goes through expert ids[r] (at slot slot_of[ids[r]] where slot_of is
// given; -1: not here, y untouched) and reads act row r / x_div, or, from shared.first on, through
// the shared expert. Experts, a prompt batch (tiles != null): tile blockIdx.y's rows go through
// its slot, each reading act row r / x_div. With w2 (gate/up), y = silu(w . x) * (w2 . x).
template <tensor_type T, int TILE>
__global__ void __launch_bounds__(32 * k_warps_per_block)
mul_mat_vec(const uint8_t* w, const uint8_t* w2, uint64_t w_row_stride, int64_t n_out, int64_t k, const uint8_t* act, act_kind kind,
            int64_t m, float* y, int64_t y_stride, const int32_t* ids, const int32_t* slot_of, int x_div, const expert_tile* tiles,
            joined_shared shared) {
    const int lane = threadIdx.x % 32;
    const int64_t o = int64_t(blockIdx.x) * k_warps_per_block + threadIdx.x / 32;
    if (o >= n_out) return;
    const int64_t units = (k + 31) / 32;
    int64_t out_row[TILE];  // the output row of each tile row (-1: none)
    int64_t act_of[TILE];
    size_t w_off = size_t(o) * w_row_stride;
    if (ids) {  // TILE 1: output row blockIdx.y
        row_source src;
        if (!source_of_expert_row(blockIdx.y, w, w2, size_t(n_out) * w_row_stride, ids, slot_of, x_div, shared, &src)) return;
        w = src.w;
        w2 = src.w2;
        act_of[0] = src.act;
        const int64_t r = blockIdx.y;
        for (int t = 0; t < TILE; ++t) {
            out_row[t] = t == 0 ? r : -1;
            act_of[t] = act_of[0];
        }
    } else {
        const block_rows br = rows_of_block(tiles, TILE, m, x_div);
        if (br.count == 0) return;
        if (br.tile) w_off += size_t(br.tile->slot) * size_t(n_out) * w_row_stride;
        for (int t = 0; t < TILE; ++t) {
            out_row[t] = br.out(t);
            act_of[t] = br.act(t);
        }
    }
    const uint8_t* wr = w + w_off;
    const uint8_t* wr2 = w2 ? w2 + w_off : nullptr;
    float acc[TILE], acc2[TILE];
    act_row rows[TILE];
    for (int t = 0; t < TILE; ++t) {
        acc[t] = acc2[t] = 0.0f;
        rows[t] = mc::act_row_at(act, k, kind, act_of[t]);
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
        if (lane == 0 && out_row[t] >= 0) y[out_row[t] * y_stride + o] = wr2 ? mc::silu(s) * s2 : s;
    }
}

// ---- float weights, a row per block ----

// Four consecutive elements e..e+3 of a float weight row (16-byte aligned for F32, 8 for halves).
template <tensor_type T>
__device__ inline float4 float4_at(const uint8_t* w, int64_t e) {
    if constexpr (T == tensor_type::F32) {
        return *reinterpret_cast<const float4*>(reinterpret_cast<const float*>(w) + e);
    } else {
        const uint2 h = *reinterpret_cast<const uint2*>(reinterpret_cast<const uint16_t*>(w) + e);
        float4 f;
        if constexpr (T == tensor_type::F16) {
            f.x = mc::f16_of(uint16_t(h.x));
            f.y = mc::f16_of(uint16_t(h.x >> 16));
            f.z = mc::f16_of(uint16_t(h.y));
            f.w = mc::f16_of(uint16_t(h.y >> 16));
        } else {
            f.x = mc::float_of(h.x << 16);
            f.y = mc::float_of(h.x & 0xffff0000u);
            f.z = mc::float_of(h.y << 16);
            f.w = mc::float_of(h.y & 0xffff0000u);
        }
        return f;
    }
}

// y[r][o] for float weights (F32, F16, BF16) and few output rows (a decode step; the router,
// 256 rows of 2048 F32, in every MoE layer): a block per (weight row o = blockIdx.x, output row
// r = blockIdx.y). Its 4 warps take a quarter of the row each, lane l elements 4l..4l+3 of every
// 128 (vec4: the rows' length a multiple of 4 and the rows 16-byte aligned; else one element per
// lane), and their sums are added in warp order. With a warp per row, the router ran as 64
// blocks, each warp a chain of 64 loads. Rows as mul_mat_vec's with TILE 1: dense (act row r)
// or experts (ids, slot_of, x_div, shared). With w2 (gate/up), y = silu(w . x) * (w2 . x).
template <tensor_type T>
__global__ void __launch_bounds__(32 * k_warps_per_block)
mul_mat_vec_float(const uint8_t* w, const uint8_t* w2, uint64_t w_row_stride, int64_t n_out, int64_t k, const float* act, float* y,
                  int64_t y_stride, const int32_t* ids, const int32_t* slot_of, int x_div, joined_shared shared, bool vec4) {
    __shared__ float partial[k_warps_per_block], partial2[k_warps_per_block];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int64_t o = blockIdx.x, r = blockIdx.y;
    int64_t a = r;
    if (ids) {
        row_source src;
        if (!source_of_expert_row(r, w, w2, size_t(n_out) * w_row_stride, ids, slot_of, x_div, shared, &src)) return;  // the whole block
        w = src.w;
        w2 = src.w2;
        a = src.act;
    }
    const uint8_t* wr = w + size_t(o) * w_row_stride;
    const uint8_t* wr2 = w2 ? w2 + size_t(o) * w_row_stride : nullptr;
    const float* x = act + a * k;
    // The warp's quarter: whole 128-element steps, the last warp's ending at k.
    const int64_t step = 128, quarter = (k + step * k_warps_per_block - 1) / (step * k_warps_per_block) * step;
    const int64_t begin = warp * quarter, end = begin + quarter < k ? begin + quarter : k;
    float acc = 0.0f, acc2 = 0.0f;
    int64_t e = begin + 4 * lane;
    if (vec4) {
        for (; e + 4 <= end; e += step) {
            const float4 xv = *reinterpret_cast<const float4*>(x + e);
            const float4 wv = float4_at<T>(wr, e);
            acc += wv.x * xv.x + wv.y * xv.y + wv.z * xv.z + wv.w * xv.w;
            if (wr2) {
                const float4 wv2 = float4_at<T>(wr2, e);
                acc2 += wv2.x * xv.x + wv2.y * xv.y + wv2.z * xv.z + wv2.w * xv.w;
            }
        }
    } else {
        for (e = begin + lane; e < end; e += 32) {
            acc += float_at<T>(wr, e) * x[e];
            if (wr2) acc2 += float_at<T>(wr2, e) * x[e];
        }
    }
    acc = mc::warp_sum(acc);
    acc2 = mc::warp_sum(acc2);
    if (lane == 0) {
        partial[warp] = acc;
        partial2[warp] = acc2;
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    float s = 0.0f, s2 = 0.0f;
    for (int i = 0; i < k_warps_per_block; ++i) {
        s += partial[i];
        s2 += partial2[i];
    }
    y[r * y_stride + o] = wr2 ? mc::silu(s) * s2 : s;
}

// ---- tensor cores: prompt batches of the types with weight quads (dot.cuh) ----
// A warp computes 16 weight rows x 8 NT output rows: per 32-element unit, two mma's of 16 per tile
// of 8 output rows (one per half of the unit), whose integer sums the unit's scales then weigh
// into float accumulators. The 4 warps of a block take 64 consecutive weight rows for the same
// output rows, so those rows' activations are read from L1 after the first warp. Dense: output
// rows [blockIdx.y * 8 NT, +8 NT) read the same activation rows; experts (tiles, NT 1): tile
// blockIdx.y's rows through its slot, reading act row r / x_div. With w2 (gate/up), y = silu(w . x) * (w2 . x).
template <tensor_type T, int NT>
__global__ void __launch_bounds__(32 * k_warps_per_block)
mul_mat_mma(const uint8_t* w, const uint8_t* w2, uint64_t w_row_stride, int64_t n_out, int64_t k, const uint8_t* act, act_kind kind,
            int64_t m, float* y, int64_t y_stride, int x_div, const expert_tile* tiles) {
    constexpr int cols = 8 * NT;
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int64_t o0 = (int64_t(blockIdx.x) * k_warps_per_block + threadIdx.x / 32) * 16;
    if (o0 >= n_out) return;  // whole warps
    const block_rows br = rows_of_block(tiles, cols, m, x_div);
    if (br.count == 0) return;
    const size_t slot_off = br.tile ? size_t(br.tile->slot) * size_t(n_out) * w_row_stride : 0;
    act_row b_rows[NT], e_rows[NT][2];  // the B fragment's column g; the accumulators' columns 2t, 2t + 1
    for (int nt = 0; nt < NT; ++nt) {
        b_rows[nt] = mc::act_row_at(act, k, kind, br.act(8 * nt + g));
        e_rows[nt][0] = mc::act_row_at(act, k, kind, br.act(8 * nt + 2 * t));
        e_rows[nt][1] = mc::act_row_at(act, k, kind, br.act(8 * nt + 2 * t + 1));
    }
    const int64_t row_lo = o0 + g < n_out ? o0 + g : n_out - 1, row_hi = o0 + g + 8 < n_out ? o0 + g + 8 : n_out - 1;
    const uint8_t* w_lo = w + slot_off + size_t(row_lo) * w_row_stride;
    const uint8_t* w_hi = w + slot_off + size_t(row_hi) * w_row_stride;
    const uint8_t* w2_lo = w2 ? w2 + slot_off + size_t(row_lo) * w_row_stride : nullptr;
    const uint8_t* w2_hi = w2 ? w2 + slot_off + size_t(row_hi) * w_row_stride : nullptr;
    float acc[NT][4] = {}, acc2[NT][4] = {};
    const int64_t units = k / 32;
    for (int64_t u = 0; u < units; ++u) {
        int sums[NT][2][4] = {}, sums2[NT][2][4] = {};  // [tile][half][accumulator]
        for (int h = 0; h < 2; ++h) {
            const int e = 16 * h + 4 * t;
            const int a_lo = mc::weight_quad<T>(w_lo, u, e), a_hi = mc::weight_quad<T>(w_hi, u, e);
            int a2_lo = 0, a2_hi = 0;
            if (w2) {
                a2_lo = mc::weight_quad<T>(w2_lo, u, e);
                a2_hi = mc::weight_quad<T>(w2_hi, u, e);
            }
            for (int nt = 0; nt < NT; ++nt) {
                const int b = *reinterpret_cast<const int*>(b_rows[nt].q + u * 32 + e);
                mc::mma_16x8x16(sums[nt][h], a_lo, a_hi, b);
                if (w2) mc::mma_16x8x16(sums2[nt][h], a2_lo, a2_hi, b);  // w2 is uniform over the warp
            }
        }
        const mc::unit_scales s_lo = mc::weight_scales<T>(w_lo, u), s_hi = mc::weight_scales<T>(w_hi, u);
        mc::unit_scales s2_lo{}, s2_hi{};
        if (w2) {
            s2_lo = mc::weight_scales<T>(w2_lo, u);
            s2_hi = mc::weight_scales<T>(w2_hi, u);
        }
        for (int nt = 0; nt < NT; ++nt) {
            for (int i = 0; i < 4; ++i) {
                const act_row& a = e_rows[nt][i & 1];
                const float xa = mc::act_unit_scale(a, u), xs = mc::act_unit_sum(a, kind, u);
                const mc::unit_scales& s = i < 2 ? s_lo : s_hi;
                acc[nt][i] += (s.w0 * float(sums[nt][0][i]) + s.w1 * float(sums[nt][1][i])) * xa - s.m * xs;
                if (w2) {
                    const mc::unit_scales& s2 = i < 2 ? s2_lo : s2_hi;
                    acc2[nt][i] += (s2.w0 * float(sums2[nt][0][i]) + s2.w1 * float(sums2[nt][1][i])) * xa - s2.m * xs;
                }
            }
        }
    }
    for (int nt = 0; nt < NT; ++nt) {
        for (int i = 0; i < 4; ++i) {
            const int64_t o = o0 + g + (i < 2 ? 0 : 8), r = br.out(8 * nt + 2 * t + (i & 1));
            if (o < n_out && r >= 0) y[r * y_stride + o] = w2 ? mc::silu(acc[nt][i]) * acc2[nt][i] : acc[nt][i];
        }
    }
}

// Tensor cores for prompt batches (MOERUN_CUDA_MMA=0: the dp4a tiles instead, for comparisons).
bool use_tensor_cores() {
    static const bool on = [] {
        const char* v = std::getenv("MOERUN_CUDA_MMA");
        return !v || std::strcmp(v, "0") != 0;
    }();
    return on;
}

// ---- launching ----

struct matmul_launch {
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
    const expert_tile* tiles = nullptr;  // experts, a prompt batch: the rows grouped (group_experts)
    int64_t n_tiles = 0;
    // Experts, a row per block: a shared expert's n_shared rows after the m routed ones, through
    // shared (and shared2), row m + i reading act row shared_act0 + i.
    const mc_tensor* shared = nullptr;
    const mc_tensor* shared2 = nullptr;
    int64_t n_shared = 0;
    int64_t shared_act0 = 0;
};

template <tensor_type T>
void launch_type(const matmul_launch& l, cudaStream_t stream) {
    const int64_t n_out = l.w->ne[1], k = l.w->ne[0];
    const uint8_t* w = static_cast<const uint8_t*>(l.w->data);
    const uint8_t* w2 = l.w2 ? static_cast<const uint8_t*>(l.w2->data) : nullptr;
    const dim3 block(32 * k_warps_per_block);
    if constexpr (T == tensor_type::F32 || T == tensor_type::F16 || T == tensor_type::BF16) {
        if (!l.tiles && (l.ids || l.m < k_prompt_tile)) {
            joined_shared shared;
            if (l.n_shared > 0) shared = {static_cast<const uint8_t*>(l.shared->data), l.shared2 ? static_cast<const uint8_t*>(l.shared2->data) : nullptr, l.m, l.shared_act0};
            const float* x = reinterpret_cast<const float*>(l.act);
            const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
            const bool vec4 = k % 4 == 0 && l.w->row_stride % 16 == 0 && aligned(w) && (!w2 || aligned(w2)) && aligned(x) &&
                              (l.n_shared == 0 || (aligned(shared.w) && (!shared.w2 || aligned(shared.w2))));
            const dim3 grid(unsigned(n_out), unsigned(l.m + l.n_shared));
            mc::launch(mul_mat_vec_float<T>, grid, block, 0, stream, w, w2, l.w->row_stride, n_out, k, x, l.y, l.y_stride, l.ids, l.slot_of,
                       l.x_div, shared, vec4);
            return;
        }
    }
    if constexpr (mc::has_weight_quads(T)) {
        // Expert rows go through tensor cores only grouped into tiles: ungrouped (a decode step's
        // rows, each its own expert), they stay a row per block however many there are.
        if (use_tensor_cores() && (l.tiles || (!l.ids && l.m >= k_prompt_tile))) {
            constexpr int rows_per_block = 16 * k_warps_per_block, wide = 4;  // dense: 4 tiles of 8 output rows per warp
            if (l.tiles) {
                const dim3 grid(mc::blocks_for(n_out, rows_per_block), unsigned(l.n_tiles));
                mc::launch(mul_mat_mma<T, 1>, grid, block, 0, stream, w, w2, l.w->row_stride, n_out, k, l.act, l.kind, l.m, l.y, l.y_stride,
                           l.x_div, l.tiles);
            } else if (l.m >= wide * k_prompt_tile) {
                const dim3 grid(mc::blocks_for(n_out, rows_per_block), mc::blocks_for(l.m, wide * k_prompt_tile));
                mc::launch(mul_mat_mma<T, wide>, grid, block, 0, stream, w, w2, l.w->row_stride, n_out, k, l.act, l.kind, l.m, l.y,
                           l.y_stride, 1, static_cast<const expert_tile*>(nullptr));
            } else {
                const dim3 grid(mc::blocks_for(n_out, rows_per_block), mc::blocks_for(l.m, k_prompt_tile));
                mc::launch(mul_mat_mma<T, 1>, grid, block, 0, stream, w, w2, l.w->row_stride, n_out, k, l.act, l.kind, l.m, l.y, l.y_stride,
                           1, static_cast<const expert_tile*>(nullptr));
            }
            return;
        }
    }
    if (l.tiles) {
        const dim3 grid(mc::blocks_for(n_out, k_warps_per_block), unsigned(l.n_tiles));
        mc::launch(mul_mat_vec<T, k_prompt_tile>, grid, block, 0, stream, w, w2, l.w->row_stride, n_out, k, l.act, l.kind, l.m, l.y,
                   l.y_stride, nullptr, nullptr, l.x_div, l.tiles, joined_shared{});
    } else if (l.ids || l.m < k_prompt_tile) {
        joined_shared shared;
        if (l.n_shared > 0) {
            shared.w = static_cast<const uint8_t*>(l.shared->data);
            shared.w2 = l.shared2 ? static_cast<const uint8_t*>(l.shared2->data) : nullptr;
            shared.first = l.m;
            shared.act0 = l.shared_act0;
        }
        const dim3 grid(mc::blocks_for(n_out, k_warps_per_block), unsigned(l.m + l.n_shared));
        mc::launch(mul_mat_vec<T, 1>, grid, block, 0, stream, w, w2, l.w->row_stride, n_out, k, l.act, l.kind, l.m, l.y, l.y_stride,
                   l.ids, l.slot_of, l.x_div, static_cast<const expert_tile*>(nullptr), shared);
    } else {
        const dim3 grid(mc::blocks_for(n_out, k_warps_per_block), mc::blocks_for(l.m, k_prompt_tile));
        mc::launch(mul_mat_vec<T, k_prompt_tile>, grid, block, 0, stream, w, w2, l.w->row_stride, n_out, k, l.act, l.kind, l.m, l.y,
                   l.y_stride, nullptr, nullptr, 1, static_cast<const expert_tile*>(nullptr), joined_shared{});
    }
}

bool launch_any(const matmul_launch& l, cudaStream_t stream) {
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

// A prompt batch's expert rows grouped by slot into l->tiles (ctx->tiles), where that pays: two
// tiles of rows or more (a decode step's few rows are all different experts, and stay a row per
// block without the grouping kernel), and a slot count whose tallies fit in shared memory.
// Otherwise l is left as it is.
constexpr int k_max_grouped_slots = 2048;  // 24 KiB of tallies
mc_status group_experts(mc_context* ctx, matmul_launch* l) {
    const int64_t n_slots = l->w->ne[2];
    if (!l->ids || l->m < 2 * k_prompt_tile || n_slots > k_max_grouped_slots) return MC_OK;
    const int64_t max_tiles = max_expert_tiles(l->m, n_slots);
    MC_TRY(mc::reserve(ctx, &ctx->tiles, &ctx->tiles_bytes, size_t(max_tiles) * sizeof(expert_tile), "expert tiles"));
    expert_tile* tiles = static_cast<expert_tile*>(ctx->tiles);
    mc::launch(group_rows_by_expert, 1, 1024, size_t(3 * n_slots) * sizeof(int), ctx->stream, l->ids, l->slot_of, l->m, int(n_slots), tiles,
               max_tiles);
    MC_TRY(mc::check_launch(ctx, "group_rows_by_expert"));
    l->tiles = tiles;
    l->n_tiles = max_tiles;
    return MC_OK;
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

mc_status mc::op_matmul_group(mc_context* ctx, const mc_tensor* w, float* const* y, int n, const float* x, int64_t m) {
    if (m <= 0) return MC_OK;
    act_kind kind{};
    const uint8_t* act = nullptr;  // x in dot type `kind`, as the weights before read it (ctx->act, or x itself for F32)
    for (int i = 0; i < n; ++i) {
        if (w[i].ne[0] != w[0].ne[0]) return mc::fail(ctx, MC_INVALID_ARGUMENT, "cuda: matmul_group: the weights' rows differ in length");
        act_kind wanted;
        // Another dot type overwrites ctx->act: the stream runs the products before that read it first.
        if (!act || !mc::act_kind_of(w[i].type, &wanted) || wanted != kind) MC_TRY(prepare_act(ctx, w[i].type, x, w[i].ne[0], m, &kind, &act));
        if (!launch_any({&w[i], nullptr, act, kind, m, y[i], w[i].ne[1], nullptr, nullptr, 1}, ctx->stream)) {
            return mc::fail(ctx, MC_UNSUPPORTED, "cuda: matmul: weight type %u has no CUDA kernel", w[i].type);
        }
        MC_TRY(mc::check_launch(ctx, "mul_mat_vec"));
    }
    return MC_OK;
}

namespace {

// Whether `shared` (and shared2) can join the passes of experts `w` (and w2): same types, shapes and rows.
bool joins(const mc_tensor* shared, const mc_tensor* w) {
    return shared->type == w->type && shared->ne[0] == w->ne[0] && shared->ne[1] == w->ne[1] && shared->row_stride == w->row_stride;
}

// The experts' pass l, then its shared expert's rows (l.n_shared of them) after the routed ones:
// in the same launch where the routed rows are a row per block, else as a dense product of its own
// over the same activation blocks.
mc_status launch_experts(mc_context* ctx, matmul_launch l, const char* what) {
    MC_TRY(group_experts(ctx, &l));
    if (l.n_shared == 0 || !l.tiles) {
        launch_any(l, ctx->stream);
        return mc::check_launch(ctx, what);
    }
    matmul_launch shared{l.shared, l.shared2, l.act + mc::act_row_bytes(l.kind, l.w->ne[0]) * size_t(l.shared_act0), l.kind, l.n_shared,
                         l.y + l.m * l.y_stride, l.y_stride, nullptr, nullptr, 1};
    l.n_shared = 0;
    launch_any(l, ctx->stream);
    MC_TRY(mc::check_launch(ctx, what));
    launch_any(shared, ctx->stream);
    return mc::check_launch(ctx, what);
}

}  // namespace

mc_status mc::op_moe_gate_up(mc_context* ctx, const mc_tensor* gate, const mc_tensor* up, const float* x, const int32_t* ids,
                             const int32_t* slot_of, int n_tokens, int n_used, float* h, const mc_tensor* shared_gate,
                             const mc_tensor* shared_up) {
    if (n_tokens <= 0) return MC_OK;
    if (gate->ne[0] != up->ne[0] || gate->ne[1] != up->ne[1] || gate->ne[2] != up->ne[2]) {
        return mc::fail(ctx, MC_INVALID_ARGUMENT, "cuda: moe_gate_up: gate and up experts differ in shape");
    }
    const bool with_shared = shared_gate || shared_up;
    if (with_shared && (!shared_gate || !shared_up || !ids || gate->type != up->type || !joins(shared_gate, gate) || !joins(shared_up, up))) {
        return mc::fail(ctx, MC_INVALID_ARGUMENT, "cuda: moe_gate_up: the shared expert differs from the routed ones in type or shape");
    }
    const int64_t rows = int64_t(n_tokens) * n_used, n_ff = gate->ne[1];
    act_kind kind;
    const uint8_t* act;
    MC_TRY(prepare_act(ctx, gate->type, x, gate->ne[0], n_tokens, &kind, &act));
    matmul_launch l{gate, up, act, kind, rows, h, n_ff, ids, slot_of, n_used};
    if (gate->type == up->type) {  // one pass: both products of a weight unit, then SwiGLU
        if (with_shared) {
            l.shared = shared_gate;
            l.shared2 = shared_up;
            l.n_shared = n_tokens;  // h row rows + t: token t's, act row t
        }
        return launch_experts(ctx, l, "mul_mat_vec (experts, gate/up)");
    }
    // Gate and up of different types (llama.cpp's low-bit mixes, e.g. IQ1_S gate and IQ1_M up):
    // gate into h, up into scratch, each with its own activation blocks (stream order keeps the
    // gate pass's reads before the second quantization), then h = silu(h) * up.
    l.w2 = nullptr;
    MC_TRY(launch_experts(ctx, l, "mul_mat_vec (experts, gate)"));
    MC_TRY(mc::reserve(ctx, &ctx->up, &ctx->up_bytes, size_t(rows * n_ff) * sizeof(float), "experts' up rows"));
    l.y = static_cast<float*>(ctx->up);
    MC_TRY(prepare_act(ctx, up->type, x, up->ne[0], n_tokens, &l.kind, &l.act));
    l.w = up;
    MC_TRY(launch_experts(ctx, l, "mul_mat_vec (experts, up)"));
    return mc::op_swiglu(ctx, h, l.y, rows * n_ff);
}

mc_status mc::op_moe_down(mc_context* ctx, const mc_tensor* down, const float* h, const int32_t* ids, const int32_t* slot_of, int64_t rows,
                          float* y, const mc_tensor* shared_down, int64_t n_shared) {
    if (rows <= 0) return MC_OK;
    if (shared_down && (!ids || n_shared <= 0 || !joins(shared_down, down))) {
        return mc::fail(ctx, MC_INVALID_ARGUMENT, "cuda: moe_down: the shared expert differs from the routed ones in type or shape");
    }
    if (!shared_down) n_shared = 0;
    act_kind kind;
    const uint8_t* act;
    MC_TRY(prepare_act(ctx, down->type, h, down->ne[0], rows + n_shared, &kind, &act));
    matmul_launch l{down, nullptr, act, kind, rows, y, down->ne[1], ids, slot_of, 1};
    l.shared = shared_down;
    l.n_shared = n_shared;
    l.shared_act0 = rows;  // h row rows + i: the shared expert's i-th
    return launch_experts(ctx, l, "mul_mat_vec (experts, down)");
}
