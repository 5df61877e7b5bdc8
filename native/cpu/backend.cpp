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

// Per layer: (n_ctx, n_head_kv) rows of head_dim_k (keys) and head_dim_v (values) elements of
// `type`. MLA: one latent row per position in k, v empty (values are the latent's first part).
struct cpu_kv_cache final : kv_cache {
    const model_config* config = nullptr;  // the model it was made for
    tensor_type type = tensor_type::F16;
    bool mla = false;
    size_t k_row_bytes = 0, v_row_bytes = 0;  // one head's key / value row
    std::vector<std::vector<uint8_t>> k, v;
    size_t bytes() const override {
        size_t total = 0;
        for (size_t i = 0; i < k.size(); ++i) total += k[i].size() + v[i].size();
        return total;
    }
};

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

    std::unique_ptr<buffer> alloc(size_t n_floats) override { return std::make_unique<host_buffer>(n_floats); }

    std::unique_ptr<kv_cache> new_kv_cache(const model_config& c, int n_ctx, tensor_type type) override;

    // Workers spin between the ops of a forward call, and sleep outside one.
    void begin() override {
        if (depth_++ == 0) burst_.emplace(*pool_);
    }
    void end() override {
        if (--depth_ == 0) burst_.reset();
    }

    void get_rows(const tensor& w, const int32_t* ids, int n, float* out) override {
        for (int i = 0; i < n; ++i) tensor_get_row(w, ids[i], out + size_t(i) * size_t(w.ne[0]));
    }
    void rms_norm(const float* x, const tensor& weight, float* out, int64_t rows, int64_t n, int64_t stride, float eps) override {
        const float* wv = weight ? static_cast<const float*>(weight.data) : nullptr;
        if (stride == n) return rms_norm_rows(x, wv, out, rows, n, eps);
        for (int64_t r = 0; r < rows; ++r) rms_norm_rows(x + r * stride, wv, out + r * stride, 1, n, eps);
    }
    void rope(float* x, int n_tokens, int64_t token_stride, int n_heads, int head_dim, int n_rot, int pos0, const model_config& c) override {
        for (int i = 0; i < n_tokens; ++i) rope_apply(x + size_t(i) * size_t(token_stride), n_heads, head_dim, n_rot, pos0 + i, c);
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
        for (int64_t r = 0; r < rows; ++r) std::copy_n(src + r * src_stride, cols, dst + r * dst_stride);
    }
    void add(float* x, const float* y, int64_t n) override {
        for (int64_t i = 0; i < n; ++i) x[i] += y[i];
    }
    void add_bias(float* y, const tensor& b, int64_t rows, int64_t dim) override {
        const float* bv = static_cast<const float*>(b.data);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < dim; ++j) y[r * dim + j] += bv[j];
    }
    void kv_store(kv_cache& kv, int layer, const float* k, const float* v, int pos0, int n) override;
    void attention(kv_cache& kv, int layer, const float* q, int n, int pos0, float* out) override;
    void ffn_dense(const tensor& gate, const tensor& up, const tensor& down, const float* x, int n, float* out) override {
        moerun::ffn_dense(*pool_, gate, up, down, x, n, int(down.ne[1]), out, ffn_, observer_);
    }
    void ffn_moe(const model_config& c, const layer_weights& l, const float* x, int n, float* out) override {
        moerun::ffn_moe(*pool_, c, l, x, n, out, ffn_, observer_);
    }

private:
    cpu_path path_;
    std::unique_ptr<thread_pool> pool_;
    std::optional<thread_pool::burst> burst_;
    int depth_ = 0;
    // Scratch reused across ops and calls (one forward call at a time: model::compute_mutex).
    std::vector<uint8_t> quant_scratch_;
    ffn_scratch ffn_;
    std::vector<std::vector<float>> thread_scratch_;  // per thread: scores + dequantized K/V rows
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
    const size_t k_row = row_size(type, c.head_dim_k), v_row = c.mla ? 0 : row_size(type, c.head_dim_v);
    const long double need = (long double)n_ctx * c.n_layer * c.n_head_kv * (long double)(k_row + v_row);
    const uint64_t available = host_memory_available();
    if (need > (long double)available) {
        throw error(error_code::out_of_memory,
                    format("session: a KV cache of %d tokens needs %.2f GiB, but this host has %.2f GiB available for it", n_ctx,
                           double(need / (1024.0L * 1024 * 1024)), double(available) / (1024.0 * 1024 * 1024)));
    }
    auto cache = std::make_unique<cpu_kv_cache>();
    cache->type = type;
    cache->mla = c.mla;
    cache->k_row_bytes = row_size(type, c.head_dim_k);
    cache->v_row_bytes = c.mla ? 0 : row_size(type, c.head_dim_v);  // MLA: V is the latent part of K
    cache->k.resize(size_t(c.n_layer));
    cache->v.resize(size_t(c.n_layer));
    try {
        for (int il = 0; il < c.n_layer; ++il) {
            cache->k[size_t(il)].resize(size_t(n_ctx) * size_t(c.n_head_kv) * cache->k_row_bytes);
            cache->v[size_t(il)].resize(size_t(n_ctx) * size_t(c.n_head_kv) * cache->v_row_bytes);
        }
    } catch (const std::bad_alloc&) {
        throw error(error_code::out_of_memory, format("session: cannot allocate a KV cache of %d tokens (%zu bytes)", n_ctx,
                                                      size_t(n_ctx) * size_t(c.n_layer) * size_t(c.n_head_kv) * (cache->k_row_bytes + cache->v_row_bytes)));
    }
    cache->config = &c;
    return cache;
}

void cpu_backend::kv_store(kv_cache& kv, int il, const float* k, const float* v, int pos0, int n) {
    auto& cache = static_cast<cpu_kv_cache&>(kv);
    const model_config& c = *cache.config;
    const cpu_kernels& kt = cpu_kernels_of(cache.type);
    const size_t k_dim = size_t(c.n_head_kv) * size_t(c.head_dim_k), v_dim = size_t(c.n_head_kv) * size_t(c.head_dim_v);
    for (int i = 0; i < n; ++i) {
        for (int hk = 0; hk < c.n_head_kv; ++hk) {
            const size_t slot = size_t(pos0 + i) * size_t(c.n_head_kv) + size_t(hk);
            kt.from_float(k + size_t(i) * k_dim + size_t(hk) * size_t(c.head_dim_k), cache.k[size_t(il)].data() + slot * cache.k_row_bytes, c.head_dim_k);
            if (v) {
                kt.from_float(v + size_t(i) * v_dim + size_t(hk) * size_t(c.head_dim_v), cache.v[size_t(il)].data() + slot * cache.v_row_bytes, c.head_dim_v);
            }
        }
    }
}

// Threads split the (token, head) pairs.
void cpu_backend::attention(kv_cache& kv_base, int il, const float* q, int n, int pos0, float* out) {
    auto& cache = static_cast<cpu_kv_cache&>(kv_base);
    const model_config& c = *cache.config;
    thread_pool& pool = *pool_;
    const cpu_kernels& kv = cpu_kernels_of(cache.type);
    const bool kv_f32 = cache.type == tensor_type::F32;
    const int group = c.n_head / c.n_head_kv;
    const float scale = c.attn_scale != 0.0f ? c.attn_scale : 1.0f / std::sqrt(float(c.head_dim_k));
    const uint8_t* kc = cache.k[size_t(il)].data();
    // MLA: values are the first head_dim_v elements of each key row.
    const uint8_t* vc = c.mla ? kc : cache.v[size_t(il)].data();
    const size_t v_stride = c.mla ? cache.k_row_bytes : cache.v_row_bytes;
    const int n_tasks = n * c.n_head;
    const size_t q_stride = size_t(c.n_head) * size_t(c.head_dim_k);
    const size_t o_stride = size_t(c.n_head) * size_t(c.head_dim_v);

    // llama.cpp's score rows span its whole padded KV window, a multiple of 256 cells; masked cells
    // have probability 0. Padding ours with -inf to a multiple of the vector width gives its softmax
    // the same chunks (extra all-zero chunks add nothing).
    const vector_ops& ops = vector_ops_active();
    const int pad = std::max(ops.lanes, 1);
    thread_scratch_.resize(size_t(pool.size()));
    // Per thread: padded scores, one V row (head_dim_v), the converted query (an activation row of
    // the cache's dot type: at most 4 bytes per element plus 4 per block).
    const size_t q_floats = (act_row_size(kv.vec_dot_type, c.head_dim_k) + sizeof(float) - 1) / sizeof(float);
    const size_t need = size_t(pos0 + n + pad) + size_t(c.head_dim_v) + std::max(q_floats, size_t(c.head_dim_k)) + 64;
    for (auto& s : thread_scratch_) {
        if (s.size() < need) s.resize(need);
    }

    // Scores use the cache type's SIMD dot: each query is converted once to the type's dot
    // operand (F32 stays F32; F16 -> F16, as llama.cpp does), then dotted with every cached key.
    // Summation orders as llama.cpp's (cpu/kernels.h): F32 queries reach its matmul as a permuted
    // view, which skips its GEMM (the vector-dot order); F16 ones are converted to a contiguous
    // copy first, which its GEMM takes when the head size is a multiple of its vector width.
    const from_float_fn q_from_float = act_from_float(kv.vec_dot_type);
    const bool score_gemm = !kv_f32 && kv.gemm_lanes > 0 && c.head_dim_k % kv.gemm_lanes == 0;
    const vec_dot_fn score_dot = kv.vec_dot_unrolled && !score_gemm ? kv.vec_dot_unrolled : kv.vec_dot;
    const bool kv_f16 = cache.type == tensor_type::F16;
    pool.run([&](int ith, int nth) {
        float* scores = thread_scratch_[size_t(ith)].data();
        float* row = scores + pos0 + n + pad;  // one dequantized V row
        uint8_t* q_conv = reinterpret_cast<uint8_t*>(row + c.head_dim_v);  // the query in the dot type
        for (int task = ith; task < n_tasks; task += nth) {
            const int i = task / c.n_head, h = task % c.n_head, hk = h / group;
            const int n_kv = pos0 + i + 1;  // causal: positions 0..pos0+i
            const float* qh = q + size_t(i) * q_stride + size_t(h) * size_t(c.head_dim_k);
            const void* qd = qh;
            if (kv.vec_dot_type != tensor_type::F32) {
                q_from_float(qh, q_conv, c.head_dim_k);
                qd = q_conv;
            }
            const size_t k_stride = size_t(c.n_head_kv) * cache.k_row_bytes;  // between one head's keys
            const uint8_t* k0 = kc + size_t(hk) * cache.k_row_bytes;
            int j = 0;
            if (score_gemm && kv.gemm_tile) {  // 4 keys per call: 4 independent accumulator chains
                for (; j + 4 <= n_kv; j += 4) kv.gemm_tile(c.head_dim_k, k0 + size_t(j) * k_stride, k_stride, 4, qd, 0, 1, scores + j, 1);
            }
            for (; j < n_kv; ++j) score_dot(c.head_dim_k, &scores[j], k0 + size_t(j) * k_stride, qd);
            for (j = 0; j < n_kv; ++j) scores[j] *= scale;
            const int n_padded = (n_kv + pad - 1) / pad * pad;
            std::fill(scores + n_kv, scores + n_padded, -INFINITY);
            ops.softmax(scores, n_padded);
            float* oh = out + size_t(i) * o_stride + size_t(h) * size_t(c.head_dim_v);
            // Values weighted in llama.cpp's order (its GEMM over the positions); an F16 cache's
            // matmul rounds the probabilities to F16 first.
            if (kv_f32) {
                const float* v0 = reinterpret_cast<const float*>(vc + size_t(hk) * v_stride);
                ops.weighted_sum(scores, n_kv, v0, size_t(c.n_head_kv) * v_stride / sizeof(float), c.head_dim_v, oh);
                continue;
            }
            if (kv_f16) {
                for (int j = 0; j < n_kv; ++j) scores[j] = fp16_to_fp32(fp32_to_fp16(scores[j]));
                const uint16_t* v0 = reinterpret_cast<const uint16_t*>(vc + size_t(hk) * v_stride);
                ops.weighted_sum_f16(scores, n_kv, v0, size_t(c.n_head_kv) * v_stride / sizeof(uint16_t), c.head_dim_v, oh);
                continue;
            }
            std::fill(oh, oh + c.head_dim_v, 0.0f);
            for (int j = 0; j < n_kv; ++j) {
                const uint8_t* vrow = vc + (size_t(j) * size_t(c.n_head_kv) + size_t(hk)) * v_stride;
                kv.to_float(vrow, row, c.head_dim_v);
                const float* vf = row;
                const float p = scores[j];
                for (int e = 0; e < c.head_dim_v; ++e) oh[e] += p * vf[e];
            }
        }
    });
}

}  // namespace

std::unique_ptr<backend> backend_create_cpu(const backend_params& params) { return std::make_unique<cpu_backend>(params); }

}  // namespace moerun
