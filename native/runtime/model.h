// The model as the forward pass sees it: hyper-parameters (model_config), weight views into the
// mapped GGUF file (model_weights), and the file itself. Architecture files in native/arch/ fill
// these from GGUF metadata and tensor names; the forward pass in forward.cpp is shared and driven
// by config flags.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../cpu/thread_pool.h"
#include "../gguf/gguf.h"
#include "tensor.h"

namespace moerun {

enum class rope_kind {
    normal,  // rotate adjacent pairs (x[2i], x[2i+1]): llama
    neox,    // rotate halves (x[i], x[i + n_rot/2]): qwen2, qwen3moe, ...
};

struct model_config {
    std::string architecture;  // GGUF general.architecture
    int n_layer = 0;
    int n_embd = 0;         // hidden size
    int n_head = 0;         // query heads
    int n_head_kv = 0;      // key/value heads (GQA when < n_head)
    int head_dim_k = 0;     // per-head query/key size
    int head_dim_v = 0;     // per-head value size
    int n_ff = 0;           // dense FFN hidden size
    int n_vocab = 0;
    int n_ctx_train = 0;
    float norm_eps = 1e-5f;  // RMSNorm epsilon

    // RoPE
    rope_kind rope_type = rope_kind::normal;
    int n_rot = 0;              // rotated dims per head (<= head_dim_k)
    float rope_freq_base = 10000.0f;
    float rope_freq_scale = 1.0f;  // 1 / linear scaling factor

    // Mixture of experts (0 = dense)
    int n_expert = 0;
    int n_expert_used = 0;
};

struct layer_weights {
    tensor attn_norm;  // (n_embd)
    tensor wq;         // (n_embd, n_head * head_dim_k)
    tensor wk;         // (n_embd, n_head_kv * head_dim_k)
    tensor wv;         // (n_embd, n_head_kv * head_dim_v)
    tensor wo;         // (n_head * head_dim_v, n_embd)
    tensor bq, bk, bv;  // optional biases (qwen2): (n_head * head_dim_k) ...
    tensor ffn_norm;   // (n_embd)
    tensor ffn_gate;   // (n_embd, n_ff)
    tensor ffn_up;     // (n_embd, n_ff)
    tensor ffn_down;   // (n_ff, n_embd)
};

struct model_weights {
    tensor token_embd;   // (n_embd, n_vocab)
    tensor output_norm;  // (n_embd)
    tensor output;       // (n_embd, n_vocab); token_embd when the file ties them
    std::vector<layer_weights> layers;
};

struct model {
    std::unique_ptr<gguf_file> file;
    model_config config;
    model_weights weights;
    std::unique_ptr<thread_pool> pool;
    // The pool runs one job at a time; sessions on the same model take turns per evaluate call.
    std::mutex compute_mutex;
};

}  // namespace moerun
