// Feed-forward blocks: the dense SwiGLU FFN and the grouped Mixture-of-Experts FFN.
#pragma once

#include <cstdint>
#include <vector>

#include "../backend/backend.h"
#include "../backend/model_desc.h"
#include "../base/thread_pool.h"

namespace moerun {

// Scratch reused across layers and calls (grows to the largest batch seen).
struct ffn_scratch {
    std::vector<float> gate, up;          // (m, n_ff) activations of one FFN call
    std::vector<float> router;            // (n, n_expert) router logits, then probabilities
    std::vector<int32_t> selected;        // (n, n_expert_used) expert ids per token
    std::vector<float> weights;           // (n, n_expert_used) combine weights per token
    std::vector<float> xe;                // (rows, n_embd) the experts' gathered inputs, then their outputs
    std::vector<float> shared;            // (n, n_embd) shared-expert output
    std::vector<uint8_t> quant;           // activations converted to the weights' dot type
};

// out (n x n_embd) = SwiGLU FFN of x with (gate, up, down). `observer` (may be null) sees each
// weight's input rows.
void ffn_dense(thread_pool& pool, const tensor& gate, const tensor& up, const tensor& down, const float* x, int n,
               int n_embd, float* out, ffn_scratch& s, activation_observer* observer);

// out (n x n_embd) = routed experts (+ shared expert) of x for one MoE layer.
//   route: router logits -> softmax|sigmoid probabilities -> (+ selection bias) -> optional
//          group-limited top-k -> top-k -> weights = probabilities of the chosen (normalized,
//          scaled);
//   run:   tokens are grouped by expert and each expert runs once over its tokens (gate and up
//          fused), so a prompt batch costs one matrix-matrix product per active expert; a shared
//          expert of the routed experts' type and shape runs in the same two passes, over all tokens;
//   combine: out[t] = sum over slots k of weight[t,k] * (slot k's expert output) (+ shared expert).
// `observer` (may be null) sees the router's, each expert's and the shared expert's input rows.
void ffn_moe(thread_pool& pool, const model_config& c, const layer_weights& l, const float* x, int n, float* out,
             ffn_scratch& s, activation_observer* observer);

// ffn_moe's three steps, apart for a layer split between a GPU and the CPU (issue 14): the GPU
// routes and computes the experts it holds, the CPU the others, and the partial sums add up.
// Route: s.selected and s.weights (n x n_expert_used) for x.
void ffn_moe_route(thread_pool& pool, const model_config& c, const layer_weights& l, const float* x, int n, ffn_scratch& s,
                   activation_observer* observer);
// out (n x n_embd) = sum over the slots k whose expert selected[t,k] is marked in host_expert
// (n_expert flags; null: all) of weights[t,k] * expert(x[t]), in slot order; 0 for a token with
// none. `selected` and `weights` may be s.selected / s.weights. The observer sees full runs only.
void ffn_moe_experts(thread_pool& pool, const model_config& c, const layer_weights& l, const float* x, int n,
                     const int32_t* selected, const float* weights, const uint8_t* host_expert, float* out, ffn_scratch& s,
                     activation_observer* observer);
// out += the shared expert of x (gated where the layer has ffn_gate_inp_shexp); nothing without one.
void ffn_moe_shared(thread_pool& pool, const model_config& c, const layer_weights& l, const float* x, int n, float* out,
                    ffn_scratch& s, activation_observer* observer);

}  // namespace moerun
