// The shared forward pass: embeddings -> n_layer x (attention, FFN) -> norm -> output head.
#include "session.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../cpu/matmul.h"
#include "../cpu/vector_ops.h"
#include "../base/error.h"
#include "ffn.h"
#include "ops.h"

namespace moerun {

session::session(std::shared_ptr<model> m, const session_params& params) : model_(std::move(m)), params_(params) {
    const model_config& c = model_->config;
    if (params_.n_ctx <= 0) throw error(error_code::invalid_argument, format("session: context size %d must be positive", params_.n_ctx));
    if (params_.n_batch <= 0) params_.n_batch = 256;
    params_.n_batch = std::min(params_.n_batch, params_.n_ctx);
    const tensor_type kv = params_.kv_type;
    if (kv != tensor_type::F32 && kv != tensor_type::F16 && kv != tensor_type::BF16 && kv != tensor_type::Q8_0) {
        throw error(error_code::invalid_argument, format("session: KV cache type %s is not one of F32, F16, BF16, Q8_0", tensor_type_name(kv)));
    }
    const type_traits& kt = type_traits_of(kv);
    if (!kt.from_float || !kt.to_float) {
        throw error(error_code::unsupported, format("session: KV cache type %s has no kernels in this build", tensor_type_name(kv)));
    }
    if (c.head_dim_k % kt.block_size != 0 || c.head_dim_v % kt.block_size != 0) {
        throw error(error_code::invalid_argument,
                    format("session: KV cache type %s needs head sizes that are multiples of %lld, but this model's are %d (key) and %d (value)",
                           tensor_type_name(kv), (long long)kt.block_size, c.head_dim_k, c.head_dim_v));
    }
    k_row_bytes_ = row_size(kv, c.head_dim_k);
    v_row_bytes_ = c.mla ? 0 : row_size(kv, c.head_dim_v);  // MLA: V is the latent part of K
    k_cache_.resize(size_t(c.n_layer));
    v_cache_.resize(size_t(c.n_layer));
    try {
        for (int il = 0; il < c.n_layer; ++il) {
            k_cache_[size_t(il)].resize(size_t(params_.n_ctx) * size_t(c.n_head_kv) * k_row_bytes_);
            v_cache_[size_t(il)].resize(size_t(params_.n_ctx) * size_t(c.n_head_kv) * v_row_bytes_);
        }
    } catch (const std::bad_alloc&) {
        throw error(error_code::out_of_memory, format("session: cannot allocate a KV cache of %d tokens (%zu bytes)", params_.n_ctx,
                                                      size_t(params_.n_ctx) * size_t(c.n_layer) * size_t(c.n_head_kv) * (k_row_bytes_ + v_row_bytes_)));
    }
}

size_t session::kv_bytes() const {
    size_t total = 0;
    for (size_t i = 0; i < k_cache_.size(); ++i) total += k_cache_[i].size() + v_cache_[i].size();
    return total;
}

void session::truncate(int n) { n_past_ = std::clamp(n, 0, n_past_); }

void session::evaluate(const int32_t* tokens, int n, logits_mode mode, std::vector<float>& logits,
                       const std::atomic<bool>* abort) {
    const model_config& c = model_->config;
    if (n <= 0) throw error(error_code::invalid_argument, "evaluate: no tokens given");
    if (n > params_.n_ctx - n_past_) {
        throw error(error_code::context_full, format("evaluate: %d tokens do not fit: the context holds %d and %d are used",
                                                     n, params_.n_ctx, n_past_));
    }
    for (int i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= c.n_vocab) {
            throw error(error_code::invalid_argument, format("evaluate: token %d at index %d is outside the vocabulary [0, %d)", tokens[i], i, c.n_vocab));
        }
    }
    const size_t row = size_t(c.n_vocab);
    logits.assign(mode == logits_mode::all ? row * size_t(n) : mode == logits_mode::last ? row : 0, 0.0f);

    std::lock_guard<std::mutex> lock(model_->compute_mutex);
    thread_pool::burst burst(*model_->pool);
    const int start = n_past_;
    for (int b = 0; b < n; b += params_.n_batch) {
        const int nb = std::min(params_.n_batch, n - b);
        float* out = nullptr;
        logits_mode batch_mode = logits_mode::none;
        if (mode == logits_mode::all) {
            out = logits.data() + size_t(b) * row;
            batch_mode = logits_mode::all;
        } else if (mode == logits_mode::last && b + nb == n) {
            out = logits.data();
            batch_mode = logits_mode::last;
        }
        forward_batch(tokens + b, nb, start + b, batch_mode, out, abort);
        n_past_ = start + b + nb;  // a later abort keeps the batches already done
    }
}

void session::forward_batch(const int32_t* tokens, int n, int pos0, logits_mode mode, float* logits_out,
                            const std::atomic<bool>* abort) {
    const model_config& c = model_->config;
    const model_weights& w = model_->weights;
    thread_pool& pool = *model_->pool;
    const int64_t d = c.n_embd;
    const int64_t q_dim = int64_t(c.n_head) * c.head_dim_k, k_dim = int64_t(c.n_head_kv) * c.head_dim_k,
                  v_dim = int64_t(c.n_head_kv) * c.head_dim_v,
                  o_dim = int64_t(c.n_head) * std::max(c.head_dim_v, c.head_dim_v_mla);
    const size_t nt = size_t(n);
    x_.resize(nt * size_t(d));
    h_.resize(nt * size_t(d));
    q_.resize(nt * size_t(q_dim));
    k_.resize(nt * size_t(k_dim));
    v_.resize(nt * size_t(v_dim));
    attn_out_.resize(nt * size_t(o_dim));
    tmp_.resize(nt * size_t(d));

    auto check_abort = [&] {
        if (abort && abort->load(std::memory_order_relaxed)) throw error(error_code::aborted, "evaluate: aborted");
    };

    for (int i = 0; i < n; ++i) tensor_get_row(w.token_embd, tokens[i], x_.data() + size_t(i) * size_t(d));

    const type_traits& kv = type_traits_of(params_.kv_type);
    for (int il = 0; il < c.n_layer; ++il) {
        check_abort();
        const layer_weights& l = w.layers[size_t(il)];

        // ---- attention ----
        rms_norm_rows(x_.data(), static_cast<const float*>(l.attn_norm.data), h_.data(), n, d, c.norm_eps);
        if (c.mla) {
            attention_mla(il, l, n, pos0);
        } else {
            project_qkv(l, n);
            for (int i = 0; i < n; ++i) {
                float* qi = q_.data() + size_t(i) * size_t(q_dim);
                float* ki = k_.data() + size_t(i) * size_t(k_dim);
                rope_apply(qi, c.n_head, c.head_dim_k, c.n_rot, pos0 + i, c);
                rope_apply(ki, c.n_head_kv, c.head_dim_k, c.n_rot, pos0 + i, c);
                // Store this token's keys and values in the cache, one row per KV head.
                for (int hk = 0; hk < c.n_head_kv; ++hk) {
                    const size_t slot = size_t(pos0 + i) * size_t(c.n_head_kv) + size_t(hk);
                    kv.from_float(ki + size_t(hk) * size_t(c.head_dim_k), k_cache_[size_t(il)].data() + slot * k_row_bytes_, c.head_dim_k);
                    kv.from_float(v_.data() + size_t(i) * size_t(v_dim) + size_t(hk) * size_t(c.head_dim_v),
                                  v_cache_[size_t(il)].data() + slot * v_row_bytes_, c.head_dim_v);
                }
            }
            attention(il, n, pos0, q_.data(), attn_out_.data());
        }
        matmul(pool, l.wo, attn_out_.data(), n, tmp_.data(), quant_scratch_);
        for (size_t i = 0; i < nt * size_t(d); ++i) x_[i] += tmp_[i];

        // ---- feed-forward: dense SwiGLU or mixture of experts ----
        rms_norm_rows(x_.data(), static_cast<const float*>(l.ffn_norm.data), h_.data(), n, d, c.norm_eps);
        if (l.is_moe()) {
            ffn_moe(pool, c, l, h_.data(), n, tmp_.data(), ffn_);
        } else {
            ffn_dense(pool, l.ffn_gate, l.ffn_up, l.ffn_down, h_.data(), n, c.n_embd, tmp_.data(), ffn_);
        }
        for (size_t i = 0; i < nt * size_t(d); ++i) x_[i] += tmp_[i];
    }
    check_abort();

    if (mode == logits_mode::none) return;
    const int first = mode == logits_mode::all ? 0 : n - 1;
    const int rows = n - first;
    rms_norm_rows(x_.data() + size_t(first) * size_t(d), static_cast<const float*>(w.output_norm.data), h_.data(), rows, d, c.norm_eps);
    matmul(pool, w.output, h_.data(), rows, logits_out, quant_scratch_);
}

// q_, k_, v_ (n rows each) = projections of h_, with optional bias and Q/K RMSNorm.
void session::project_qkv(const layer_weights& l, int n) {
    const model_config& c = model_->config;
    thread_pool& pool = *model_->pool;
    const size_t q_dim = size_t(c.n_head) * size_t(c.head_dim_k), k_dim = size_t(c.n_head_kv) * size_t(c.head_dim_k),
                 v_dim = size_t(c.n_head_kv) * size_t(c.head_dim_v);
    if (l.wqkv) {
        const size_t row = q_dim + k_dim + v_dim;
        qkv_.resize(size_t(n) * row);
        matmul(pool, l.wqkv, h_.data(), n, qkv_.data(), quant_scratch_);
        for (int i = 0; i < n; ++i) {
            const float* r = qkv_.data() + size_t(i) * row;
            std::copy_n(r, q_dim, q_.data() + size_t(i) * q_dim);
            std::copy_n(r + q_dim, k_dim, k_.data() + size_t(i) * k_dim);
            std::copy_n(r + q_dim + k_dim, v_dim, v_.data() + size_t(i) * v_dim);
        }
    } else {
        matmul_group(pool, {{&l.wq, q_.data()}, {&l.wk, k_.data()}, {&l.wv, v_.data()}}, h_.data(), n, quant_scratch_);
    }
    auto add_bias = [n](const tensor& b, float* y, size_t dim) {
        if (!b) return;
        const float* bv = static_cast<const float*>(b.data);
        for (int i = 0; i < n; ++i)
            for (size_t j = 0; j < dim; ++j) y[size_t(i) * dim + j] += bv[j];
    };
    add_bias(l.bq, q_.data(), q_dim);
    add_bias(l.bk, k_.data(), k_dim);
    add_bias(l.bv, v_.data(), v_dim);
    // Q/K norm: per head when the weight has head_dim elements, else over the whole projection.
    auto norm = [&](const tensor& w, float* y, size_t dim) {
        if (!w) return;
        const int64_t len = w.ne[0];
        rms_norm_rows(y, static_cast<const float*>(w.data), y, int64_t(n) * int64_t(dim) / len, len, c.norm_eps);
    };
    norm(l.attn_q_norm, q_.data(), q_dim);
    norm(l.attn_k_norm, k_.data(), k_dim);
}

// Multi-head latent attention, absorbed form (see model_config::mla). Writes attn_out_:
// (n, n_head * head_dim_v_mla).
void session::attention_mla(int il, const layer_weights& l, int n, int pos0) {
    const model_config& c = model_->config;
    thread_pool& pool = *model_->pool;
    const type_traits& kv = type_traits_of(params_.kv_type);
    const int n_head = c.n_head, rope = c.n_rot, lora = c.kv_lora_rank, k_mla = c.head_dim_k_mla, nope = k_mla - rope;
    const size_t nt = size_t(n), row = size_t(lora + rope);

    // Queries: (n, n_head, k_mla), through the optional low-rank bottleneck.
    mla_q_.resize(nt * size_t(n_head) * size_t(k_mla));
    if (l.wq_a) {
        mla_tmp_.resize(nt * size_t(c.q_lora_rank));
        matmul(pool, l.wq_a, h_.data(), n, mla_tmp_.data(), quant_scratch_);
        rms_norm_rows(mla_tmp_.data(), static_cast<const float*>(l.attn_q_a_norm.data), mla_tmp_.data(), n, c.q_lora_rank, c.norm_eps);
        matmul(pool, l.wq_b, mla_tmp_.data(), n, mla_q_.data(), quant_scratch_);
    } else {
        matmul(pool, l.wq, h_.data(), n, mla_q_.data(), quant_scratch_);
    }
    // Latent KV: (n, lora + rope) = [RMSNorm(compressed KV), RoPE(shared key)], cached as is.
    mla_kv_.resize(nt * row);
    matmul(pool, l.wkv_a_mqa, h_.data(), n, mla_kv_.data(), quant_scratch_);
    for (int i = 0; i < n; ++i) {
        float* r = mla_kv_.data() + size_t(i) * row;
        rms_norm_rows(r, static_cast<const float*>(l.attn_kv_a_norm.data), r, 1, lora, c.norm_eps);
        rope_apply(r + lora, 1, rope, rope, pos0 + i, c);
        kv.from_float(r, k_cache_[size_t(il)].data() + size_t(pos0 + i) * k_row_bytes_, int64_t(row));
    }
    // Absorbed queries q_: (n, n_head, lora + rope) = [wk_b[h] . q_nope, RoPE(q_pe)].
    q_.resize(nt * size_t(n_head) * row);
    mla_nope_.resize(nt * size_t(nope));
    mla_tmp_.resize(nt * size_t(lora));
    for (int h = 0; h < n_head; ++h) {
        for (int i = 0; i < n; ++i) {
            const float* qh = mla_q_.data() + (size_t(i) * size_t(n_head) + size_t(h)) * size_t(k_mla);
            std::copy_n(qh, nope, mla_nope_.data() + size_t(i) * size_t(nope));
            float* dst = q_.data() + (size_t(i) * size_t(n_head) + size_t(h)) * row;
            std::copy_n(qh + nope, rope, dst + lora);
            rope_apply(dst + lora, 1, rope, rope, pos0 + i, c);
        }
        // llama.cpp multiplies a permuted view of the query heads here.
        matmul(pool, l.wk_b.expert(h), mla_nope_.data(), n, mla_tmp_.data(), quant_scratch_, activation_view::permuted);
        for (int i = 0; i < n; ++i) std::copy_n(mla_tmp_.data() + size_t(i) * size_t(lora), lora, q_.data() + (size_t(i) * size_t(n_head) + size_t(h)) * row);
    }
    // Attention in the latent space (one KV head): latent_ = (n, n_head, lora).
    mla_latent_.resize(nt * size_t(n_head) * size_t(lora));
    attention(il, n, pos0, q_.data(), mla_latent_.data());
    // Expand each head's latent output with wv_b[h]: attn_out_ = (n, n_head, head_dim_v_mla).
    const int v_mla = c.head_dim_v_mla;
    mla_tmp_.resize(nt * size_t(lora));
    mla_nope_.resize(nt * size_t(v_mla));
    for (int h = 0; h < n_head; ++h) {
        for (int i = 0; i < n; ++i) std::copy_n(mla_latent_.data() + (size_t(i) * size_t(n_head) + size_t(h)) * size_t(lora), lora, mla_tmp_.data() + size_t(i) * size_t(lora));
        matmul(pool, l.wv_b.expert(h), mla_tmp_.data(), n, mla_nope_.data(), quant_scratch_);
        for (int i = 0; i < n; ++i) std::copy_n(mla_nope_.data() + size_t(i) * size_t(v_mla), v_mla, attn_out_.data() + (size_t(i) * size_t(n_head) + size_t(h)) * size_t(v_mla));
    }
}

// Causal attention of n new tokens (queries q: n x n_head x head_dim_k) over the cache positions
// 0..pos, writing out: n x n_head x head_dim_v. Threads split the (token, head) pairs.
void session::attention(int il, int n, int pos0, const float* q, float* out) {
    const model_config& c = model_->config;
    thread_pool& pool = *model_->pool;
    const type_traits& kv = type_traits_of(params_.kv_type);
    const bool kv_f32 = params_.kv_type == tensor_type::F32;
    const int group = c.n_head / c.n_head_kv;
    const float scale = c.attn_scale != 0.0f ? c.attn_scale : 1.0f / std::sqrt(float(c.head_dim_k));
    const uint8_t* kc = k_cache_[size_t(il)].data();
    // MLA: values are the first head_dim_v elements of each key row.
    const uint8_t* vc = c.mla ? kc : v_cache_[size_t(il)].data();
    const size_t v_stride = c.mla ? k_row_bytes_ : v_row_bytes_;
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
    // Summation orders as llama.cpp's (quant/types.h): F32 queries reach its matmul as a permuted
    // view, which skips its GEMM (the vector-dot order); F16 ones are converted to a contiguous
    // copy first, which its GEMM takes when the head size is a multiple of its vector width.
    const from_float_fn q_from_float = act_from_float(kv.vec_dot_type);
    const bool score_gemm = !kv_f32 && kv.gemm_lanes > 0 && c.head_dim_k % kv.gemm_lanes == 0;
    const vec_dot_fn score_dot = kv.vec_dot_unrolled && !score_gemm ? kv.vec_dot_unrolled : kv.vec_dot;
    const bool kv_f16 = params_.kv_type == tensor_type::F16;
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
            const size_t k_stride = size_t(c.n_head_kv) * k_row_bytes_;  // between one head's keys
            const uint8_t* k0 = kc + size_t(hk) * k_row_bytes_;
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

}  // namespace moerun
