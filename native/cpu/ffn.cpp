#include "ffn.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "matmul.h"
#include "ops.h"

namespace moerun {

namespace {

void swiglu_rows_on(thread_pool& pool, float* gate, const float* up, int64_t rows, int64_t n) {
    pool.parallel_for(rows, rows_per_task(n), [&](int64_t b, int64_t e) { moerun::swiglu_rows(gate + b * n, up + b * n, e - b, n); });
}

}  // namespace

void ffn_dense(thread_pool& pool, const tensor& gate, const tensor& up, const tensor& down, const float* x, int n,
               int n_embd, float* out, ffn_scratch& s, activation_observer* observer) {
    const int64_t n_ff = gate.ne[1];
    s.gate.resize(size_t(n) * size_t(n_ff));
    s.up.resize(size_t(n) * size_t(n_ff));
    if (observer) {
        observer->on_matmul(gate, x, n, gate.ne[0]);
        observer->on_matmul(up, x, n, up.ne[0]);
    }
    matmul_group(pool, {{&gate, s.gate.data()}, {&up, s.up.data()}}, x, n, s.quant);
    swiglu_rows_on(pool, s.gate.data(), s.up.data(), n, n_ff);
    if (observer) observer->on_matmul(down, s.gate.data(), n, n_ff);
    matmul(pool, down, s.gate.data(), n, out, s.quant);
    (void)n_embd;
}

namespace {

// Chooses n_expert_used experts for one token and their combine weights.
//   probs: (n_expert) router probabilities; bias: optional selection bias.
void route_token(const model_config& c, const float* probs, const float* bias, int32_t* selected, float* weights,
                 std::vector<float>& score) {
    const int n_expert = c.n_expert;
    score.assign(probs, probs + n_expert);
    if (bias) {
        for (int e = 0; e < n_expert; ++e) score[size_t(e)] += bias[e];
    }
    // Group-limited routing: rank groups by the sum of their two best scores, keep the best
    // n_group_used groups, and mask the experts of the others.
    if (c.n_expert_groups > 1) {
        const int per_group = n_expert / c.n_expert_groups;
        std::vector<std::pair<float, int>> groups(size_t(c.n_expert_groups));
        for (int g = 0; g < c.n_expert_groups; ++g) {
            float best = -std::numeric_limits<float>::infinity(), second = best;
            for (int e = g * per_group; e < (g + 1) * per_group; ++e) {
                const float v = score[size_t(e)];
                if (v > best) { second = best; best = v; }
                else if (v > second) second = v;
            }
            groups[size_t(g)] = {per_group > 1 ? best + second : best, g};
        }
        std::partial_sort(groups.begin(), groups.begin() + c.n_group_used, groups.end(),
                          [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
        std::vector<char> keep(size_t(c.n_expert_groups), 0);
        for (int i = 0; i < c.n_group_used; ++i) keep[size_t(groups[size_t(i)].second)] = 1;
        for (int e = 0; e < n_expert; ++e) {
            if (!keep[size_t(e / per_group)]) score[size_t(e)] = -std::numeric_limits<float>::infinity();
        }
    }
    std::vector<int32_t> order(static_cast<size_t>(n_expert));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + c.n_expert_used, order.end(), [&](int32_t a, int32_t b) {
        return score[size_t(a)] > score[size_t(b)] || (score[size_t(a)] == score[size_t(b)] && a < b);
    });
    double sum = 0;  // in double, as ggml's sum_rows
    for (int k = 0; k < c.n_expert_used; ++k) {
        selected[k] = order[size_t(k)];
        weights[k] = probs[order[size_t(k)]];  // the unbiased probability weighs the output
        sum += double(weights[k]);
    }
    if (c.expert_weights_norm) {
        const float denom = std::max(float(sum), 6.103515625e-5f);  // smallest normal f16, as llama.cpp clamps
        for (int k = 0; k < c.n_expert_used; ++k) weights[k] /= denom;
    }
    if (c.expert_weights_scale != 0.0f && c.expert_weights_scale != 1.0f) {
        for (int k = 0; k < c.n_expert_used; ++k) weights[k] *= c.expert_weights_scale;
    }
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

void ffn_moe_route(thread_pool& pool, const model_config& c, const layer_weights& l, const float* x, int n, ffn_scratch& s,
                   activation_observer* observer) {
    const int d = c.n_embd, n_used = c.n_expert_used, n_expert = c.n_expert;
    s.router.resize(size_t(n) * size_t(n_expert));
    if (observer) observer->on_matmul(l.ffn_gate_inp, x, n, d);
    matmul(pool, l.ffn_gate_inp, x, n, s.router.data(), s.quant);
    s.selected.resize(size_t(n) * size_t(n_used));
    s.weights.resize(size_t(n) * size_t(n_used));
    const float* bias = l.ffn_exp_probs_b ? static_cast<const float*>(l.ffn_exp_probs_b.data) : nullptr;
    // A few microseconds per token (a sort over the experts): prompt batches route on the pool.
    pool.parallel_for(n, rows_per_task(int64_t(n_expert) * 16), [&](int64_t t0, int64_t t1) {
        std::vector<float> score;
        for (int64_t t = t0; t < t1; ++t) {
            float* p = s.router.data() + size_t(t) * size_t(n_expert);
            if (c.gating == expert_gating::softmax) {
                softmax(p, n_expert);
            } else {
                for (int e = 0; e < n_expert; ++e) p[e] = sigmoid(p[e]);
            }
            route_token(c, p, bias, s.selected.data() + size_t(t) * size_t(n_used), s.weights.data() + size_t(t) * size_t(n_used), score);
        }
    });
}

namespace {

// The shared expert joins the routed experts' two passes (matmul_experts) where its matrices have
// their types and shapes (Ling's 512-wide shared expert does): a decode step then synchronizes the
// threads twice per MoE layer for the experts instead of four times.
bool shared_joins_experts(const layer_weights& l) {
    const auto on_host = [](const tensor& t) { return t.location == memory_location::host; };
    return l.shared_expert_like_routed() && on_host(l.ffn_gate_shexp) && on_host(l.ffn_up_shexp) && on_host(l.ffn_down_shexp) &&
           on_host(l.ffn_gate_exps) && on_host(l.ffn_up_exps) && on_host(l.ffn_down_exps);
}

// sigmoid(g) as llama.cpp computes a shared expert's gate, silu(g) / g (to its last bit), except
// at exactly g = 0, where that is NaN and this is 0.5. g is a one-row matmul, which llama.cpp
// sums in the vector-dot order.
float shared_expert_gate(const tensor& gate_inp, const float* x, int d) {
    const cpu_kernels& f32 = cpu_kernels_of(tensor_type::F32);
    const vec_dot_fn dot = f32.vec_dot_unrolled ? f32.vec_dot_unrolled : f32.vec_dot;
    float g;
    dot(d, &g, gate_inp.data, x);
    return g == 0.0f ? 0.5f : g / (1.0f + std::exp(-g)) / g;
}

// ffn_moe_experts, and with with_shared (shared_joins_experts) also the shared expert, as one more
// batch of the same passes over all n tokens, added after the routed slots as ffn_moe_shared adds it.
void run_experts(thread_pool& pool, const model_config& c, const layer_weights& l, const float* x, int n, const int32_t* selected,
                 const float* weights, const uint8_t* host_expert, bool with_shared, float* out, ffn_scratch& s,
                 activation_observer* observer) {
    const int d = c.n_embd, n_used = c.n_expert_used, n_expert = c.n_expert;
    const int64_t n_ff = c.n_ff_exp;
    auto included = [&](int32_t e) { return !host_expert || host_expert[e]; };

    // ---- run each active expert once over its tokens ----
    // Rows of the included (token, slot) pairs sorted by expert: xe holds each pair's input, and
    // the experts run in two grouped passes (gate+up, then down) over all of them.
    std::vector<std::vector<int32_t>> routed(static_cast<size_t>(n_expert));
    for (int t = 0; t < n; ++t) {
        for (int k = 0; k < n_used; ++k) {
            const int32_t e = selected[size_t(t) * size_t(n_used) + size_t(k)];
            if (included(e)) routed[size_t(e)].push_back(t * n_used + k);
        }
    }
    std::vector<expert_batch> batches;
    std::vector<int32_t> pair_of_row;  // row -> (token * n_used + slot)
    pair_of_row.reserve(size_t(n) * size_t(n_used));
    for (int e = 0; e < n_expert; ++e) {
        const auto& pairs = routed[size_t(e)];
        if (pairs.empty()) continue;
        batches.push_back({e, int64_t(pair_of_row.size()), int64_t(pairs.size())});
        pair_of_row.insert(pair_of_row.end(), pairs.begin(), pairs.end());
    }
    const int rows = int(pair_of_row.size());
    // The shared expert's rows follow the routed ones: row rows + t is token t.
    const int shared_rows = with_shared ? n : 0, all_rows = rows + shared_rows;
    if (with_shared) batches.push_back({k_shared_expert, rows, n});
    s.xe.resize(size_t(all_rows) * size_t(d));
    pool.parallel_for(all_rows, rows_per_task(d), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            const int64_t token = r < rows ? pair_of_row[size_t(r)] / n_used : r - rows;
            std::copy_n(x + size_t(token) * size_t(d), d, s.xe.data() + size_t(r) * size_t(d));
        }
    });
    s.gate.resize(size_t(all_rows) * size_t(n_ff));
    s.up.resize(size_t(all_rows) * size_t(n_ff));
    // For the observer (full runs only): the row of x (gate, up: the token's) and of s.gate
    // (down: the pair's) that each (token, slot) pair multiplies.
    if (host_expert) observer = nullptr;
    std::vector<int32_t> row_of;
    if (observer) {
        row_of.resize(size_t(rows));
        for (int p = 0; p < rows; ++p) row_of[size_t(p)] = p / n_used;
        observer->on_experts(l.ffn_gate_exps, selected, row_of.data(), n, n_used, x);
        observer->on_experts(l.ffn_up_exps, selected, row_of.data(), n, n_used, x);
    }
    if (all_rows > 0) {
        const std::initializer_list<matmul_job> gate_up = {{&l.ffn_gate_exps, s.gate.data()}, {&l.ffn_up_exps, s.up.data()}};
        if (with_shared) matmul_experts(pool, gate_up, batches, s.xe.data(), all_rows, s.quant, {&l.ffn_gate_shexp, &l.ffn_up_shexp});
        else matmul_experts(pool, gate_up, batches, s.xe.data(), all_rows, s.quant);
        swiglu_rows_on(pool, s.gate.data(), s.up.data(), all_rows, n_ff);
    }
    // The rows of the (token, slot) pairs; -1: an excluded expert.
    std::vector<int32_t> row_of_pair(size_t(n) * size_t(n_used), -1);
    for (int r = 0; r < rows; ++r) row_of_pair[size_t(pair_of_row[size_t(r)])] = r;
    if (observer) observer->on_experts(l.ffn_down_exps, selected, row_of_pair.data(), n, n_used, s.gate.data());
    // The down products overwrite the gathered inputs, which the gate and up products were the
    // last to read (one buffer of rows x n_embd instead of three at a 512-token chunk's 4096 rows).
    float* const ye = s.xe.data();
    if (with_shared) matmul_experts(pool, {{&l.ffn_down_exps, ye}}, batches, s.gate.data(), all_rows, s.quant, {&l.ffn_down_shexp});
    else if (rows > 0) matmul_experts(pool, {{&l.ffn_down_exps, ye}}, batches, s.gate.data(), rows, s.quant);

    // ---- combine the included slots, slot by slot (the order llama.cpp adds them) ----
    pool.parallel_for(n, rows_per_task(int64_t(d) * n_used), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            float* o = out + size_t(t) * size_t(d);
            const int32_t* sel = selected + size_t(t) * size_t(n_used);
            const float* w = weights + size_t(t) * size_t(n_used);
            bool first = true;
            for (int k = 0; k < n_used; ++k) {
                if (!included(sel[k])) continue;
                const float* e = ye + size_t(row_of_pair[size_t(t) * size_t(n_used) + size_t(k)]) * size_t(d);
                if (first) {
                    for (int i = 0; i < d; ++i) o[i] = e[i] * w[k];
                } else {
                    for (int i = 0; i < d; ++i) o[i] += e[i] * w[k];
                }
                first = false;
            }
            if (first) std::fill_n(o, d, 0.0f);  // no included expert for this token
            if (with_shared) {
                float* shared = ye + size_t(rows + t) * size_t(d);
                if (l.ffn_gate_inp_shexp) {
                    const float gate = shared_expert_gate(l.ffn_gate_inp_shexp, x + size_t(t) * size_t(d), d);
                    for (int i = 0; i < d; ++i) shared[i] *= gate;
                }
                for (int i = 0; i < d; ++i) o[i] += shared[i];
            }
        }
    });
}

}  // namespace

void ffn_moe_experts(thread_pool& pool, const model_config& c, const layer_weights& l, const float* x, int n,
                     const int32_t* selected, const float* weights, const uint8_t* host_expert, float* out, ffn_scratch& s,
                     activation_observer* observer) {
    run_experts(pool, c, l, x, n, selected, weights, host_expert, /*with_shared=*/false, out, s, observer);
}

void ffn_moe_shared(thread_pool& pool, const model_config& c, const layer_weights& l, const float* x, int n, float* out,
                    ffn_scratch& s, activation_observer* observer) {
    if (!l.ffn_up_shexp) return;
    const int d = c.n_embd;
    s.shared.resize(size_t(n) * size_t(d));
    ffn_dense(pool, l.ffn_gate_shexp, l.ffn_up_shexp, l.ffn_down_shexp, x, n, d, s.shared.data(), s, observer);
    if (l.ffn_gate_inp_shexp) {
        if (observer) observer->on_matmul(l.ffn_gate_inp_shexp, x, n, d);
        pool.parallel_for(n, rows_per_task(d), [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t) {
                const float gate = shared_expert_gate(l.ffn_gate_inp_shexp, x + size_t(t) * size_t(d), d);
                for (int i = 0; i < d; ++i) s.shared[size_t(t) * size_t(d) + size_t(i)] *= gate;
            }
        });
    }
    pool.parallel_for(int64_t(n) * d, rows_per_task(1), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[i] += s.shared[size_t(i)];
    });
}

void ffn_moe(thread_pool& pool, const model_config& c, const layer_weights& l, const float* x, int n, float* out,
             ffn_scratch& s, activation_observer* observer) {
    ffn_moe_route(pool, c, l, x, n, s, observer);
    // With an observer (imatrix) the shared expert keeps its own passes, which report its inputs.
    const bool with_shared = !observer && shared_joins_experts(l);
    run_experts(pool, c, l, x, n, s.selected.data(), s.weights.data(), nullptr, with_shared, out, s, observer);
    if (!with_shared) ffn_moe_shared(pool, c, l, x, n, out, s, observer);
}

}  // namespace moerun
