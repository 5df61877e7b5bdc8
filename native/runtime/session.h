// A session: one sequence's KV cache and scratch buffers over a shared model. Evaluating tokens
// appends them to the cache and returns logits.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "../backend/backend.h"
#include "model.h"

namespace moerun {

struct session_params {
    int n_ctx = 4096;                         // KV cache capacity in tokens
    tensor_type kv_type = tensor_type::F16;   // F32, F16, BF16 or Q8_0
    int n_batch = 0;                          // tokens per forward chunk (bounds scratch memory); 0: the
                                              // model's default_batch_tokens (runtime/placement.h)
};

enum class logits_mode { none, last, all };

class session {
public:
    session(std::shared_ptr<model> m, const session_params& params);

    // Appends `n` tokens at positions n_past()..n_past()+n-1 and fills `logits` with one row of
    // n_vocab floats per token (all), for the last token (last), or nothing. Checks `abort`
    // between layers; an abort throws error(aborted) and keeps the batches of n_batch tokens
    // finished before it (n_past() counts them).
    void evaluate(const int32_t* tokens, int n, logits_mode mode, std::vector<float>& logits,
                  const std::atomic<bool>* abort);

    // What the compute loop has done, for tests and stats: readable from any thread while an
    // evaluation runs. A layer step is one layer of one batch.
    struct work_counters {
        uint64_t layer_steps = 0;         // since the session was created
        uint64_t aborted_evaluations = 0;
        // The last aborted evaluate(): layer steps it had finished when it saw the flag, out of
        // the steps the whole call needed (batches × layers); -1 before any abort.
        int64_t last_abort_steps_done = -1, last_abort_steps_planned = -1;
        // This session's share of the device's expert cache (backend::expert_cache_stats) where
        // routed experts are split between a GPU and the host: selected experts found in a slot,
        // computed by the host, and copied into a slot.
        uint64_t expert_hits = 0, expert_misses = 0, expert_loads = 0;
    };
    work_counters counters() const;

    // Hands the input rows of every weight product of later evaluate() calls to `o` (nullptr:
    // stop); the session does not own it. See runtime/imatrix.h.
    void set_observer(activation_observer* o) { observer_ = o; }

    int n_past() const { return n_past_; }
    int n_ctx() const { return params_.n_ctx; }
    // Forgets cached positions >= n (0 = everything).
    void truncate(int n);
    size_t kv_bytes() const;
    const model& get_model() const { return *model_; }

private:
    void forward_batch(const int32_t* tokens, int n, int pos0, logits_mode mode, float* logits_out,
                       const std::atomic<bool>* abort);
    struct qkv_rows {
        float *q, *k, *v;
    };
    qkv_rows project_qkv(const layer_weights& l, int n);
    void attention_mla(int il, const layer_weights& l, int n, int pos0);
    float* act(std::unique_ptr<buffer>& b, size_t n_floats);

    std::shared_ptr<model> model_;
    backend& compute_;
    std::atomic<uint64_t> layer_steps_{0}, aborted_evaluations_{0};
    std::atomic<int64_t> last_abort_steps_done_{-1}, last_abort_steps_planned_{-1};
    std::atomic<uint64_t> expert_hits_{0}, expert_misses_{0}, expert_loads_{0};
    session_params params_;
    activation_observer* observer_ = nullptr;
    int n_past_ = 0;
    std::unique_ptr<kv_cache> kv_;

    // Activations in the backend's memory, grown to the largest batch seen. Never read or
    // written here: only handed to the backend's operations.
    std::unique_ptr<buffer> x_, h_, qkv_, q_, k_, v_, attn_out_, tmp_;
    std::unique_ptr<buffer> mla_q_, mla_kv_, mla_nope_, mla_tmp_, mla_latent_;  // MLA intermediates
};

}  // namespace moerun
