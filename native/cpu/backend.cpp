// The CPU backend: today's kernels (cpu/matmul, cpu/ffn, cpu/ops, the ISA tables of
// cpu/dispatch) behind backend/backend.h. Activations and the KV cache are host memory.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

#include "../backend/registry.h"
#include "../base/error.h"
#include "../base/memory.h"
#include "../base/thread_pool.h"
#include "dispatch.h"
#include "ffn.h"
#include "interleave.h"
#include "matmul.h"
#include "ops.h"
#include "vector_ops.h"

namespace moerun {
namespace {

class host_buffer final : public buffer {
public:
    explicit host_buffer(size_t n) : data_(n) {}
    float* data() override { return data_.data(); }
    size_t size() const override { return data_.size(); }

private:
    std::vector<float> data_;
};

// Per layer: keys as (n_head_kv, n_ctx) rows of head_dim_k elements of `type`: each kv head's
// keys are contiguous, so that a decode step reads them as one sequential stream (position-major,
// a head's 256-byte F16 rows lay 1 KiB apart for Ling-mini's 4 kv heads, and its decode attention
// read them at a third of the speed). Values of an F32 or F16 cache are stored transposed, as
// llama.cpp stores them without flash attention: (n_head_kv, head_dim_v) rows of v_len positions
// each, so that weighting them by the probabilities is a matmul over contiguous rows
// (cpu_backend::attention). Other types: values as (n_head_kv, n_ctx) rows of head_dim_v. MLA: v
// empty (values are the latent's first part).
struct cpu_kv_cache final : kv_cache {
    const model_config* config = nullptr;  // the model it was made for
    tensor_type type = tensor_type::F16;
    bool mla = false;
    bool v_transposed = false;
    int64_t n_ctx = 0;                        // positions per kv head of k (and of untransposed v)
    int64_t v_len = 0;                        // transposed values: positions per row (n_ctx, padded)
    size_t k_row_bytes = 0, v_row_bytes = 0;  // one head's key / value row (v: untransposed caches)
    std::vector<std::vector<uint8_t>> k, v;
    size_t bytes() const override {
        size_t total = 0;
        for (size_t i = 0; i < k.size(); ++i) total += k[i].size() + v[i].size();
        return total;
    }
};

// Caches whose values are kept transposed: element types with a float dot in llama.cpp's order.
bool stores_values_transposed(tensor_type type) { return type == tensor_type::F32 || type == tensor_type::F16; }

// Rows of transposed values are padded to a multiple of 16 positions: every dot over them runs to
// a multiple of its lanes (16 at most: AVX-512's and NEON's), and the pad's zero probabilities add
// nothing. A context of a multiple of 16 tokens takes exactly the bytes of the untransposed layout
// (what runtime/placement.cpp plans for).
constexpr int64_t k_value_row_align = 16;
int64_t align_positions(int64_t n) { return (n + k_value_row_align - 1) / k_value_row_align * k_value_row_align; }

class cpu_backend final : public backend {
public:
    explicit cpu_backend(const backend_params& p) : path_(cpu_active_path()) {
        const int n_threads = p.n_threads > 0 ? p.n_threads : physical_core_count();
        pool_ = std::make_unique<thread_pool>(std::min(n_threads, 256), p.pin_threads);
    }

    std::string name() const override { return std::string("cpu (") + cpu_path_name(path_) + ")"; }
    std::string kernel_path() const override { return cpu_path_name(path_); }
    int threads() const override { return pool_->size(); }
    bool threads_pinned() const override { return pool_->pinned(); }

    uint64_t arrange_host_weights(model_weights& w, const std::function<uint8_t*(const void*)>& dst, const weight_reader& read,
                                  const load_step_fn& step) override {
        return interleave_weights(w, *pool_, dst, read, step);
    }
    std::unique_ptr<buffer> alloc(size_t n_floats) override { return std::make_unique<host_buffer>(n_floats); }

    std::unique_ptr<kv_cache> new_kv_cache(const model_config& c, int n_ctx, tensor_type type) override;

    // Workers spin between the ops of a forward call, and sleep outside one.
    void begin() override {
        if (depth_++ == 0) burst_.emplace(*pool_);
    }
    void end() override {
        if (--depth_ == 0) burst_.reset();
    }

    // The row-wise ops below run on the pool when a prompt batch gives them enough rows
    // (cpu/ops.h, rows_per_task).
    void get_rows(const tensor& w, const int32_t* ids, int n, float* out) override {
        pool_->parallel_for(n, rows_per_task(w.ne[0]), [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) tensor_get_row(w, ids[i], out + size_t(i) * size_t(w.ne[0]));
        });
    }
    void rms_norm(const float* x, const tensor& weight, float* out, int64_t rows, int64_t n, int64_t stride, float eps) override {
        const float* wv = weight ? static_cast<const float*>(weight.data) : nullptr;
        pool_->parallel_for(rows, rows_per_task(n), [&](int64_t b, int64_t e) {
            if (stride == n) return rms_norm_rows(x + b * n, wv, out + b * n, e - b, n, eps);
            for (int64_t r = b; r < e; ++r) rms_norm_rows(x + r * stride, wv, out + r * stride, 1, n, eps);
        });
    }
    void rope(float* x, int n_tokens, int64_t token_stride, int n_heads, int head_dim, int n_rot, int pos0, const model_config& c) override {
        pool_->parallel_for(n_tokens, rows_per_task(int64_t(n_heads) * head_dim), [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) rope_apply(x + size_t(i) * size_t(token_stride), n_heads, head_dim, n_rot, pos0 + int(i), c);
        });
    }
    void matmul(const tensor& w, const float* x, int64_t m, float* y, activation_view view) override {
        if (observer_) observer_->on_matmul(w, x, m, w.ne[0]);
        moerun::matmul(*pool_, w, x, m, y, quant_scratch_, view);
    }
    void matmul_to_host(const tensor& w, const float* x, int64_t m, float* host_y) override {
        if (observer_) observer_->on_matmul(w, x, m, w.ne[0]);
        moerun::matmul(*pool_, w, x, m, host_y, quant_scratch_);
    }
    void matmul_group(std::initializer_list<matmul_job> jobs, const float* x, int64_t m) override {
        if (observer_) {
            for (const matmul_job& j : jobs) observer_->on_matmul(*j.w, x, m, j.w->ne[0]);
        }
        moerun::matmul_group(*pool_, jobs, x, m, quant_scratch_);
    }
    void copy(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols) override {
        pool_->parallel_for(rows, rows_per_task(cols), [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; ++r) std::copy_n(src + r * src_stride, cols, dst + r * dst_stride);
        });
    }
    void add(float* x, const float* y, int64_t n) override {
        pool_->parallel_for(n, rows_per_task(1), [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) x[i] += y[i];
        });
    }
    void add_bias(float* y, const tensor& b, int64_t rows, int64_t dim) override {
        const float* bv = static_cast<const float*>(b.data);
        pool_->parallel_for(rows, rows_per_task(dim), [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t j = 0; j < dim; ++j) y[r * dim + j] += bv[j];
        });
    }
    void kv_store(kv_cache& kv, int layer, const float* k, const float* v, int pos0, int n) override;
    void attention(kv_cache& kv, int layer, const float* q, int n, int pos0, float* out) override;
    void ffn_dense(const tensor& gate, const tensor& up, const tensor& down, const float* x, int n, float* out) override {
        moerun::ffn_dense(*pool_, gate, up, down, x, n, int(down.ne[1]), out, ffn_, observer_);
    }
    void ffn_moe(const model_config& c, const layer_weights& l, const float* x, int n, float* out) override {
        moerun::ffn_moe(*pool_, c, l, x, n, out, ffn_, observer_);
    }
    void ffn_moe_experts_host(const model_config& c, const layer_weights& l, const float* x, int n, const int32_t* selected,
                              const float* weights, const uint8_t* experts, float* out) override {
        moerun::ffn_moe_experts(*pool_, c, l, x, n, selected, weights, experts, out, ffn_, observer_);
    }

private:
    cpu_path path_;
    std::unique_ptr<thread_pool> pool_;
    std::optional<thread_pool::burst> burst_;
    int depth_ = 0;
    // Scratch reused across ops and calls (one forward call at a time: model::compute_mutex).
    std::vector<uint8_t> quant_scratch_;
    ffn_scratch ffn_;
    // Per thread, for attention: one task's score rows, converted queries and probabilities,
    // and (caches whose values are not transposed) row pointers.
    struct attention_scratch {
        std::vector<float> scores;           // (queries, padded positions)
        std::vector<uint8_t> queries;        // (queries of one token, the dot type's row)
        std::vector<uint8_t> probabilities;  // (queries of one token, the dot type's row)
        std::vector<float> v_rows;           // k_value_block dequantized value rows
        std::vector<const float*> p;         // per query: its probabilities
        std::vector<float*> out;             // per query: its output row
        std::vector<int64_t> n_kv;           // per query: its causal length
    };
    std::vector<attention_scratch> attention_scratch_;
    std::vector<uint8_t> mla_values_;  // MLA over an F32/F16 cache: the latent values, transposed
};

std::unique_ptr<kv_cache> cpu_backend::new_kv_cache(const model_config& c, int n_ctx, tensor_type type) {
    if (type != tensor_type::F32 && type != tensor_type::F16 && type != tensor_type::BF16 && type != tensor_type::Q8_0) {
        throw error(error_code::invalid_argument, format("session: KV cache type %s is not one of F32, F16, BF16, Q8_0", tensor_type_name(type)));
    }
    const cpu_kernels& kt = cpu_kernels_of(type);
    if (!kt.from_float || !kt.to_float) {
        throw error(error_code::unsupported, format("session: KV cache type %s has no kernels in this build", tensor_type_name(type)));
    }
    if (c.head_dim_k % kt.block_size != 0 || c.head_dim_v % kt.block_size != 0) {
        throw error(error_code::invalid_argument,
                    format("session: KV cache type %s needs head sizes that are multiples of %lld, but this model's are %d (key) and %d (value)",
                           tensor_type_name(type), (long long)kt.block_size, c.head_dim_k, c.head_dim_v));
    }
    // Refuse what the host cannot hold before allocating anything: with overcommit a huge
    // allocation succeeds on paper and the process is killed when the cache fills.
    const bool v_transposed = !c.mla && stores_values_transposed(type);
    const int64_t v_len = v_transposed ? align_positions(n_ctx) : 0;
    const size_t k_layer = size_t(n_ctx) * size_t(c.n_head_kv) * row_size(type, c.head_dim_k);
    const size_t v_layer = c.mla          ? 0
                           : v_transposed ? size_t(c.n_head_kv) * size_t(c.head_dim_v) * size_t(v_len) * kt.type_size
                                          : size_t(n_ctx) * size_t(c.n_head_kv) * row_size(type, c.head_dim_v);
    const long double need = (long double)c.n_layer * (long double)(k_layer + v_layer);
    const uint64_t available = host_memory_available();
    if (need > (long double)available) {
        throw error(error_code::out_of_memory,
                    format("session: a KV cache of %d tokens needs %.2f GiB, but this host has %.2f GiB available for it", n_ctx,
                           double(need / (1024.0L * 1024 * 1024)), double(available) / (1024.0 * 1024 * 1024)));
    }
    auto cache = std::make_unique<cpu_kv_cache>();
    cache->type = type;
    cache->mla = c.mla;
    cache->v_transposed = v_transposed;
    cache->n_ctx = n_ctx;
    cache->v_len = v_len;
    cache->k_row_bytes = row_size(type, c.head_dim_k);
    cache->v_row_bytes = c.mla ? 0 : row_size(type, c.head_dim_v);  // MLA: V is the latent part of K
    cache->k.resize(size_t(c.n_layer));
    cache->v.resize(size_t(c.n_layer));
    try {
        for (int il = 0; il < c.n_layer; ++il) {
            cache->k[size_t(il)].resize(k_layer);
            cache->v[size_t(il)].resize(v_layer);  // zeros: the pad of transposed rows must be finite
        }
    } catch (const std::bad_alloc&) {
        throw error(error_code::out_of_memory,
                    format("session: cannot allocate a KV cache of %d tokens (%zu bytes)", n_ctx, size_t(c.n_layer) * (k_layer + v_layer)));
    }
    cache->config = &c;
    return cache;
}

void cpu_backend::kv_store(kv_cache& kv, int il, const float* k, const float* v, int pos0, int n) {
    auto& cache = static_cast<cpu_kv_cache&>(kv);
    const model_config& c = *cache.config;
    const cpu_kernels& kt = cpu_kernels_of(cache.type);
    const size_t k_dim = size_t(c.n_head_kv) * size_t(c.head_dim_k), v_dim = size_t(c.n_head_kv) * size_t(c.head_dim_v);
    const size_t elem = kt.type_size;                                      // transposed values: one element
    const size_t v_row_stride = size_t(cache.v_len) * elem;                // bytes between their rows
    std::vector<uint8_t> converted(cache.v_transposed ? size_t(c.head_dim_v) * elem : 0);  // one head's values
    for (int i = 0; i < n; ++i) {
        const size_t pos = size_t(pos0 + i);
        for (int hk = 0; hk < c.n_head_kv; ++hk) {
            const size_t slot = size_t(hk) * size_t(cache.n_ctx) + pos;
            kt.from_float(k + size_t(i) * k_dim + size_t(hk) * size_t(c.head_dim_k), cache.k[size_t(il)].data() + slot * cache.k_row_bytes, c.head_dim_k);
            if (!v) continue;
            const float* vh = v + size_t(i) * v_dim + size_t(hk) * size_t(c.head_dim_v);
            if (!cache.v_transposed) {
                kt.from_float(vh, cache.v[size_t(il)].data() + slot * cache.v_row_bytes, c.head_dim_v);
                continue;
            }
            // Element e of the head goes to position `pos` of row (hk, e).
            kt.from_float(vh, converted.data(), c.head_dim_v);
            uint8_t* column = cache.v[size_t(il)].data() + size_t(hk) * size_t(c.head_dim_v) * v_row_stride + pos * elem;
            for (int e = 0; e < c.head_dim_v; ++e) std::memcpy(column + size_t(e) * v_row_stride, converted.data() + size_t(e) * elem, elem);
        }
    }
}

// Attention's softmax cutoff: scores more than 69 below the row's maximum get probability 0,
// not exp(-69..-104), which are below 2^-99.5 (cpu/vector_ops.h). Without it the peaked softmax
// of a long prompt computed many subnormal exps and probabilities, and each multiply with a
// subnormal operand costs the core a microcode assist (perf, TinyLlama's 512-token prompt over an
// F32 cache: the value dots took 61% of the prefill, under 10% once no probability was
// subnormal). What it drops cannot change the probabilities' sum (>= 1, in double) or an F16
// cache's result (F16 rounds them to 0); with an F32 cache it drops terms below 2^-99.5 |v|,
// which changes an output only where the output nearly vanishes itself.
constexpr float k_attention_cutoff = -69.0f;

// Value rows of an untransposed cache (Q8_0, BF16, MLA's latent rows) dequantized at a time:
// 16 KiB of floats at head_dim_v 128 (64 at MLA's 512), which stay in L1/L2 while every query
// of the task weights them.
constexpr int64_t k_value_block = 32;

template <typename T>
void grow(std::vector<T>& v, size_t n) {
    if (v.size() < n) v.resize(n);
}

// MLA's values transposed (F32 caches; F16 ones use vector_ops::transpose_u16): rows [row0, row1)
// of (kv head, element), each n_pos elements of T (one per position, dst_row bytes apart), from
// the latent rows (head h's position j at src + h * src_head + j * src_stride). Positions go in
// blocks whose source lines stay in L1 while every row of the range takes its elements from them.
// (An element-sized memcpy call per element, position after position, took 78% of
// DeepSeek-V2-Lite's decode attention: 2.2 ms a layer at 2,048 positions.)
template <typename T>
void transpose_rows(const uint8_t* src, size_t src_head, size_t src_stride, int64_t dim_v, int64_t n_pos, int64_t row0, int64_t row1,
                    uint8_t* dst, size_t dst_row) {
    constexpr int64_t k_positions = 32;
    for (int64_t j0 = 0; j0 < n_pos; j0 += k_positions) {
        const int64_t j1 = std::min(n_pos, j0 + k_positions);
        for (int64_t row = row0; row < row1; ++row) {
            const uint8_t* s = src + size_t(row / dim_v) * src_head + size_t(row % dim_v) * sizeof(T);
            T* d = reinterpret_cast<T*>(dst + size_t(row) * dst_row);
            for (int64_t j = j0; j < j1; ++j) std::memcpy(&d[j], s + size_t(j) * src_stride, sizeof(T));
        }
    }
}

// Causal attention of n tokens at positions pos0.. (q: (n, n_head, head_dim_k)) over the cache,
// as llama.cpp computes it without flash attention: scaled key scores, softmax, then the values
// weighted by the probabilities.
// A task is one kv head with a block of the queries that read it: `heads` of the `group` query
// heads sharing it, for `tokens` consecutive tokens (at most 8 queries where the batch gives
// every thread enough tasks; fewer heads per task where it does not, as in decoding). Each key
// row is dotted with a token's queries in one pass, so K is read once per token, not per query.
// Values: an F32 or F16 cache holds them transposed (cpu_kv_cache; MLA's latent values are
// transposed here once per call), and a token's outputs are those rows dotted with its
// probability rows: llama.cpp's matmul of its transposed values by the probabilities, in the same
// order (matmul_rows), the probabilities first converted to the cache type's dot type (F16:
// rounded to F16, as llama.cpp does). Other caches: value rows dequantized k_value_block at a
// time for the block's queries, each query's sum taken position by position. Each query's result
// is bit for bit what it would be alone.
void cpu_backend::attention(kv_cache& kv_base, int il, const float* q, int n, int pos0, float* out) {
    auto& cache = static_cast<cpu_kv_cache&>(kv_base);
    const model_config& c = *cache.config;
    thread_pool& pool = *pool_;
    const cpu_kernels& kv = cpu_kernels_of(cache.type);
    const bool kv_f32 = cache.type == tensor_type::F32;
    const int group = c.n_head / c.n_head_kv;
    const float scale = c.attn_scale != 0.0f ? c.attn_scale : 1.0f / std::sqrt(float(c.head_dim_k));
    const uint8_t* kc = cache.k[size_t(il)].data();
    const int64_t dim_k = c.head_dim_k, dim_v = c.head_dim_v;
    const size_t k_stride = cache.k_row_bytes;                       // bytes between one head's keys
    const size_t k_head = size_t(cache.n_ctx) * cache.k_row_bytes;  // bytes between heads' first keys
    const size_t q_stride = size_t(c.n_head) * size_t(dim_k);
    const size_t o_stride = size_t(c.n_head) * size_t(dim_v);

    const vector_ops& ops = vector_ops_active();
    // Transposed values: rows (kv head, element) of positions, vt_row bytes apart.
    const size_t elem = kv.type_size;
    const uint8_t* vt = nullptr;
    size_t vt_row = 0;
    if (cache.v_transposed) {
        vt = cache.v[size_t(il)].data();
        vt_row = size_t(cache.v_len) * elem;
    } else if (c.mla && stores_values_transposed(cache.type)) {  // values: the first dim_v elements of each key row
        const int64_t n_pos = pos0 + n, len = align_positions(n_pos);
        vt_row = size_t(len) * elem;
        grow(mla_values_, size_t(c.n_head_kv) * size_t(dim_v) * vt_row);
        uint8_t* dst = mla_values_.data();
        pool.parallel_for(int64_t(c.n_head_kv) * dim_v, 16, [&](int64_t begin, int64_t end) {
            if (elem == 2) {  // F16: 8 x 8 blocks through registers where the path has them (vector_ops)
                for (int64_t row = begin; row < end;) {
                    const int64_t head = row / dim_v, seg_end = std::min(end, (head + 1) * dim_v);
                    ops.transpose_u16(kc + size_t(head) * k_head + size_t(row % dim_v) * 2, k_stride, dst + size_t(row) * vt_row, vt_row, n_pos,
                                      seg_end - row);
                    row = seg_end;
                }
            } else {
                transpose_rows<uint32_t>(kc, k_head, k_stride, dim_v, n_pos, begin, end, dst, vt_row);
            }
            for (int64_t row = begin; row < end; ++row) std::memset(dst + size_t(row) * vt_row + size_t(n_pos) * elem, 0, size_t(len - n_pos) * elem);
        });
        vt = mla_values_.data();
    }
    // Otherwise the values' rows as stored (MLA: the key rows).
    const uint8_t* vc = c.mla ? kc : cache.v[size_t(il)].data();
    const size_t v_row_bytes = c.mla ? cache.k_row_bytes : cache.v_row_bytes;
    const size_t v_stride = v_row_bytes, v_head = size_t(cache.n_ctx) * v_row_bytes;  // bytes between one head's values, between heads

    // The tasks: (token block, kv head, head block), at least 4 per thread where possible. A
    // decode step's tasks cost the same, so there one per thread is enough: all of a kv head's
    // query heads in one task then read its keys and values once (split in two head blocks, each
    // read them twice, and Ling-mini's F16 attention at 2,048 positions took 1.4x as long).
    const int nth = pool.size();
    int tokens = std::max(1, 8 / group), heads = group;
    const auto count_tasks = [&] { return c.n_head_kv * ((n + tokens - 1) / tokens) * (group / heads); };
    const int min_tasks = n == 1 ? nth : 4 * nth;
    while (tokens > 1 && count_tasks() < min_tasks) tokens /= 2;
    while (heads % 2 == 0 && count_tasks() < min_tasks) heads /= 2;
    const int n_tasks = count_tasks(), head_blocks = group / heads, max_queries = tokens * heads;

    // llama.cpp's score rows span its whole padded KV window, a multiple of 256 cells; masked cells
    // have probability 0. Padding ours with -inf to a multiple of the vector width gives its softmax
    // the same chunks (extra all-zero chunks add nothing). The value dots run over whole multiples
    // of their lanes, which the zero probabilities past a query's positions pad.
    const int pad = std::max(ops.lanes, 1), value_lanes = std::max(kv.gemm_lanes, 1);
    if (vt && value_lanes > k_value_row_align) throw error(error_code::internal, "attention: value rows are padded for at most 16 lanes");
    const auto round_up = [](int64_t x, int64_t m) { return (x + m - 1) / m * m; };
    const size_t row_len = size_t(round_up(pos0 + n, std::max(pad, value_lanes)));  // floats of a score row

    // Scores use the cache type's SIMD dot: each query is converted once to the type's dot
    // operand (F32 stays F32; F16 -> F16, as llama.cpp does), then dotted with every cached key.
    // Summation orders as llama.cpp's (cpu/kernels.h): F32 queries reach its matmul as a permuted
    // view, which skips its GEMM (the vector-dot order); F16 ones are converted to a contiguous
    // copy first, which its GEMM takes when the head size is a multiple of its vector width.
    const from_float_fn to_dot_type = act_from_float(kv.vec_dot_type);
    const bool convert = kv.vec_dot_type != tensor_type::F32;
    const size_t q_row = convert ? act_row_size(kv.vec_dot_type, dim_k) : size_t(dim_k) * sizeof(float);
    const bool gemm_order = !kv_f32 && kv.gemm_lanes > 0 && dim_k % kv.gemm_lanes == 0;
    const vec_dot_fn score_dot = kv.vec_dot_unrolled && !gemm_order ? kv.vec_dot_unrolled : kv.vec_dot;
    const gemm_tile_fn unrolled_tile = kv.vec_dot_unrolled && !gemm_order ? kv.unrolled_tile : nullptr;
    const gemm_tile_fn score_tile = gemm_order ? kv.gemm_tile : nullptr;

    attention_scratch_.resize(size_t(nth));
    for (attention_scratch& s : attention_scratch_) {
        grow(s.scores, size_t(max_queries) * row_len);
        grow(s.queries, size_t(heads) * q_row);
        if (vt && convert) grow(s.probabilities, size_t(heads) * act_row_size(kv.vec_dot_type, int64_t(row_len)));
        if (!vt) {
            grow(s.v_rows, size_t(k_value_block * dim_v));
            grow(s.p, size_t(max_queries));
            grow(s.out, size_t(max_queries));
            grow(s.n_kv, size_t(max_queries));
        }
    }

    pool.run([&](int ith, int n_threads) {
        attention_scratch& s = attention_scratch_[size_t(ith)];
        for (int task = ith; task < n_tasks; task += n_threads) {
            const int hb = task % head_blocks, hk = task / head_blocks % c.n_head_kv, tb = task / (head_blocks * c.n_head_kv);
            const int i0 = tb * tokens, n_tok = std::min(tokens, n - i0);
            const int h0 = hk * group + hb * heads;  // the block's first query head
            const int n_q = n_tok * heads;           // its queries: token-major, head-minor
            const uint8_t* k0 = kc + size_t(hk) * k_head;
            for (int t = 0; t < n_tok; ++t) {
                const int n_kv = pos0 + i0 + t + 1;  // causal: positions 0..pos0+i0+t
                const float* qt = q + size_t(i0 + t) * q_stride + size_t(h0) * size_t(dim_k);  // `heads` rows
                float* st = s.scores.data() + size_t(t) * size_t(heads) * row_len;
                const uint8_t* qd = reinterpret_cast<const uint8_t*>(qt);
                if (convert) {
                    for (int g = 0; g < heads; ++g) to_dot_type(qt + size_t(g) * size_t(dim_k), s.queries.data() + size_t(g) * q_row, dim_k);
                    qd = s.queries.data();
                }
                if (unrolled_tile) {
                    unrolled_tile(dim_k, k0, k_stride, n_kv, qd, q_row, heads, st, int64_t(row_len));
                } else if (score_tile) {
                    // 4 keys x gemm_tile_x queries per call; keys in blocks of 64, which the
                    // block's next queries find in L1.
                    for (int j0 = 0; j0 < n_kv; j0 += 64) {
                        const int j1 = std::min(n_kv, j0 + 64);
                        for (int g0 = 0; g0 < heads; g0 += kv.gemm_tile_x) {
                            const int nx = std::min(kv.gemm_tile_x, heads - g0);
                            for (int j = j0; j < j1; j += 4) {
                                score_tile(dim_k, k0 + size_t(j) * k_stride, k_stride, std::min(4, j1 - j), qd + size_t(g0) * q_row, q_row, nx,
                                           st + size_t(g0) * row_len + size_t(j), int64_t(row_len));
                            }
                        }
                    }
                } else if (!kv.vec_dot_unrolled) {
                    // Quantized and BF16 caches: the keys as the rows of a matmul (Q8_0: int8
                    // tiles of 16 keys unpacked once for all the queries), bit for bit vec_dot.
                    matmul_rows(kv, dim_k, k0, k_stride, n_kv, qd, q_row, heads, st, int64_t(row_len));
                } else {
                    for (int g = 0; g < heads; ++g) {
                        for (int j = 0; j < n_kv; ++j) score_dot(dim_k, st + size_t(g) * row_len + size_t(j), k0 + size_t(j) * k_stride, qd + size_t(g) * q_row);
                    }
                }
                const int64_t n_padded = round_up(n_kv, pad), n_dot = round_up(n_kv, value_lanes);
                for (int g = 0; g < heads; ++g) {
                    float* row = st + size_t(g) * row_len;
                    for (int j = 0; j < n_kv; ++j) row[j] *= scale;
                    std::fill(row + n_kv, row + n_padded, -INFINITY);
                    ops.softmax(row, n_padded, k_attention_cutoff);
                    if (n_dot > n_padded) std::fill(row + n_padded, row + n_dot, 0.0f);
                }
                float* ot = out + size_t(i0 + t) * o_stride + size_t(h0) * size_t(dim_v);  // `heads` rows
                if (vt) {
                    const uint8_t* x = reinterpret_cast<const uint8_t*>(st);
                    size_t x_row = row_len * sizeof(float);
                    if (convert) {
                        x_row = act_row_size(kv.vec_dot_type, n_dot);
                        for (int g = 0; g < heads; ++g) to_dot_type(st + size_t(g) * row_len, s.probabilities.data() + size_t(g) * x_row, n_dot);
                        x = s.probabilities.data();
                    }
                    // Four value rows per register tile: each probability vector loaded once for
                    // four rows. One row at a time (matmul()'s choice for so few activation rows)
                    // reread the probabilities, 64 KiB at 8,192 positions, from L2 for each value
                    // row: bench_attention F16 8192 positions 762-781 -> 531-611 us.
                    matmul_rows(kv, n_dot, vt + size_t(hk) * size_t(dim_v) * vt_row, vt_row, dim_v, x, x_row, heads, ot, dim_v, 4);
                    continue;
                }
                for (int g = 0; g < heads; ++g) {
                    const size_t qi = size_t(t) * size_t(heads) + size_t(g);
                    s.p[qi] = st + size_t(g) * row_len;
                    s.n_kv[qi] = n_kv;
                    s.out[qi] = ot + size_t(g) * size_t(dim_v);
                }
            }
            if (vt) continue;
            // Other caches: blocks of value rows dequantized once for the block's queries, then
            // each query's probability-weighted sum over them, position by position
            // (vector_ops::weighted_rows). A scalar loop here ran a Q8_0 cache's decode attention
            // 5x slower than an F16 one's.
            const uint8_t* v0 = vc + size_t(hk) * v_head;
            for (int qi = 0; qi < n_q; ++qi) std::fill(s.out[size_t(qi)], s.out[size_t(qi)] + dim_v, 0.0f);
            const int64_t n_max = s.n_kv[size_t(n_q - 1)];  // the block's last token sees the most
            for (int64_t j0 = 0; j0 < n_max; j0 += k_value_block) {
                const int64_t rows = std::min(k_value_block, n_max - j0);
                for (int64_t r = 0; r < rows; ++r) kv.to_float(v0 + size_t(j0 + r) * v_stride, s.v_rows.data() + size_t(r * dim_v), dim_v);
                for (int qi = 0; qi < n_q; ++qi) {
                    const int64_t len = std::min(rows, s.n_kv[size_t(qi)] - j0);
                    if (len > 0) ops.weighted_rows(s.out[size_t(qi)], s.v_rows.data(), dim_v, s.p[size_t(qi)] + j0, len, dim_v);
                }
            }
        }
    });
}

}  // namespace

std::unique_ptr<backend> backend_create_cpu(const backend_params& params) { return std::make_unique<cpu_backend>(params); }

}  // namespace moerun
