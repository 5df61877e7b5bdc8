// The shared forward pass: embeddings -> n_layer x (attention, FFN) -> norm -> output head, as a
// sequence of backend operations (backend/backend.h) on activations in the backend's memory.
#include "session.h"

#include <algorithm>
#include <cmath>

#include "../base/error.h"
#include "placement.h"

namespace moerun {

session::session(std::shared_ptr<model> m, const session_params& params)
    : model_(std::move(m)), compute_(*model_->compute), params_(params) {
    if (params_.n_ctx <= 0) throw error(error_code::invalid_argument, format("session: context size %d must be positive", params_.n_ctx));
    if (params_.n_batch <= 0) params_.n_batch = default_batch_tokens(model_->config);
    params_.n_batch = std::min(params_.n_batch, params_.n_ctx);
    kv_ = compute_.new_kv_cache(model_->config, params_.n_ctx, params_.kv_type);
}

size_t session::kv_bytes() const { return kv_->bytes(); }

void session::truncate(int n) { n_past_ = std::clamp(n, 0, n_past_); }

float* session::act(std::unique_ptr<buffer>& b, size_t n_floats) {
    if (!b || b->size() < n_floats) {
        b.reset();
        b = compute_.alloc(n_floats);
    }
    return b->data();
}

session::work_counters session::counters() const {
    work_counters w;
    w.layer_steps = layer_steps_.load(std::memory_order_relaxed);
    w.aborted_evaluations = aborted_evaluations_.load();
    w.last_abort_steps_done = last_abort_steps_done_.load();
    w.last_abort_steps_planned = last_abort_steps_planned_.load();
    w.expert_hits = expert_hits_.load(std::memory_order_relaxed);
    w.expert_misses = expert_misses_.load(std::memory_order_relaxed);
    w.expert_loads = expert_loads_.load(std::memory_order_relaxed);
    return w;
}

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
    model_->file->check_not_truncated();
    const size_t row = size_t(c.n_vocab);
    logits.assign(mode == logits_mode::all ? row * size_t(n) : mode == logits_mode::last ? row : 0, 0.0f);

    std::lock_guard<std::mutex> lock(model_->compute_mutex);
    backend_scope scope(compute_);
    // The backend is shared by the model's sessions: the observer is this call's only, and so is
    // what its expert cache counts meanwhile (added to this session's counters however the call ends).
    struct observed {
        backend& be;
        session& s;
        expert_cache_counters before = be.expert_cache_stats();
        ~observed() {
            be.set_observer(nullptr);
            const expert_cache_counters after = be.expert_cache_stats();
            s.expert_hits_ += after.hits - before.hits;
            s.expert_misses_ += after.misses - before.misses;
            s.expert_loads_ += after.loads - before.loads;
        }
    } observing{compute_, *this};
    compute_.set_observer(observer_);
    const int start = n_past_;
    const uint64_t steps_before = layer_steps_.load(std::memory_order_relaxed);
    const int64_t steps_planned = int64_t((n + params_.n_batch - 1) / params_.n_batch) * c.n_layer;
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
        try {
            forward_batch(tokens + b, nb, start + b, batch_mode, out, abort);
        } catch (const error& e) {
            if (e.code() == error_code::aborted) {
                last_abort_steps_done_.store(int64_t(layer_steps_.load(std::memory_order_relaxed) - steps_before));
                last_abort_steps_planned_.store(steps_planned);
                aborted_evaluations_.fetch_add(1);
            }
            throw;
        }
        n_past_ = start + b + nb;  // a later abort keeps the batches already done
    }
}

void session::forward_batch(const int32_t* tokens, int n, int pos0, logits_mode mode, float* logits_out,
                            const std::atomic<bool>* abort) {
    const model_config& c = model_->config;
    const model_weights& w = model_->weights;
    backend& be = compute_;
    const int64_t d = c.n_embd;
    const int64_t o_dim = int64_t(c.n_head) * std::max(c.head_dim_v, c.head_dim_v_mla);
    const size_t nt = size_t(n);
    float* x = act(x_, nt * size_t(d));
    float* h = act(h_, nt * size_t(d));
    float* attn_out = act(attn_out_, nt * size_t(o_dim));
    float* tmp = act(tmp_, nt * size_t(d));

    auto check_abort = [&] {
        if (abort && abort->load(std::memory_order_relaxed)) throw error(error_code::aborted, "evaluate: aborted");
    };

    be.begin_batch(*kv_, pos0, n);
    be.get_rows(w.token_embd, tokens, n, x);
    be.rms_norm(x, w.layers[0].attn_norm, h, n, d, d, c.norm_eps);

    // Each residual add comes with the norm after it (add_rms_norm): h holds the normed x.
    for (int il = 0; il < c.n_layer; ++il) {
        check_abort();
        const layer_weights& l = w.layers[size_t(il)];

        // ---- attention ----
        if (c.mla) {
            attention_mla(il, l, n, pos0);
        } else {
            const qkv_rows r = project_qkv(l, n);
            be.attention_inputs(*kv_, il, r.q, r.k, r.v, n, pos0, l.attn_q_norm, l.attn_k_norm, c);
            be.attention(*kv_, il, r.q, n, pos0, attn_out);
        }
        be.matmul(l.wo, attn_out, n, tmp);
        be.add_rms_norm(x, tmp, l.ffn_norm, h, n, d, c.norm_eps);

        // ---- feed-forward: dense SwiGLU or mixture of experts ----
        if (l.is_moe()) {
            be.ffn_moe(c, l, h, n, tmp);
        } else {
            be.ffn_dense(l.ffn_gate, l.ffn_up, l.ffn_down, h, n, tmp);
        }
        if (il + 1 < c.n_layer) {
            be.add_rms_norm(x, tmp, w.layers[size_t(il) + 1].attn_norm, h, n, d, c.norm_eps);
        } else {
            be.add(x, tmp, int64_t(nt) * d);
        }
        layer_steps_.fetch_add(1, std::memory_order_relaxed);
    }
    check_abort();

    if (mode == logits_mode::none) return;
    const int first = mode == logits_mode::all ? 0 : n - 1;
    const int rows = n - first;
    be.rms_norm(x + size_t(first) * size_t(d), w.output_norm, h, rows, d, d, c.norm_eps);
    be.matmul_to_host(w.output, h, rows, logits_out);
}

// q, k, v (n rows each) = projections of h_, with optional bias (the Q/K norms come in attention_inputs): in q_, k_, v_,
// or, for one token of a fused projection, in place in qkv_ (q, k, v adjacent; no copies).
session::qkv_rows session::project_qkv(const layer_weights& l, int n) {
    const model_config& c = model_->config;
    backend& be = compute_;
    const int64_t q_dim = int64_t(c.n_head) * c.head_dim_k, k_dim = int64_t(c.n_head_kv) * c.head_dim_k,
                  v_dim = int64_t(c.n_head_kv) * c.head_dim_v;
    const size_t nt = size_t(n);
    float* q = act(q_, nt * size_t(q_dim));
    float* k = act(k_, nt * size_t(k_dim));
    float* v = act(v_, nt * size_t(v_dim));
    const float* h = h_->data();
    if (l.wqkv) {
        const int64_t row = q_dim + k_dim + v_dim;
        float* qkv = act(qkv_, nt * size_t(row));
        be.matmul(l.wqkv, h, n, qkv);
        if (n == 1) {
            q = qkv;
            k = qkv + q_dim;
            v = qkv + q_dim + k_dim;
        } else {
            be.copy(qkv, row, q, q_dim, n, q_dim);
            be.copy(qkv + q_dim, row, k, k_dim, n, k_dim);
            be.copy(qkv + q_dim + k_dim, row, v, v_dim, n, v_dim);
        }
    } else {
        be.matmul_group({{&l.wq, q}, {&l.wk, k}, {&l.wv, v}}, h, n);
    }
    if (l.bq) be.add_bias(q, l.bq, n, q_dim);
    if (l.bk) be.add_bias(k, l.bk, n, k_dim);
    if (l.bv) be.add_bias(v, l.bv, n, v_dim);
    return {q, k, v};  // the Q/K norms follow in attention_inputs
}

// Multi-head latent attention, absorbed form (see model_config::mla). Writes attn_out_:
// (n, n_head * head_dim_v_mla).
void session::attention_mla(int il, const layer_weights& l, int n, int pos0) {
    const model_config& c = model_->config;
    backend& be = compute_;
    const int n_head = c.n_head, rope = c.n_rot, lora = c.kv_lora_rank, k_mla = c.head_dim_k_mla, nope = k_mla - rope;
    const size_t nt = size_t(n);
    const int64_t row = lora + rope;
    const float* h = h_->data();

    // Queries: (n, n_head, k_mla), through the optional low-rank bottleneck.
    float* mq = act(mla_q_, nt * size_t(n_head) * size_t(k_mla));
    if (l.wq_a) {
        float* t = act(mla_tmp_, nt * size_t(c.q_lora_rank));
        be.matmul(l.wq_a, h, n, t);
        be.rms_norm(t, l.attn_q_a_norm, t, n, c.q_lora_rank, c.q_lora_rank, c.norm_eps);
        be.matmul(l.wq_b, t, n, mq);
    } else {
        be.matmul(l.wq, h, n, mq);
    }
    // Latent KV: (n, lora + rope) = [RMSNorm(compressed KV), RoPE(shared key)], cached as is.
    float* kv = act(mla_kv_, nt * size_t(row));
    be.matmul(l.wkv_a_mqa, h, n, kv);
    be.rms_norm(kv, l.attn_kv_a_norm, kv, n, lora, row, c.norm_eps);
    be.rope(kv + lora, n, row, 1, rope, rope, pos0, c);
    be.kv_store(*kv_, il, kv, nullptr, pos0, n);

    // Absorbed queries q_: (n, n_head, lora + rope) = [wk_b[h] . q_nope, RoPE(q_pe)].
    float* q = act(q_, nt * size_t(n_head) * size_t(row));
    float* q_nope = act(mla_nope_, nt * size_t(std::max(nope, c.head_dim_v_mla)));
    float* absorbed = act(mla_tmp_, nt * size_t(std::max(lora, c.q_lora_rank)));
    const int64_t q_stride = int64_t(n_head) * k_mla, out_stride = int64_t(n_head) * row;
    for (int hd = 0; hd < n_head; ++hd) {
        const float* qh = mq + size_t(hd) * size_t(k_mla);
        float* dst = q + size_t(hd) * size_t(row);
        be.copy(qh, q_stride, q_nope, nope, n, nope);
        be.copy(qh + nope, q_stride, dst + lora, out_stride, n, rope);
        be.rope(dst + lora, n, out_stride, 1, rope, rope, pos0, c);
        // llama.cpp multiplies a permuted view of the query heads here.
        be.matmul(l.wk_b.expert(hd), q_nope, n, absorbed, activation_view::permuted);
        be.copy(absorbed, lora, dst, out_stride, n, lora);
    }
    // Attention in the latent space (one KV head): latent = (n, n_head, lora).
    float* latent = act(mla_latent_, nt * size_t(n_head) * size_t(lora));
    be.attention(*kv_, il, q, n, pos0, latent);
    // Expand each head's latent output with wv_b[h]: attn_out_ = (n, n_head, head_dim_v_mla).
    const int v_mla = c.head_dim_v_mla;
    float* attn_out = attn_out_->data();
    for (int hd = 0; hd < n_head; ++hd) {
        be.copy(latent + size_t(hd) * size_t(lora), int64_t(n_head) * lora, absorbed, lora, n, lora);
        be.matmul(l.wv_b.expert(hd), absorbed, n, q_nope);
        be.copy(q_nope, v_mla, attn_out + size_t(hd) * size_t(v_mla), int64_t(n_head) * v_mla, n, v_mla);
    }
}

}  // namespace moerun
