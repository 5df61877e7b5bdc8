// A session: one sequence's KV cache and scratch buffers over a shared model. Evaluating tokens
// appends them to the cache and returns logits.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "ffn.h"
#include "model.h"

namespace moerun {

struct session_params {
    int n_ctx = 4096;                         // KV cache capacity in tokens
    tensor_type kv_type = tensor_type::F16;   // F32, F16, BF16 or Q8_0
    int n_batch = 256;                        // tokens per forward chunk (bounds scratch memory)
};

enum class logits_mode { none, last, all };

class session {
public:
    session(std::shared_ptr<model> m, const session_params& params);

    // Appends `n` tokens at positions n_past()..n_past()+n-1 and fills `logits` with one row of
    // n_vocab floats per token (all), for the last token (last), or nothing. Checks `abort`
    // between layers; an abort throws error(aborted) and leaves n_past() unchanged.
    void evaluate(const int32_t* tokens, int n, logits_mode mode, std::vector<float>& logits,
                  const std::atomic<bool>* abort);

    int n_past() const { return n_past_; }
    int n_ctx() const { return params_.n_ctx; }
    // Forgets cached positions >= n (0 = everything).
    void truncate(int n);
    size_t kv_bytes() const;
    const model& get_model() const { return *model_; }

private:
    void forward_batch(const int32_t* tokens, int n, int pos0, logits_mode mode, float* logits_out,
                       const std::atomic<bool>* abort);
    void project_qkv(const layer_weights& l, int n);
    void attention(int il, int n, int pos0, const float* q, float* out);
    void attention_mla(int il, const layer_weights& l, int n, int pos0);

    std::shared_ptr<model> model_;
    session_params params_;
    int n_past_ = 0;
    size_t k_row_bytes_ = 0, v_row_bytes_ = 0;  // one head's key / value row in kv_type
    std::vector<std::vector<uint8_t>> k_cache_;  // per layer: (n_ctx, n_head_kv, head_dim_k) in kv_type
    std::vector<std::vector<uint8_t>> v_cache_;  // per layer: (n_ctx, n_head_kv, head_dim_v) in kv_type

    // Scratch, sized for n_batch tokens.
    std::vector<float> x_, h_, qkv_, q_, k_, v_, attn_out_, tmp_;
    std::vector<uint8_t> quant_scratch_;
    ffn_scratch ffn_;
    std::vector<float> mla_q_, mla_kv_, mla_nope_, mla_tmp_, mla_latent_;  // MLA intermediates
    std::vector<std::vector<float>> thread_scratch_;  // per thread: scores + dequantized K/V rows
};

}  // namespace moerun
