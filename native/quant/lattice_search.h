// The search behind the lattice quantizers (reference_iq2_quantize.cpp: IQ2_XXS, IQ2_XS, IQ2_S,
// IQ1_S, IQ1_M; reference_iq3_quantize.cpp: IQ3_XXS, IQ3_S), done as llama.cpp's
// quantize_row_iq*_impl do it, so that each writes llama.cpp's bytes:
//
//   lattice_grid                  a grid's search tables: level code -> grid index, and for a code
//                                 off the grid its nearest grid points (iq2xs_init_impl /
//                                 iq3xs_init_impl);
//   quantize_lattice_super_block  the IQ2/IQ3 formats' super-block: per sub-block the importance of
//                                 each weight, the signs split off, trial scales that snap every
//                                 group of magnitudes to the grid, the weighted least-squares scale;
//                                 then the fp16 d and 4-bit sub-block scales. Each format is a
//                                 lattice_format (its constants) plus how it packs its bits.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "blocks.h"
#include "search.h"
#include "types.h"

namespace moerun::ref {

// ---- Grid search tables ----

// A lattice grid of n_points points, each a group of `group` elements (8 for IQ1/IQ2, 4 for IQ3)
// whose element i has the level (code >> bits * i) & (2^bits - 1).
class lattice_grid {
public:
    // Codes with a level above max_level are never looked up (the quantizers clamp their levels),
    // so only the others get neighbours. n_want: how many of the smallest distinct distances to a
    // code off the grid its neighbour list covers (llama.cpp's nwant per type).
    lattice_grid(const uint16_t* codes, int n_points, int group, int bits, int max_level, int n_want)
        : group_(group), bits_(bits), levels_(size_t(group) * size_t(n_points)), index_(size_t(1) << (bits * group), k_unreachable) {
        const int mask = (1 << bits) - 1;
        for (int k = 0; k < n_points; ++k) {
            for (int i = 0; i < group; ++i) levels_[size_t(group * k + i)] = int8_t((codes[k] >> (bits * i)) & mask);
            index_[codes[k]] = k;
        }
        // A code off the grid lists every point at its n_want smallest distinct squared distances
        // (in level units; llama.cpp's odd units 2l+1 scale them all by 4), by distance then index.
        std::vector<int> dist(static_cast<size_t>(n_points));
        std::vector<int> nearest;  // the smallest distinct distances so far, ascending
        for (uint32_t u = 0; u < index_.size(); ++u) {
            if (index_[u] >= 0) continue;
            bool reachable = true;
            for (int i = 0; i < group; ++i) reachable = reachable && int((u >> (bits * i)) & uint32_t(mask)) <= max_level;
            if (!reachable) continue;
            nearest.clear();
            for (int j = 0; j < n_points; ++j) {
                int d2 = 0;
                for (int i = 0; i < group; ++i) {
                    const int diff = levels_[size_t(group * j + i)] - int((u >> (bits * i)) & uint32_t(mask));
                    d2 += diff * diff;
                }
                dist[size_t(j)] = d2;
                if (std::find(nearest.begin(), nearest.end(), d2) != nearest.end()) continue;
                if (int(nearest.size()) == n_want && d2 > nearest.back()) continue;
                nearest.insert(std::upper_bound(nearest.begin(), nearest.end(), d2), d2);
                if (int(nearest.size()) > n_want) nearest.pop_back();
            }
            index_[u] = -int(neighbours_.size()) - 1;
            const size_t count_at = neighbours_.size();
            neighbours_.push_back(0);
            for (int d2 : nearest) {
                for (int j = 0; j < n_points; ++j) if (dist[size_t(j)] == d2) neighbours_.push_back(uint16_t(j));
            }
            neighbours_[count_at] = uint16_t(neighbours_.size() - count_at - 1);
        }
    }

    int group() const { return group_; }

    // The levels of point k (group() of them).
    const int8_t* levels(int k) const { return &levels_[size_t(group_ * k)]; }

    // The grid index of the group with levels L, or a negative value when it is off the grid.
    int index_of(const int8_t* L) const {
        uint32_t u = 0;
        for (int i = 0; i < group_; ++i) u |= uint32_t(L[i]) << (bits_ * i);
        return index_[u];
    }

    // The grid point for the group with levels L (each at most max_level): itself when on the grid,
    // else the neighbour with the least weighted error sum weight * (scale * values[l] - x)^2
    // (the first on ties), whose levels then replace L. values[l]: level l's value.
    int nearest_point(int8_t* L, const float* x, const float* weight, float scale, const float* values) const {
        const int k = index_of(L);
        if (k >= 0) return k;
        const uint16_t* nb = &neighbours_[size_t(-k - 1)];
        float best_d2 = std::numeric_limits<float>::max();
        int best = nb[1];  // stays only when every distance is NaN
        for (int j = 1; j <= nb[0]; ++j) {
            const int8_t* p = levels(nb[j]);
            float d2 = 0;
            for (int i = 0; i < group_; ++i) {
                const float diff = scale * values[p[i]] - x[i];
                d2 += weight[i] * diff * diff;
            }
            if (d2 < best_d2) {
                best_d2 = d2;
                best = nb[j];
            }
        }
        std::memcpy(L, levels(best), size_t(group_));
        return best;
    }

private:
    static constexpr int k_unreachable = std::numeric_limits<int>::min();
    int group_, bits_;
    std::vector<int8_t> levels_;        // point k, element i: its level
    std::vector<int> index_;            // code -> grid index, or -(offset + 1) into neighbours_
    std::vector<uint16_t> neighbours_;  // per code off the grid: a count n, then n grid indices
};

// The tables of one grid (codes from iq_grids.h), built on first use; n_want as above.
template <const uint16_t* codes, int n_points, int group, int bits, int max_level, int n_want>
const lattice_grid& lattice_grid_of() {
    static const lattice_grid g(codes, n_points, group, bits, max_level, n_want);
    return g;
}

// ---- Weights ----

// The quantizers' importance of each of n weights x: with an importance matrix slice qw,
// qw * sqrt(sigma2 + x^2); without one, floor_factor * sigma2 + x^2 (floor_factor 0: plain x^2).
inline void importance_weights(int n, const float* x, const float* qw, float sigma2, float floor_factor, float* weight) {
    if (qw) {
        for (int i = 0; i < n; ++i) weight[i] = qw[i] * std::sqrt(sigma2 + x[i] * x[i]);
    } else if (floor_factor == 0) {
        for (int i = 0; i < n; ++i) weight[i] = x[i] * x[i];
    } else {
        const float floor = floor_factor * sigma2;
        for (int i = 0; i < n; ++i) weight[i] = floor + x[i] * x[i];
    }
}

// ggml's make_qp_quants: a non-negative scale for levels 0..nmax of n values x >= 0, by weighted
// least squares over a few trial scales and then coordinate descent; writes the levels to L.
inline float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* w) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
    if (max < 1e-15f) {  // ggml's GROUP_MAX_EPS
        std::memset(L, 0, size_t(n));
        return 0.f;
    }
    float iscale = float(nmax) / max;
    for (int i = 0; i < n; ++i) L[i] = uint8_t(nearest_int(iscale * x[i]));
    const float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; ++i) {
        const float diff = x[i] - scale * float(L[i]);
        best_mse += w[i] * diff * diff;
    }
    for (int is = -4; is <= 4; ++is) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * float(is) + float(nmax)) / max;
        const float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::min(nmax, nearest_int(iscale_is * x[i]));
            const float diff = x[i] - scale_is * float(l);
            mse += w[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::min(nmax, nearest_int(iscale * x[i]));
        L[i] = uint8_t(l);
        sumlx += w[i] * x[i] * float(l);
        suml2 += w[i] * float(l) * float(l);
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            float slx = sumlx - w[i] * x[i] * float(L[i]);
            float sl2 = suml2 - w[i] * float(L[i]) * float(L[i]);
            if (slx > 0 && sl2 > 0) {
                const int new_l = std::min(nmax, nearest_int(x[i] * sl2 / slx));
                if (new_l != L[i]) {
                    slx += w[i] * x[i] * float(new_l);
                    sl2 += w[i] * float(new_l) * float(new_l);
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = uint8_t(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// ---- The IQ2/IQ3 sub-block search ----

// The IQ2/IQ3 grids' level values in the quantizers' units: level l is 2l + 1.
inline constexpr float k_odd_level_values[8] = {1, 3, 5, 7, 9, 11, 13, 15};

// One IQ2/IQ3 format's constants (llama.cpp's, per type).
struct lattice_format {
    int sub_block;          // weights per sub-block scale: 32 or 16
    int max_q;              // levels per element: 3 (IQ2) or 8 (IQ3)
    float sigma2_factor;    // sigma2 = sigma2_factor * mean x^2 over the super-block
    float floor_factor;     // without an importance matrix: weight = floor_factor * sigma2 + x^2
    float max_eps;          // a sub-block whose largest |x| is below this stores nothing
    bool parity_signs;      // 7 sign bits per 8 weights, an even count of negatives implied
    bool qp_start;          // trials around make_qp_quants' scale, not around max |x| (IQ2_XXS)
    int n_trials;           // trial inverse scales (2 max_q - 1 + is * trial_step) / max, |is| <= n_trials
    float trial_step;
    bool start_on_grid;     // before any trial the groups count as on the grid
    bool resnap_always;     // re-snap after the trials even when the best one had every group on the grid
    bool resnap_all;        // the re-snap covers every group, not only those that were off the grid
    float d_fudge;          // the stored d is max scale / 31 times this
};

// Levels of the group x at inverse scale id (the odd level 2l+1 nearest id * x, clamped), snapped
// to the grid at `scale` = 1 / id. Returns whether they were on the grid as rounded.
inline bool snap_group(const lattice_grid& grid, int max_q, float id, float scale, const float* x, const float* waux, int8_t* L) {
    for (int i = 0; i < grid.group(); ++i) L[i] = int8_t(std::max(0, std::min(max_q - 1, nearest_int(0.5f * (id * x[i] - 1)))));
    const bool on_grid = grid.index_of(L) >= 0;
    if (!on_grid) grid.nearest_point(L, x, waux, scale, k_odd_level_values);
    return on_grid;
}

// Weighted least squares of x against the odd levels of L: sum w x q and sum w q^2, q = 2l + 1.
inline void fit_odd_levels(int n, const float* x, const float* weight, const int8_t* L, float& sumqx, float& sumq2) {
    sumqx = sumq2 = 0;
    for (int i = 0; i < n; ++i) {
        const float q = float(2 * L[i] + 1);
        sumqx += weight[i] * x[i] * q;
        sumq2 += weight[i] * q * q;
    }
}

// One sub-block xb of f.sub_block weights with their importance `weight`. Returns false when it
// stores nothing (all below f.max_eps); else its scale (>= 0), each group's grid index and the
// sign bytes, one per 8 weights (bit i: weight i negative; 7 bits with parity_signs).
inline bool quantize_lattice_sub_block(const lattice_grid& grid, const lattice_format& f, const float* xb, const float* weight,
                                       float& scale, uint16_t* index, uint8_t* signs) {
    const int n = f.sub_block, group = grid.group(), n_groups = n / group;
    float xval[32], waux[32];
    int8_t L[32], Laux[32];
    bool on_grid[8], on_grid_aux[8];
    for (int i = 0; i < n; ++i) waux[i] = std::sqrt(weight[i]);
    for (int k = 0; k < n / 8; ++k) {
        if (f.parity_signs) {
            signs[k] = even_parity_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k);
            continue;
        }
        signs[k] = 0;
        for (int i = 0; i < 8; ++i) {
            const float x = xb[8 * k + i];
            xval[8 * k + i] = x >= 0 ? x : -x;
            if (!(x >= 0)) signs[k] = uint8_t(signs[k] | (1 << i));
        }
    }
    float max = xval[0];
    for (int i = 1; i < n; ++i) max = std::max(max, xval[i]);
    if (max < f.max_eps) return false;

    std::memset(L, 0, size_t(n));
    float trial_max = max;
    scale = max / float(2 * f.max_q - 1);
    if (f.qp_start) {
        uint8_t Lqp[32];
        scale = make_qp_quants(n, f.max_q + 1, xval, Lqp, weight);
        trial_max = scale * float(f.max_q);
        if (trial_max <= 0) return false;
    }
    std::fill(on_grid, on_grid + n_groups, f.start_on_grid);
    float best = 0, sumqx, sumq2;
    for (int is = -f.n_trials; is <= f.n_trials; ++is) {
        const float id = (float(2 * f.max_q - 1) + float(is) * f.trial_step) / trial_max;
        const float this_scale = 1 / id;
        for (int k = 0; k < n_groups; ++k) {
            on_grid_aux[k] = snap_group(grid, f.max_q, id, this_scale, xval + group * k, waux + group * k, Laux + group * k);
        }
        fit_odd_levels(n, xval, weight, Laux, sumqx, sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            std::memcpy(L, Laux, size_t(n));
            std::copy(on_grid_aux, on_grid_aux + n_groups, on_grid);
        }
    }
    const bool any_off_grid = std::find(on_grid, on_grid + n_groups, false) != on_grid + n_groups;
    if ((f.resnap_always || any_off_grid) && scale > 0) {  // re-snap at the best scale and refit it
        const float id = 1 / scale;
        for (int k = 0; k < n_groups; ++k) {
            if (f.resnap_all || !on_grid[k]) snap_group(grid, f.max_q, id, scale, xval + group * k, waux + group * k, L + group * k);
        }
        fit_odd_levels(n, xval, weight, L, sumqx, sumq2);
        if (sumq2 > 0) scale = sumqx / sumq2;
    }
    if (scale < 0) {  // never expected; the scales are stored unsigned, so flip the signs instead
        scale = -scale;
        for (int k = 0; k < n / 8; ++k) signs[k] = uint8_t(~signs[k] & (f.parity_signs ? 127 : 255));
    }
    for (int k = 0; k < n_groups; ++k) index[k] = uint16_t(std::max(0, grid.index_of(L + group * k)));  // on the grid by now
    return true;
}

// One super-block of 256 weights xbl (quant_weights: its importance matrix slice, or null). Calls
// pack(ib, index, signs) for each sub-block ib that stores something (see
// quantize_lattice_sub_block) and put_scale(ib, l) with every sub-block's 4-bit scale l
// (scale ~ d * (2l + 1)); writes the fp16 d. Returns false, with d 0 and no scales put, when every
// sub-block's scale is 0.
template <class Pack, class PutScale>
bool quantize_lattice_super_block(const lattice_grid& grid, const lattice_format& f, const float* xbl, const float* quant_weights,
                                  uint16_t& d_out, Pack pack, PutScale put_scale) {
    float sumx2 = 0;
    for (int i = 0; i < k_qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = f.sigma2_factor * sumx2 / k_qk_k;
    const int n_sub = k_qk_k / f.sub_block;
    float scales[16], weight[32];
    float max_scale = 0;
    d_out = fp32_to_fp16(0.f);
    for (int ib = 0; ib < n_sub; ++ib) {
        const float* xb = xbl + f.sub_block * ib;
        importance_weights(f.sub_block, xb, quant_weights ? quant_weights + f.sub_block * ib : nullptr, sigma2, f.floor_factor, weight);
        uint16_t index[8];
        uint8_t signs[4];
        if (!quantize_lattice_sub_block(grid, f, xb, weight, scales[ib], index, signs)) {
            scales[ib] = 0;
            continue;
        }
        pack(ib, index, signs);
        max_scale = std::max(max_scale, scales[ib]);
    }
    if (!max_scale) return false;
    const float d = max_scale / 31;
    d_out = fp32_to_fp16(d * f.d_fudge);
    const float id = 1 / d;
    for (int ib = 0; ib < n_sub; ++ib) put_scale(ib, std::max(0, std::min(15, nearest_int(0.5f * (id * scales[ib] - 1)))));
    return true;
}

// A row of n weights (whole super-blocks) through a per-super-block quantizer, each super-block
// with its slice of the importance matrix (null: none).
template <class Block, void (*quantize_block)(const float*, Block*, const float*)>
void quantize_super_blocks(const float* src, void* dst, int64_t n, const float* imatrix) {
    Block* y = static_cast<Block*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i) quantize_block(src + k_qk_k * i, &y[i], imatrix ? imatrix + k_qk_k * i : nullptr);
}

}  // namespace moerun::ref
