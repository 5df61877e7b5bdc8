#include <climits>
#include <cmath>
#include <cstring>

#include "../base/error.h"
#include "arch.h"

namespace moerun {

void arch_load_llama(model& m);
void arch_load_qwen2(model& m);
void arch_load_qwen2moe(model& m);
void arch_load_qwen3moe(model& m);
void arch_load_olmoe(model& m);
void arch_load_bailingmoe2(model& m);
void arch_load_deepseek2(model& m);

const arch_loader* arch_find(std::string_view name) {
    static const arch_loader loaders[] = {
        {"llama", arch_load_llama},
        {"qwen2", arch_load_qwen2},
        {"qwen2moe", arch_load_qwen2moe},
        {"qwen3moe", arch_load_qwen3moe},
        {"olmoe", arch_load_olmoe},
        {"bailingmoe2", arch_load_bailingmoe2},
        {"deepseek2", arch_load_deepseek2},
    };
    for (const auto& l : loaders) {
        if (name == l.name) return &l;
    }
    return nullptr;
}

namespace {
std::string key_of(const model& m, const char* suffix) { return m.config.architecture + "." + suffix; }
}  // namespace

int64_t arch_get_int(const model& m, const char* suffix) {
    const std::string key = key_of(m, suffix);
    auto v = m.file->get_int(key);
    if (!v) throw error(error_code::bad_format, format("model: %s: required key '%s' is missing", m.file->path().c_str(), key.c_str()));
    return *v;
}

int64_t arch_get_int_or(const model& m, const char* suffix, int64_t fallback) {
    return m.file->get_int(key_of(m, suffix)).value_or(fallback);
}

float arch_get_float_or(const model& m, const char* suffix, float fallback) {
    return float(m.file->get_float(key_of(m, suffix)).value_or(fallback));
}

namespace {
int checked_count(const model& m, const char* suffix, int64_t v) {
    if (v < 0 || v > INT32_MAX) {
        throw error(error_code::bad_format, format("model: %s: '%s' is %lld, not a count (0 .. %d)", m.file->path().c_str(),
                                                   key_of(m, suffix).c_str(), (long long)v, INT32_MAX));
    }
    return int(v);
}
}  // namespace

int arch_get_count(const model& m, const char* suffix) { return checked_count(m, suffix, arch_get_int(m, suffix)); }

int arch_get_count_or(const model& m, const char* suffix, int64_t fallback) {
    return checked_count(m, suffix, arch_get_int_or(m, suffix, fallback));
}

tensor arch_tensor(const model& m, const std::string& name, std::initializer_list<int64_t> shape, tensor_use use, bool required) {
    const gguf_tensor_info* info = m.file->find_tensor(name);
    if (!info) {
        if (!required) return tensor{};
        throw error(error_code::bad_format, format("model: %s: required tensor '%s' is missing", m.file->path().c_str(), name.c_str()));
    }
    auto shape_str = [](const int64_t* ne, size_t n) {
        std::string s = "[";
        for (size_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
        return s + "]";
    };
    int64_t want[4] = {1, 1, 1, 1};
    size_t i = 0;
    for (int64_t d : shape) want[i++] = d;
    if (std::memcmp(want, info->ne, sizeof want) != 0) {
        throw error(error_code::bad_format, format("model: tensor '%s' has shape %s, expected %s", name.c_str(),
                                                   shape_str(info->ne, info->n_dims).c_str(), shape_str(want, shape.size()).c_str()));
    }
    const type_traits& tt = type_traits_reference(info->type);
    if (use == tensor_use::matrix && !tt.vec_dot) {
        throw error(error_code::unsupported, format("model: tensor '%s' has type %s, which moerun does not support yet",
                                                    name.c_str(), tensor_type_name(info->type)));
    }
    if (use == tensor_use::vector && info->type != tensor_type::F32) {
        throw error(error_code::unsupported, format("model: tensor '%s' has type %s; norm and bias vectors must be F32",
                                                    name.c_str(), tensor_type_name(info->type)));
    }
    tensor t;
    t.data = info->data;
    t.type = info->type;
    std::memcpy(t.ne, info->ne, sizeof t.ne);
    t.row_stride = row_size(t.type, t.ne[0]);
    t.name = &info->name;
    return t;
}

void arch_read_common_hparams(model& m) {
    model_config& c = m.config;
    c.n_layer = arch_get_count(m, "block_count");
    c.n_embd = arch_get_count(m, "embedding_length");
    c.n_head = arch_get_count(m, "attention.head_count");
    c.n_head_kv = arch_get_count_or(m, "attention.head_count_kv", c.n_head);
    c.n_ctx_train = arch_get_count_or(m, "context_length", 2048);
    c.n_ff = arch_get_count_or(m, "feed_forward_length", 0);
    if (c.n_layer <= 0 || c.n_layer > 4096 || c.n_embd <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 ||
        c.n_head % c.n_head_kv != 0) {
        throw error(error_code::bad_format,
                    format("model: %s: implausible hyper-parameters: block_count %d, embedding_length %d, head_count %d, head_count_kv %d",
                           m.file->path().c_str(), c.n_layer, c.n_embd, c.n_head, c.n_head_kv));
    }
    c.head_dim_k = arch_get_count_or(m, "attention.key_length", c.n_embd / c.n_head);
    c.head_dim_v = arch_get_count_or(m, "attention.value_length", c.n_embd / c.n_head);
    c.norm_eps = arch_get_float_or(m, "attention.layer_norm_rms_epsilon", 1e-5f);
    c.n_rot = arch_get_count_or(m, "rope.dimension_count", c.head_dim_k);
    c.rope_freq_base = arch_get_float_or(m, "rope.freq_base", 10000.0f);
    const float scale = arch_get_float_or(m, "rope.scaling.factor", 0.0f);
    c.rope_freq_scale = scale > 0 ? 1.0f / scale : 1.0f;
    arch_setup_yarn(m, 0.0f, false);
    if (c.head_dim_k <= 0 || c.head_dim_v <= 0 || c.n_rot <= 0 || c.n_rot > c.head_dim_k || c.n_rot % 2 != 0 || c.n_rot > 512) {
        throw error(error_code::bad_format, format("model: %s: implausible head sizes: key_length %d, value_length %d, rope dims %d",
                                                   m.file->path().c_str(), c.head_dim_k, c.head_dim_v, c.n_rot));
    }
    const gguf_tensor_info* embd = m.file->find_tensor("token_embd.weight");
    if (!embd) throw error(error_code::bad_format, format("model: %s: required tensor 'token_embd.weight' is missing", m.file->path().c_str()));
    if (embd->ne[1] <= 0 || embd->ne[1] > INT32_MAX) {
        throw error(error_code::bad_format, format("model: %s: token_embd.weight has %lld rows, not a vocabulary size", m.file->path().c_str(),
                                                   (long long)embd->ne[1]));
    }
    c.n_vocab = int(embd->ne[1]);
    // One embedding row (and one output row, checked with the output's shape) per token, as
    // llama.cpp requires. Out-of-range special token ids are not an error: llama.cpp ignores
    // them (with a warning) and so does the tokenizer.
    if (const gguf_value* tokens = m.file->find("tokenizer.ggml.tokens");
        tokens && tokens->type == gguf_type::array && tokens->elem_type == gguf_type::string && tokens->strings.size() != size_t(c.n_vocab)) {
        throw error(error_code::bad_format, format("model: %s: the vocabulary has %zu tokens but token_embd.weight has %d rows; they must match",
                                                   m.file->path().c_str(), tokens->strings.size(), c.n_vocab));
    }
}

void arch_read_moe_hparams(model& m) {
    model_config& c = m.config;
    c.n_expert = arch_get_count_or(m, "expert_count", 0);
    c.n_expert_used = arch_get_count_or(m, "expert_used_count", 0);
    if (c.n_expert == 0) {
        // Dense, unless the file has routers: then the count is missing, not zero.
        for (int il = 0; il < c.n_layer; ++il) {
            const std::string router = format("blk.%d.ffn_gate_inp.weight", il);
            if (m.file->find_tensor(router)) {
                throw error(error_code::bad_format, format("model: %s: '%s.expert_count' is missing or 0, but the file has expert routers (%s)",
                                                           m.file->path().c_str(), c.architecture.c_str(), router.c_str()));
            }
        }
        return;
    }
    c.n_ff_exp = arch_get_count_or(m, "expert_feed_forward_length", c.n_ff);
    c.n_layer_dense_lead = arch_get_count_or(m, "leading_dense_block_count", 0);
    c.expert_weights_norm = m.file->get_bool(c.architecture + ".expert_weights_norm").value_or(c.expert_weights_norm);
    c.expert_weights_scale = arch_get_float_or(m, "expert_weights_scale", c.expert_weights_scale);
    const int64_t gating = arch_get_int_or(m, "expert_gating_func", 0);  // 0: the architecture's default
    if (gating == 1) c.gating = expert_gating::softmax;
    else if (gating == 2) c.gating = expert_gating::sigmoid;
    else if (gating != 0) throw error(error_code::unsupported, format("model: %s: expert_gating_func %lld is not supported", m.file->path().c_str(), (long long)gating));
    c.n_expert_groups = arch_get_count_or(m, "expert_group_count", 1);
    c.n_group_used = arch_get_count_or(m, "expert_group_used_count", c.n_expert_groups);
    if (c.n_expert < 1 || c.n_expert > 4096 || c.n_expert_used < 1 || c.n_expert_used > c.n_expert || c.n_ff_exp <= 0 ||
        c.n_expert_groups < 1 || c.n_expert % c.n_expert_groups != 0 || c.n_group_used < 1 || c.n_group_used > c.n_expert_groups ||
        c.n_expert_used > c.n_group_used * (c.n_expert / c.n_expert_groups) || c.n_layer_dense_lead < 0 || c.n_layer_dense_lead > c.n_layer) {
        throw error(error_code::bad_format,
                    format("model: %s: implausible MoE hyper-parameters: %d experts, %d used, expert width %d, %d groups (%d used), %d leading dense layers",
                           m.file->path().c_str(), c.n_expert, c.n_expert_used, c.n_ff_exp, c.n_expert_groups, c.n_group_used, c.n_layer_dense_lead));
    }
}

void arch_load_embeddings(model& m) {
    const model_config& c = m.config;
    model_weights& w = m.weights;
    w.token_embd = arch_tensor(m, "token_embd.weight", {c.n_embd, c.n_vocab}, tensor_use::matrix);
    w.output_norm = arch_tensor(m, "output_norm.weight", {c.n_embd}, tensor_use::vector);
    w.output = arch_tensor(m, "output.weight", {c.n_embd, c.n_vocab}, tensor_use::matrix, /*required=*/false);
    if (!w.output) w.output = w.token_embd;  // tied embeddings
}

void arch_load_attention(model& m, layer_weights& l, const std::string& p, const attention_layout& a) {
    const model_config& c = m.config;
    const int64_t d = c.n_embd, q_dim = int64_t(c.n_head) * c.head_dim_k, k_dim = int64_t(c.n_head_kv) * c.head_dim_k,
                  v_dim = int64_t(c.n_head_kv) * c.head_dim_v, o_dim = int64_t(c.n_head) * c.head_dim_v;
    l.attn_norm = arch_tensor(m, p + "attn_norm.weight", {d}, tensor_use::vector);
    if (a.fused_qkv) {
        l.wqkv = arch_tensor(m, p + "attn_qkv.weight", {d, q_dim + k_dim + v_dim}, tensor_use::matrix);
    } else {
        l.wq = arch_tensor(m, p + "attn_q.weight", {d, q_dim}, tensor_use::matrix);
        l.wk = arch_tensor(m, p + "attn_k.weight", {d, k_dim}, tensor_use::matrix);
        l.wv = arch_tensor(m, p + "attn_v.weight", {d, v_dim}, tensor_use::matrix);
    }
    if (a.bias) {
        l.bq = arch_tensor(m, p + "attn_q.bias", {q_dim}, tensor_use::vector);
        l.bk = arch_tensor(m, p + "attn_k.bias", {k_dim}, tensor_use::vector);
        l.bv = arch_tensor(m, p + "attn_v.bias", {v_dim}, tensor_use::vector);
    }
    if (a.norm != qk_norm::none) {
        const bool per_head = a.norm == qk_norm::per_head;
        l.attn_q_norm = arch_tensor(m, p + "attn_q_norm.weight", {per_head ? c.head_dim_k : q_dim}, tensor_use::vector);
        l.attn_k_norm = arch_tensor(m, p + "attn_k_norm.weight", {per_head ? c.head_dim_k : k_dim}, tensor_use::vector);
    }
    l.wo = arch_tensor(m, p + "attn_output.weight", {o_dim, d}, tensor_use::matrix);
}

void arch_load_dense_ffn(model& m, layer_weights& l, const std::string& p, int64_t n_ff) {
    const int64_t d = m.config.n_embd;
    if (n_ff <= 0) throw error(error_code::bad_format, format("model: %s: feed_forward_length is missing or zero", m.file->path().c_str()));
    l.ffn_norm = arch_tensor(m, p + "ffn_norm.weight", {d}, tensor_use::vector);
    l.ffn_gate = arch_tensor(m, p + "ffn_gate.weight", {d, n_ff}, tensor_use::matrix);
    l.ffn_up = arch_tensor(m, p + "ffn_up.weight", {d, n_ff}, tensor_use::matrix);
    l.ffn_down = arch_tensor(m, p + "ffn_down.weight", {n_ff, d}, tensor_use::matrix);
}

void arch_load_moe_ffn(model& m, layer_weights& l, const std::string& p) {
    const model_config& c = m.config;
    const int64_t d = c.n_embd, ne = c.n_expert, ff = c.n_ff_exp;
    l.ffn_norm = arch_tensor(m, p + "ffn_norm.weight", {d}, tensor_use::vector);
    l.ffn_gate_inp = arch_tensor(m, p + "ffn_gate_inp.weight", {d, ne}, tensor_use::matrix);
    l.ffn_exp_probs_b = arch_tensor(m, p + "exp_probs_b.bias", {ne}, tensor_use::vector, /*required=*/false);
    l.ffn_gate_exps = arch_tensor(m, p + "ffn_gate_exps.weight", {d, ff, ne}, tensor_use::matrix);
    l.ffn_up_exps = arch_tensor(m, p + "ffn_up_exps.weight", {d, ff, ne}, tensor_use::matrix);
    l.ffn_down_exps = arch_tensor(m, p + "ffn_down_exps.weight", {ff, d, ne}, tensor_use::matrix);
}

void arch_load_shared_expert(model& m, layer_weights& l, const std::string& p, int64_t n_ff_shexp, bool with_gate) {
    const int64_t d = m.config.n_embd;
    l.ffn_gate_shexp = arch_tensor(m, p + "ffn_gate_shexp.weight", {d, n_ff_shexp}, tensor_use::matrix);
    l.ffn_up_shexp = arch_tensor(m, p + "ffn_up_shexp.weight", {d, n_ff_shexp}, tensor_use::matrix);
    l.ffn_down_shexp = arch_tensor(m, p + "ffn_down_shexp.weight", {n_ff_shexp, d}, tensor_use::matrix);
    if (with_gate) l.ffn_gate_inp_shexp = arch_tensor(m, p + "ffn_gate_inp_shexp.weight", {d}, tensor_use::vector);
}

void arch_setup_yarn(model& m, float yarn_log_mul, bool deepseek_mscale) {
    model_config& c = m.config;
    const std::string type = m.file->get_string(c.architecture + ".rope.scaling.type").value_or("linear");
    if (type == "none") c.rope_freq_scale = 1.0f;
    else if (type != "linear" && type != "yarn") {
        throw error(error_code::unsupported, format("model: %s: rope.scaling.type '%s' is not supported", m.file->path().c_str(), type.c_str()));
    }
    c.rope_ext_factor = type == "yarn" ? 1.0f : 0.0f;
    const float attn_factor = arch_get_float_or(m, "rope.scaling.attn_factor", 1.0f);
    c.rope_mscale = attn_factor;
    if (c.rope_ext_factor == 0.0f) return;
    auto get_mscale = [](float s, float ms) { return s <= 1.0f ? 1.0f : 0.1f * ms * std::log(s) + 1.0f; };
    const float factor = 1.0f / c.rope_freq_scale;
    float mscale;
    if (yarn_log_mul != 0.0f) {
        const float ms = deepseek_mscale && yarn_log_mul != 1.0f ? yarn_log_mul : 1.0f;
        mscale = get_mscale(factor, ms) / get_mscale(factor, yarn_log_mul);
    } else {
        mscale = get_mscale(factor, 1.0f);
    }
    // ggml's rope multiplies by (1 + 0.1 ln factor) again under YaRN; cancel it here.
    c.rope_mscale = mscale / (1.0f + 0.1f * std::log(factor)) * attn_factor;
    const float beta_fast = 32.0f, beta_slow = 1.0f;
    const int n_ctx_orig = arch_get_count_or(m, "rope.scaling.original_context_length", c.n_ctx_train);
    auto corr_dim = [&](float n_rot_turns) {
        return float(c.n_rot) * std::log(float(n_ctx_orig) / (n_rot_turns * 2.0f * float(M_PI))) / (2.0f * std::log(c.rope_freq_base));
    };
    c.rope_corr_dims[0] = std::max(0.0f, std::floor(corr_dim(beta_fast)));
    c.rope_corr_dims[1] = std::min(float(c.n_rot - 1), std::ceil(corr_dim(beta_slow)));
}

}  // namespace moerun
