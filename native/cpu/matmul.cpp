#include "matmul.h"

#include <algorithm>
#include <cstdint>

#include "../base/error.h"
#include "interleave.h"
#include "ops.h"

namespace moerun {

namespace {

// Converts the m activation rows to the weights' dot type (F32 weights use x as is) and returns
// the converted rows and their stride in bytes.
std::pair<const uint8_t*, size_t> convert_activations(thread_pool& pool, const cpu_kernels& wt, const float* x, int64_t m, int64_t k,
                                                      std::vector<uint8_t>& scratch) {
    if (wt.vec_dot_type == tensor_type::F32) return {reinterpret_cast<const uint8_t*>(x), size_t(k) * sizeof(float)};
    const size_t row = act_row_size(wt.vec_dot_type, k);
    const from_float_fn from_float = act_from_float(wt.vec_dot_type);
    // Rows from a 64-byte boundary, so that the amx path's aligned quants are (cpu/kernels.h).
    scratch.resize(row * size_t(m) + k_act_quants_align);
    const uintptr_t misalign = reinterpret_cast<uintptr_t>(scratch.data()) % k_act_quants_align;
    uint8_t* const rows = scratch.data() + (misalign ? k_act_quants_align - misalign : 0);
    // A decode step's rows (one token, or one per selected expert: 8 x 2048 floats) convert on the
    // calling thread; a prompt batch's on the pool.
    pool.parallel_for(m, rows_per_task(k), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) from_float(x + i * k, rows + size_t(i) * row, k);
    });
    return {rows, row};
}

const cpu_kernels& dot_traits(const tensor& w) {
    const cpu_kernels& wt = cpu_kernels_of(w.type);
    if (!wt.vec_dot) {
        throw error(error_code::unsupported, format("matmul: tensor '%s' has type %s, which has no dot-product kernel",
                                                    w.name ? w.name->c_str() : "?", tensor_type_name(w.type)));
    }
    return wt;
}

// Which summation order a float weight's matmul uses (cpu/kernels.h): llama.cpp's GEMM order
// where its dense GEMM takes the shape (rows % 4 == 0, k % L == 0), else its vector-dot order.
// Expert matmuls always use the vector-dot order, as llama.cpp's mul_mat_id does.
bool dense_uses_unrolled(const cpu_kernels& wt, int64_t k, int64_t rows) {
    return wt.vec_dot_unrolled && (wt.gemm_lanes == 0 || k % wt.gemm_lanes != 0 || rows % 4 != 0);
}

// y[i * n + r] = dot(weight row r, activation row i) for weight rows [r0, r1) and activation rows
// [i0, i1). With several activation rows the type's multi-row dot takes them in groups, so each
// weight block is unpacked once per group instead of once per row; the group's activations stay
// in L1 while the tile's weight rows pass through. `unrolled`: the vector-dot order, row by row.
// float_tile_rows: weight rows per float register tile (matmul_rows; 0: the choice below).
// `interleaved`: the weights are in the interleaved layout (cpu/interleave.h; r0 and r1 multiples
// of 16), which only the type's interleaved tile reads.
void dot_tile(const cpu_kernels& wt, bool unrolled, int64_t k, const uint8_t* wb, size_t w_row, int64_t r0, int64_t r1,
              const uint8_t* xb, size_t xq_row, int64_t i0, int64_t i1, float* y, int64_t n, int float_tile_rows = 0,
              bool interleaved = false) {
    constexpr int64_t k_act_group = 8;
    if (interleaved) {
        wt.int8_tile_interleaved(k, wb + size_t(r0) * w_row, w_row, r1 - r0, xb + size_t(i0) * xq_row, xq_row, i1 - i0, y + i0 * n + r0, n);
        return;
    }
    if (unrolled) {
        for (int64_t i = i0; i < i1; ++i) {
            const uint8_t* xi = xb + size_t(i) * xq_row;
            for (int64_t r = r0; r < r1; ++r) wt.vec_dot_unrolled(k, &y[i * n + r], wb + size_t(r) * w_row, xi);
        }
        return;
    }
    if (wt.gemm_tile) {  // float weights: register-blocked tiles of up to 4 weight rows
        // When one tile takes all the activations (decode), one weight row per tile: the weights
        // then stream from memory in one sequential pass. Four rows at a time read four streams a
        // row apart (4 KiB for k = 2048 in F16), which ran a 1B F16 model's decode at 9.7 tok/s
        // against 17.3 (1 thread, Zen 4). But one row is one chain of fused multiply-adds (the
        // GEMM order has one accumulator per output), gemm_lanes elements per FMA latency: where
        // that is under 32 bytes (AVX2's F16: 8 lanes of 2 bytes) the chain is slower than memory,
        // and four rows run four chains. AVX2 F16 decode, bench_matmul --m 1 --k 2048 (Zen 5):
        // 2 threads, n 65536 (from DRAM) 30-34 -> 41-51 GB/s, n 256 (in cache) 30-34 -> 87-94.
        const bool one_chain_keeps_up = int64_t(wt.gemm_lanes) * int64_t(wt.type_size) >= 32;
        const int64_t nw_max = float_tile_rows > 0                                 ? std::min(float_tile_rows, 4)
                               : i1 - i0 <= wt.gemm_tile_x && one_chain_keeps_up ? 1
                                                                                    : 4;
        for (int64_t r = r0; r < r1; r += nw_max) {
            const int64_t nw = std::min<int64_t>(nw_max, r1 - r);
            for (int64_t i = i0; i < i1; i += wt.gemm_tile_x) {
                wt.gemm_tile(k, wb + size_t(r) * w_row, w_row, nw, xb + size_t(i) * xq_row, xq_row,
                             std::min<int64_t>(wt.gemm_tile_x, i1 - i), y + i * n + r, n);
            }
        }
        return;
    }
    if (wt.int8_tile) {  // integer types: each tile of rows unpacked once for every activation row
        for (int64_t r = r0; r < r1; r += wt.int8_tile_rows) {
            wt.int8_tile(k, wb + size_t(r) * w_row, w_row, std::min<int64_t>(wt.int8_tile_rows, r1 - r), xb + size_t(i0) * xq_row, xq_row,
                         i1 - i0, y + i0 * n + r, n);
        }
        return;
    }
    if (wt.vec_dot_n && i1 - i0 >= 2) {
        for (int64_t i = i0; i < i1; i += k_act_group) {
            const int64_t ny = std::min(k_act_group, i1 - i);
            const uint8_t* xi = xb + size_t(i) * xq_row;
            for (int64_t r = r0; r < r1; ++r) wt.vec_dot_n(k, y + i * n + r, n, wb + size_t(r) * w_row, xi, xq_row, ny);
        }
        return;
    }
    for (int64_t i = i0; i < i1; ++i) {
        const uint8_t* xi = xb + size_t(i) * xq_row;
        float* yi = y + i * n;
        for (int64_t r = r0; r < r1; ++r) wt.vec_dot(k, &yi[r], wb + size_t(r) * w_row, xi);
    }
}

// Weight rows per dot_tile call: 16, or the int8 tile's rows where it takes more (the amx path
// packs a few activation rows once for all of them).
int64_t row_tile(const cpu_kernels& wt) { return std::max<int64_t>(16, wt.int8_tile ? wt.int8_tile_rows : 0); }

// y_j = x . w_j^T for `count` weights sharing row length and type (their row counts may differ),
// threaded over the concatenated output rows: one activation conversion and one synchronization
// for all of them. Threads take contiguous blocks of rows (and the tails of others' when done:
// thread_pool::run_shares); within a block, a few weight rows are reused across all m activation
// rows while they are hot in cache.
void matmul_multi(thread_pool& pool, const tensor* const* ws, float* const* ys, int count, const float* x, int64_t m,
                  std::vector<uint8_t>& scratch, activation_view view) {
    const tensor& w0 = *ws[0];
    const int64_t k = w0.ne[0];
    const cpu_kernels& wt = dot_traits(w0);
    // Plain variables, not a structured binding: lambdas below capture them, which clang < 16 refuses.
    const auto converted = convert_activations(pool, wt, x, m, k, scratch);
    const uint8_t* const xb = converted.first;
    const size_t xq_row = converted.second;
    const bool view_unrolled = view == activation_view::permuted && wt.vec_dot_type == tensor_type::F32 && wt.vec_dot_unrolled;
    const size_t w_row = w0.row_bytes();
    const int64_t k_row_tile = row_tile(wt);
    // The units are tiles of k_row_tile rows, weight after weight (a tile never crosses into the
    // next weight); the threads' shares are equal runs of them.
    int64_t first_tile[5] = {0};  // first_tile[j] = tiles of weights 0..j-1
    for (int j = 0; j < count; ++j) first_tile[j + 1] = first_tile[j] + (ws[j]->ne[1] + k_row_tile - 1) / k_row_tile;
    const int64_t n_tiles = first_tile[count];
    const int nth = int(std::min<int64_t>(pool.size(), n_tiles));
    std::vector<int64_t> bounds(size_t(nth) + 1);
    for (int i = 0; i <= nth; ++i) bounds[size_t(i)] = n_tiles * i / nth;
    pool.run_shares(nth, bounds.data(), [&](int64_t tile) {
        int j = 0;
        while (tile >= first_tile[j + 1]) ++j;
        const int64_t n = ws[j]->ne[1];
        const int64_t r0 = (tile - first_tile[j]) * k_row_tile, r1 = std::min(n, r0 + k_row_tile);
        const uint8_t* wb = static_cast<const uint8_t*>(ws[j]->data);
        dot_tile(wt, view_unrolled || dense_uses_unrolled(wt, k, n), k, wb, w_row, r0, r1, xb, xq_row, 0, m, ys[j], n, 0, ws[j]->interleaved);
    });
}

}  // namespace

void matmul(thread_pool& pool, const tensor& w, const float* x, int64_t m, float* y, std::vector<uint8_t>& scratch,
            activation_view view) {
    const tensor* ws[] = {&w};
    float* ys[] = {y};
    matmul_multi(pool, ws, ys, 1, x, m, scratch, view);
}

void matmul_group(thread_pool& pool, std::initializer_list<matmul_job> jobs, const float* x, int64_t m, std::vector<uint8_t>& scratch) {
    const tensor* ws[4] = {};
    float* ys[4] = {};
    int count = 0;
    if (jobs.size() == 0) return;
    for (const matmul_job& j : jobs) {
        const tensor& w0 = *jobs.begin()->w;
        if (count == 4 || j.w->type != w0.type || j.w->ne[0] != w0.ne[0] || j.w->interleaved != w0.interleaved) {
            for (const matmul_job& each : jobs) matmul(pool, *each.w, x, m, each.y, scratch);  // mixed types or layouts: one pass each
            return;
        }
        ws[count] = j.w;
        ys[count] = j.y;
        ++count;
    }
    matmul_multi(pool, ws, ys, count, x, m, scratch, activation_view::contiguous);
}

void matmul_experts(thread_pool& pool, std::initializer_list<matmul_job> jobs, const std::vector<expert_batch>& batches,
                    const float* x, int64_t m, std::vector<uint8_t>& scratch, std::initializer_list<const tensor*> shared) {
    if (jobs.size() == 0 || batches.empty()) return;
    const tensor& w0 = *jobs.begin()->w;
    const bool has_shared = std::any_of(batches.begin(), batches.end(), [](const expert_batch& b) { return b.expert == k_shared_expert; });
    if (has_shared) {
        if (shared.size() != jobs.size()) throw error(error_code::internal, "matmul_experts: a shared batch needs one shared weight per job");
        for (size_t j = 0; j < jobs.size(); ++j) {
            const tensor& sw = *shared.begin()[j];
            const tensor& w = *jobs.begin()[j].w;
            if (sw.type != w.type || sw.ne[0] != w.ne[0] || sw.ne[1] != w.ne[1] || sw.ne[2] != 1 || sw.row_bytes() != w.row_bytes() ||
                sw.interleaved != w.interleaved) {
                throw error(error_code::internal, "matmul_experts: a shared weight must have its experts' type and shape");
            }
        }
    }
    for (const matmul_job& j : jobs) {
        if (j.w->type != w0.type || j.w->ne[0] != w0.ne[0] || j.w->ne[1] != w0.ne[1] || j.w->interleaved != w0.interleaved) {
            // Mixed types or layouts: one pass each.
            for (size_t i = 0; i < jobs.size(); ++i) {
                if (has_shared) matmul_experts(pool, {jobs.begin()[i]}, batches, x, m, scratch, {shared.begin()[i]});
                else matmul_experts(pool, {jobs.begin()[i]}, batches, x, m, scratch);
            }
            return;
        }
    }
    const int64_t k = w0.ne[0], n = w0.ne[1];
    const cpu_kernels& wt = dot_traits(w0);
    // Plain variables, not a structured binding: lambdas below capture them, which clang < 16 refuses.
    const auto converted = convert_activations(pool, wt, x, m, k, scratch);
    const uint8_t* const xb = converted.first;
    const size_t xq_row = converted.second;
    const size_t w_row = w0.row_bytes();
    const int64_t n_batches = int64_t(batches.size());
    const matmul_job* job_list = jobs.begin();
    const int64_t k_row_tile = row_tile(wt);
    // The rows run in segments (weight j, batch b) of n rows, segment s = j * n_batches + b. A row
    // of batch b costs about k_row_fixed_cost + count_b token dots (the weights' unpacking and
    // reading is paid once per row, the dots once per token), so the threads split the rows by
    // that cost, not by their number: in a prompt batch the experts' token counts differ (a
    // popular expert has hundreds, most a few), and equal row counts left the threads that drew
    // the popular experts working while the others waited. Each thread's range starts and ends
    // on a whole tile of its segment; decode (one token per batch) splits as evenly as before.
    constexpr int64_t k_row_fixed_cost = 2;
    const int64_t n_segments = int64_t(jobs.size()) * n_batches;
    std::vector<int64_t> cost_before(size_t(n_segments) + 1, 0);  // [s]: the cost of segments 0..s-1
    for (int64_t seg = 0; seg < n_segments; ++seg) {
        cost_before[size_t(seg) + 1] = cost_before[size_t(seg)] + n * (k_row_fixed_cost + batches[size_t(seg % n_batches)].count);
    }
    const int64_t total_cost = cost_before.back();
    // The first row at or after cost c, on a tile boundary of its segment.
    const auto row_at_cost = [&](int64_t c) -> int64_t {
        if (c >= total_cost) return n_segments * n;
        const int64_t seg = int64_t(std::upper_bound(cost_before.begin(), cost_before.end(), c) - cost_before.begin()) - 1;
        const int64_t row_cost = k_row_fixed_cost + batches[size_t(seg % n_batches)].count;
        const int64_t rows = (c - cost_before[size_t(seg)] + row_cost - 1) / row_cost;
        return seg * n + std::min(n, (rows + k_row_tile - 1) / k_row_tile * k_row_tile);
    };
    // The units are the segments' tiles; thread i's share starts at the tile where cost
    // total * i / nth falls.
    const int64_t tiles_per_segment = (n + k_row_tile - 1) / k_row_tile;
    const int64_t n_tiles = n_segments * tiles_per_segment;
    const auto tile_of_row = [&](int64_t row) { return row / n * tiles_per_segment + (row % n) / k_row_tile; };
    const int nth = int(std::min<int64_t>(pool.size(), n_tiles));
    std::vector<int64_t> bounds(size_t(nth) + 1);
    for (int i = 0; i <= nth; ++i) bounds[size_t(i)] = i == 0 ? 0 : i == nth ? n_tiles : tile_of_row(row_at_cost(total_cost * i / nth));
    pool.run_shares(nth, bounds.data(), [&](int64_t tile) {
        const int64_t seg = tile / tiles_per_segment;
        const int64_t j = seg / n_batches, b = seg % n_batches;  // weight, batch
        const int64_t r0 = (tile % tiles_per_segment) * k_row_tile, r1 = std::min(n, r0 + k_row_tile);
        const expert_batch& eb = batches[size_t(b)];
        const bool is_shared = eb.expert == k_shared_expert;
        const uint8_t* wb = is_shared ? static_cast<const uint8_t*>(shared.begin()[j]->data)
                                      : static_cast<const uint8_t*>(job_list[j].w->data) + size_t(eb.expert) * size_t(n) * w_row;
        // Experts sum in the vector-dot order (llama.cpp's mul_mat_id), a shared expert as its dense matmul.
        const bool unrolled = is_shared ? dense_uses_unrolled(wt, k, n) : wt.vec_dot_unrolled != nullptr;
        dot_tile(wt, unrolled, k, wb, w_row, r0, r1, xb, xq_row, eb.first, eb.first + eb.count, job_list[j].y, n, 0, w0.interleaved);
    });
}

void matmul_rows(const cpu_kernels& wt, int64_t k, const uint8_t* w, size_t w_row, int64_t rows, const uint8_t* x, size_t x_row, int64_t nx,
                 float* y, int64_t y_stride, int float_tile_rows) {
    dot_tile(wt, dense_uses_unrolled(wt, k, rows), k, w, w_row, 0, rows, x, x_row, 0, nx, y, y_stride, float_tile_rows);
}

void tensor_get_row(const tensor& w, int64_t r, float* dst) {
    const cpu_kernels& wt = cpu_kernels_of(w.type);
    if (!wt.to_float) {
        throw error(error_code::unsupported, format("tensor '%s' has type %s, which cannot be dequantized",
                                                    w.name ? w.name->c_str() : "?", tensor_type_name(w.type)));
    }
    if (w.interleaved) {  // the row's dwords gathered from its group (cpu/interleave.h)
        thread_local std::vector<uint8_t> row;
        row.resize(w.row_bytes());
        deinterleave_row(w.row(r / k_interleave_rows * k_interleave_rows), w.row_bytes(), wt.type_size, int(r % k_interleave_rows), row.data());
        wt.to_float(row.data(), dst, w.ne[0]);
        return;
    }
    wt.to_float(w.row(r), dst, w.ne[0]);
}

}  // namespace moerun
