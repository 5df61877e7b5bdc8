// Architecture registry. One small file per architecture maps GGUF metadata and tensor names onto
// the shared model_config / model_weights; the forward pass is shared.
#pragma once

#include <string>
#include <string_view>

#include "../runtime/model.h"

namespace moerun {

struct arch_loader {
    const char* name;  // GGUF general.architecture
    void (*load)(model& m);  // fills m.config and m.weights from m.file; throws moerun::error
};

// nullptr when the architecture is not supported.
const arch_loader* arch_find(std::string_view name);

// ---- helpers shared by the architecture files (arch/common.cpp) ----

// Metadata `<arch>.<suffix>`; required ones throw bad_format naming the key when missing.
int64_t arch_get_int(const model& m, const char* suffix);
int64_t arch_get_int_or(const model& m, const char* suffix, int64_t fallback);
float arch_get_float_or(const model& m, const char* suffix, float fallback);
// A count or size (block count, heads, experts, widths): in [0, 2^31 - 1], else bad_format naming
// the key and the value as the file stores it (2^31 experts is not "-2147483648 experts").
int arch_get_count(const model& m, const char* suffix);
int arch_get_count_or(const model& m, const char* suffix, int64_t fallback);

// Tensor by name with an exact shape (ne0 first; unused trailing dims are 1). `required` false
// returns an empty tensor when absent. Matrices (used in matmul) must have a dot kernel; vectors
// must be F32. Errors name the tensor, its shape/type and what was expected.
enum class tensor_use { matrix, vector };
tensor arch_tensor(const model& m, const std::string& name, std::initializer_list<int64_t> shape, tensor_use use,
                   bool required = true);

// Hyper-parameters every transformer has (block count, sizes, heads, norm eps, RoPE), read with
// llama.cpp's defaults.
void arch_read_common_hparams(model& m);
// YaRN constants from rope.scaling.* (llama.cpp's cparams): ramp dims and the cos/sin scale.
// yarn_log_mul: mscale_all_dim (0 when absent); deepseek_mscale: DeepSeek-V2's mscale rule.
void arch_setup_yarn(model& m, float yarn_log_mul, bool deepseek_mscale);
// MoE hyper-parameters (<arch>.expert_count, expert_used_count, expert_feed_forward_length,
// expert_weights_norm/scale, expert_gating_func, expert_group_count/used_count,
// leading_dense_block_count); validates them against each other.
void arch_read_moe_hparams(model& m);

// token_embd, output_norm, output (tied to token_embd when absent).
void arch_load_embeddings(model& m);

enum class qk_norm { none, per_head, whole };
struct attention_layout {
    bool fused_qkv = false;   // attn_qkv instead of attn_q/k/v
    bool bias = false;        // attn_{q,k,v}.bias required
    qk_norm norm = qk_norm::none;
};
// attn_norm, Q/K/V (fused or not, with optional biases and Q/K norms), attn_output.
void arch_load_attention(model& m, layer_weights& l, const std::string& prefix, const attention_layout& a);
// ffn_norm + dense SwiGLU of width n_ff.
void arch_load_dense_ffn(model& m, layer_weights& l, const std::string& prefix, int64_t n_ff);
// ffn_norm + router + routed experts (+ optional exp_probs_b).
void arch_load_moe_ffn(model& m, layer_weights& l, const std::string& prefix);
// Sizes m.weights.layers to n_layer and calls fn(layer, "blk.<il>.", il) for each layer.
template <typename Fn>
void arch_for_each_layer(model& m, Fn fn) {
    m.weights.layers.resize(size_t(m.config.n_layer));
    for (int il = 0; il < m.config.n_layer; ++il) fn(m.weights.layers[size_t(il)], "blk." + std::to_string(il) + ".", il);
}

// Shared expert of width n_ff_shexp; with_gate: its sigmoid gate ffn_gate_inp_shexp (qwen2moe).
void arch_load_shared_expert(model& m, layer_weights& l, const std::string& prefix, int64_t n_ff_shexp, bool with_gate);

}  // namespace moerun
