// Per-token expert routing and per-pair RoPE: the arithmetic of ops.cu's moe_route and rope
// kernels as __host__ __device__ functions, so that test/test_cuda_ops.cu checks them on a machine
// without a GPU (and the block-wide routing of the kernel against them, under the emulator or on
// a GPU). Semantics as the CPU backend's (cpu/ffn.cpp route_token, cpu/ops.cpp rope_apply).
#pragma once

#include <cmath>
#include <cstdint>

#include "api.h"
#include "common.cuh"

#ifndef MC_HD
#define MC_HD __host__ __device__ inline
#endif

namespace mc {

// The sigmoid of a router logit as the CPU's route computes it, 1 / (1 + e^-x) with the host
// libm's expf, as nearly as a device can: the device's expf is within 2 ulp, and routing takes
// discrete decisions on these values (a last-bit difference can pick another expert, then the
// token's output differs by far more than rounding), so the device rounds the double exponential
// to float instead, which agrees with glibc's expf on all but 7.6e-5 of the floats in (-104, 104)
// (every one compared on the host). The host and the emulator call expf itself.
MC_HD float router_sigmoid(float x) {
#if defined(__CUDA_ARCH__) && !defined(MOERUN_CUDA_EMULATOR)
    return 1.0f / (1.0f + float(exp(-double(x))));
#else
    return 1.0f / (1.0f + expf(-x));
#endif
}

// The score of group g of the routing below: the sum of its two best scores (its best alone
// where a group has one expert), found in expert order.
MC_HD float group_score(const float* score, int g, int per_group) {
    float b1 = -INFINITY, b2 = -INFINITY;
    for (int e = g * per_group; e < (g + 1) * per_group; ++e) {
        const float v = score[e];
        if (v > b1) {
            b2 = b1;
            b1 = v;
        } else if (v > b2) {
            b2 = v;
        }
    }
    return per_group > 1 ? b1 + b2 : b1;
}

// The n_group_used best of n_groups group scores (lower group first on ties), as bits.
MC_HD unsigned long long best_groups(const float* group_scores, const mc_moe& p) {
    unsigned long long kept = 0;  // n_groups <= 64 (checked by the caller)
    for (int round = 0; round < p.n_group_used; ++round) {
        float best_score = -INFINITY;
        int best_g = -1;
        for (int g = 0; g < p.n_groups; ++g) {
            if (kept >> g & 1ull) continue;
            if (best_g < 0 || group_scores[g] > best_score) {
                best_score = group_scores[g];
                best_g = g;
            }
        }
        kept |= 1ull << best_g;
    }
    return kept;
}

// The selected experts' weights: renormalized to sum 1 when asked (the sum, in double in slot
// order, clamped below at the smallest normal f16 as llama.cpp does), then scaled.
MC_HD void finish_weights(const mc_moe& p, float* weights) {
    double wsum = 0;
    for (int k = 0; k < p.n_expert_used; ++k) wsum += double(weights[k]);
    const float denom = fmaxf(float(wsum), 6.103515625e-5f);
    for (int k = 0; k < p.n_expert_used; ++k) {
        if (p.norm) weights[k] /= denom;
        if (p.scale != 0.0f && p.scale != 1.0f) weights[k] *= p.scale;
    }
}

// Chooses n_expert_used experts for one token from its router logits (n_expert), writing their
// ids and combine weights. probs, score: n_expert floats of scratch; taken: n_expert bytes.
//   probs = softmax(logits) or sigmoid(logits); score = probs + bias (bias may be null);
//   group-limited: keep the n_group_used groups with the best sums of their two top scores
//   (lower group first on ties), the others' experts score -inf;
//   top-k by score (lower expert first on ties); weights = the selected probs (unbiased),
//   finished by finish_weights.
// The reference of moe_route_kernel's block-wide version (ops.cu), which must give the same bits.
MC_HD void route_token(const float* logits, const float* bias, const mc_moe& p, float* probs, float* score, unsigned char* taken,
                       int32_t* ids, float* weights) {
    const int n = p.n_expert;
    if (p.sigmoid) {
        for (int e = 0; e < n; ++e) probs[e] = router_sigmoid(logits[e]);
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
        float group_scores[64];
        for (int g = 0; g < p.n_groups; ++g) group_scores[g] = group_score(score, g, per_group);
        const unsigned long long kept = best_groups(group_scores, p);
        for (int e = 0; e < n; ++e) {
            if (!(kept >> (e / per_group) & 1ull)) score[e] = -INFINITY;
        }
    }
    for (int k = 0; k < p.n_expert_used; ++k) {
        int best = -1;
        for (int e = 0; e < n; ++e) {
            if (!taken[e] && (best < 0 || score[e] > score[best])) best = e;
        }
        taken[best] = 1;
        ids[k] = best;
        weights[k] = probs[best];
    }
    finish_weights(p, weights);
}

// A top-k round's candidate (expert -1: none).
struct route_pick {
    float score;
    int expert;
};
// The better of two: the greater score, then the lower expert.
__device__ inline route_pick better(route_pick a, route_pick b) {
    if (a.expert < 0) return b;
    if (b.expert < 0) return a;
    return b.score > a.score || (b.score == a.score && b.expert < a.expert) ? b : a;
}

// route_token by a block of threads, with the same bits: the element-wise steps spread over the
// threads; the sums whose order matters (softmax's, in double) and the ranking of the groups on
// thread 0, in route_token's order; each top-k round an argmax over the block whose ties go to
// the lower expert, which is route_token's first maximum. sh: probs, score (n_expert floats each),
// taken (n_expert bytes) of shared memory. blockDim.x: a multiple of 32.
__device__ inline void route_token_block(const float* logits, const float* bias, const mc_moe& p, float* sh, int32_t* ids, float* weights) {
    __shared__ float group_scores[64], softmax_scale;
    __shared__ unsigned long long kept;
    __shared__ route_pick warp_best[32];
    __shared__ float picked[64];
    const int n = p.n_expert, tid = threadIdx.x, n_threads = blockDim.x, lane = tid % 32;
    float* probs = sh;
    float* score = sh + n;
    unsigned char* taken = reinterpret_cast<unsigned char*>(sh + 2 * n);
    if (p.sigmoid) {
        for (int e = tid; e < n; e += n_threads) probs[e] = router_sigmoid(logits[e]);
    } else {
        float mx = -INFINITY;
        for (int e = tid; e < n; e += n_threads) mx = fmaxf(mx, logits[e]);
        mx = block_max(mx);  // a maximum is the same in any order
        for (int e = tid; e < n; e += n_threads) probs[e] = expf(logits[e] - mx);
        __syncthreads();
        if (tid == 0) {
            double sum = 0;
            for (int e = 0; e < n; ++e) sum += double(probs[e]);
            softmax_scale = float(1.0 / sum);
        }
        __syncthreads();
        for (int e = tid; e < n; e += n_threads) probs[e] *= softmax_scale;
    }
    for (int e = tid; e < n; e += n_threads) {
        score[e] = probs[e] + (bias ? bias[e] : 0.0f);
        taken[e] = 0;
    }
    __syncthreads();
    if (p.n_groups > 1) {
        const int per_group = n / p.n_groups;
        for (int g = tid; g < p.n_groups; g += n_threads) group_scores[g] = group_score(score, g, per_group);
        __syncthreads();
        if (tid == 0) kept = best_groups(group_scores, p);
        __syncthreads();
        for (int e = tid; e < n; e += n_threads) {
            if (!(kept >> (e / per_group) & 1ull)) score[e] = -INFINITY;
        }
        __syncthreads();
    }
    for (int k = 0; k < p.n_expert_used; ++k) {
        route_pick best{0.0f, -1};
        for (int e = tid; e < n; e += n_threads) {
            if (!taken[e]) best = better(best, {score[e], e});
        }
        for (int o = 16; o > 0; o >>= 1) best = better(best, {__shfl_xor_sync(0xffffffffu, best.score, o), __shfl_xor_sync(0xffffffffu, best.expert, o)});
        if (lane == 0) warp_best[tid / 32] = best;
        __syncthreads();
        if (tid == 0) {
            for (int w = 1; w < n_threads / 32; ++w) best = better(best, warp_best[w]);
            taken[best.expert] = 1;
            ids[k] = best.expert;
            picked[k] = probs[best.expert];
        }
        __syncthreads();
    }
    if (tid == 0) {
        finish_weights(p, picked);
        for (int k = 0; k < p.n_expert_used; ++k) weights[k] = picked[k];
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
