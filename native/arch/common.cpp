#include <cmath>
#include <cstring>

#include "../runtime/error.h"
#include "arch.h"

namespace moerun {

void arch_load_llama(model& m);

const arch_loader* arch_find(std::string_view name) {
    static const arch_loader loaders[] = {
        {"llama", arch_load_llama},
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
    const type_traits& tt = type_traits_of(info->type);
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
    t.name = &info->name;
    return t;
}

void arch_read_common_hparams(model& m) {
    model_config& c = m.config;
    c.n_layer = int(arch_get_int(m, "block_count"));
    c.n_embd = int(arch_get_int(m, "embedding_length"));
    c.n_head = int(arch_get_int(m, "attention.head_count"));
    c.n_head_kv = int(arch_get_int_or(m, "attention.head_count_kv", c.n_head));
    c.n_ctx_train = int(arch_get_int_or(m, "context_length", 2048));
    c.n_ff = int(arch_get_int_or(m, "feed_forward_length", 0));
    if (c.n_layer <= 0 || c.n_layer > 4096 || c.n_embd <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 ||
        c.n_head % c.n_head_kv != 0) {
        throw error(error_code::bad_format,
                    format("model: %s: implausible hyper-parameters: block_count %d, embedding_length %d, head_count %d, head_count_kv %d",
                           m.file->path().c_str(), c.n_layer, c.n_embd, c.n_head, c.n_head_kv));
    }
    c.head_dim_k = int(arch_get_int_or(m, "attention.key_length", c.n_embd / c.n_head));
    c.head_dim_v = int(arch_get_int_or(m, "attention.value_length", c.n_embd / c.n_head));
    c.norm_eps = arch_get_float_or(m, "attention.layer_norm_rms_epsilon", 1e-5f);
    c.n_rot = int(arch_get_int_or(m, "rope.dimension_count", c.head_dim_k));
    c.rope_freq_base = arch_get_float_or(m, "rope.freq_base", 10000.0f);
    const float scale = arch_get_float_or(m, "rope.scaling.factor", 0.0f);
    c.rope_freq_scale = scale > 0 ? 1.0f / scale : 1.0f;
    if (c.head_dim_k <= 0 || c.head_dim_v <= 0 || c.n_rot <= 0 || c.n_rot > c.head_dim_k || c.n_rot % 2 != 0) {
        throw error(error_code::bad_format, format("model: %s: implausible head sizes: key_length %d, value_length %d, rope dims %d",
                                                   m.file->path().c_str(), c.head_dim_k, c.head_dim_v, c.n_rot));
    }
    const gguf_tensor_info* embd = m.file->find_tensor("token_embd.weight");
    if (!embd) throw error(error_code::bad_format, format("model: %s: required tensor 'token_embd.weight' is missing", m.file->path().c_str()));
    c.n_vocab = int(embd->ne[1]);
}

}  // namespace moerun
