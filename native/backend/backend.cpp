// The backend interface's default compositions of its operations (backend.h).
#include "backend.h"

#include "model_desc.h"

namespace moerun {

void backend::attention_inputs(kv_cache& kv, int layer, float* q, float* k, const float* v, int n, int pos0, const tensor& q_norm,
                               const tensor& k_norm, const model_config& c) {
    const int64_t q_dim = int64_t(c.n_head) * c.head_dim_k, k_dim = int64_t(c.n_head_kv) * c.head_dim_k;
    // Q/K norm: per head when the weight has head_dim elements, else over the whole projection.
    const auto norm = [&](const tensor& w, float* y, int64_t dim) {
        if (!w) return;
        const int64_t len = w.ne[0];
        rms_norm(y, w, y, int64_t(n) * dim / len, len, len, c.norm_eps);
    };
    norm(q_norm, q, q_dim);
    norm(k_norm, k, k_dim);
    if (n == 1 && k == q + q_dim) {  // one token of a fused projection: its q and k heads are adjacent
        rope(q, n, q_dim + k_dim, c.n_head + c.n_head_kv, c.head_dim_k, c.n_rot, pos0, c);
    } else {
        rope(q, n, q_dim, c.n_head, c.head_dim_k, c.n_rot, pos0, c);
        rope(k, n, k_dim, c.n_head_kv, c.head_dim_k, c.n_rot, pos0, c);
    }
    kv_store(kv, layer, k, v, pos0, n);
}

}  // namespace moerun
