// Per-token expert routing and per-pair RoPE: the arithmetic of ops.cu's moe_route and rope
// kernels as __host__ __device__ functions, so that test/test_cuda_ops.cu checks them on a machine
// without a GPU. Semantics as the CPU backend's (cpu/ffn.cpp route_token, cpu/ops.cpp rope_apply).
#pragma once

#include <cmath>
#include <cstdint>

#include "api.h"

#ifndef MC_HD
#define MC_HD __host__ __device__ inline
#endif

namespace mc {

// Chooses n_expert_used experts for one token from its router logits (n_expert), writing their
// ids and combine weights. probs, score: n_expert floats of scratch; taken: n_expert bytes.
//   probs = softmax(logits) or sigmoid(logits); score = probs + bias (bias may be null);
//   group-limited: keep the n_group_used groups with the best sums of their two top scores
//   (lower group first on ties), the others' experts score -inf;
//   top-k by score (lower expert first on ties); weights = the selected probs (unbiased),
//   renormalized to sum 1 when asked (the sum, in double, clamped below at the smallest normal
//   f16 as llama.cpp does), then scaled.
MC_HD void route_token(const float* logits, const float* bias, const mc_moe& p, float* probs, float* score, unsigned char* taken,
                       int32_t* ids, float* weights) {
    const int n = p.n_expert;
    if (p.sigmoid) {
        for (int e = 0; e < n; ++e) probs[e] = 1.0f / (1.0f + expf(-logits[e]));
    } else {
        float mx = -INFINITY;
        for (int e = 0; e < n; ++e) mx = fmaxf(mx, logits[e]);
        double sum = 0;
        for (int e = 0; e < n; ++e) {
            probs[e] = expf(logits[e] - mx);
            sum += double(probs[e]);
        }
        const float inv = float(1.0 / sum);
        for (int e = 0; e < n; ++e) probs[e] *= inv;
    }
    for (int e = 0; e < n; ++e) {
        score[e] = probs[e] + (bias ? bias[e] : 0.0f);
        taken[e] = 0;
    }
    if (p.n_groups > 1) {
        const int per_group = n / p.n_groups;
        unsigned long long kept = 0;  // n_groups <= 64 (checked by the caller)
        for (int round = 0; round < p.n_group_used; ++round) {
            float best_score = -INFINITY;
            int best_g = -1;
            for (int g = 0; g < p.n_groups; ++g) {
                if (kept >> g & 1ull) continue;
                float b1 = -INFINITY, b2 = -INFINITY;
                for (int e = g * per_group; e < (g + 1) * per_group; ++e) {
                    const float v = score[e];
                    if (v > b1) { b2 = b1; b1 = v; }
                    else if (v > b2) b2 = v;
                }
                const float gs = per_group > 1 ? b1 + b2 : b1;
                if (best_g < 0 || gs > best_score) { best_score = gs; best_g = g; }
            }
            kept |= 1ull << best_g;
        }
        for (int e = 0; e < n; ++e) {
            if (!(kept >> (e / per_group) & 1ull)) score[e] = -INFINITY;
        }
    }
    double wsum = 0;
    for (int k = 0; k < p.n_expert_used; ++k) {
        int best = -1;
        for (int e = 0; e < n; ++e) {
            if (!taken[e] && (best < 0 || score[e] > score[best])) best = e;
        }
        taken[best] = 1;
        ids[k] = best;
        weights[k] = probs[best];
        wsum += double(weights[k]);
    }
    const float denom = fmaxf(float(wsum), 6.103515625e-5f);
    for (int k = 0; k < p.n_expert_used; ++k) {
        if (p.norm) weights[k] /= denom;
        if (p.scale != 0.0f && p.scale != 1.0f) weights[k] *= p.scale;
    }
}

// Rotates pair `pair` of head h of the token at position pos (head = its head_dim floats), in place:
// normal RoPE pairs (2i, 2i+1), NeoX (i, i + n_rot/2); angle pos * theta_scale^pair by repeated
// multiplication in float as the CPU does; YaRN ramps between interpolation and extrapolation.
MC_HD void rope_pair(float* head, int pair, int n_rot, int pos, const mc_rope& p) {
    float theta = float(pos);
    for (int i = 0; i < pair; ++i) theta *= p.theta_scale;
    const float extrap = theta, interp = p.freq_scale * theta;
    float angle = interp, mscale = p.mscale;
    if (p.ext_factor != 0.0f) {
        const float y = (float(pair) - p.corr_dims[0]) / fmaxf(0.001f, p.corr_dims[1] - p.corr_dims[0]);
        const float ramp = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * p.ext_factor;
        angle = fmaf(interp, 1.0f - ramp, extrap * ramp);
        mscale *= fmaf(0.1f, logf(1.0f / p.freq_scale), 1.0f);
    }
    const float cs = cosf(angle) * mscale, sn = sinf(angle) * mscale;
    const int a = p.neox ? pair : 2 * pair;
    const int b = p.neox ? pair + n_rot / 2 : 2 * pair + 1;
    const float x0 = head[a], x1 = head[b];
    head[a] = fmaf(x0, cs, -(x1 * sn));
    head[b] = fmaf(x0, sn, x1 * cs);
}

}  // namespace mc
