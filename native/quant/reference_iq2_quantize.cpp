// The quantizers of the 8-element lattice formats with 2-bit level codes, IQ2_XXS, IQ1_S and IQ1_M:
// llama.cpp's quantize_row_iq2_xxs_impl, quantize_row_iq1_s_impl and quantize_row_iq1_m_impl (what
// llama-quantize runs), so they write llama.cpp's bytes. llama.cpp quantizes IQ2_XXS and IQ1_S only
// with an importance matrix (from_float_imatrix only); IQ1_M with or without one.
//
// IQ2_XXS: Per 32 weights: the signs are split off (flipping the least important
// weight when a group of 8 has an odd number of negatives), a first scale comes from make_qp_quants,
// then 13 trial scales each snap every group of 8 magnitudes to a grid point (iq_grids.h) or, off
// the grid, to the best of its nearest grid points; the weighted least-squares scale wins, and the
// sub-block scales are coded in 4 bits against the super-block's fp16 d.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "blocks.h"
#include "iq_grids.h"
#include "reference.h"
#include "search.h"

namespace moerun::ref {
namespace {

constexpr int k_max_q = 3;                 // levels per element (2 bits, 3 used)
constexpr float k_group_max_eps = 1e-15f;  // sub-blocks below this are zero
constexpr int k_map_size = 43692;          // 8-element points of levels 0..2 (2 bits each): codes <= 43690

// The search tables of an 8-element grid with 2-bit level codes (IQ2_XXS: 256 points, IQ1_S: 2048),
// from its codes (as in reference_iq3_quantize.cpp): map[u] = grid index of the point with code u,
// or for a point off the grid -(offset + 1) into `neighbours`: a count n, then the n grid indices at
// the n_want smallest distinct squared distances (in 2l+1 units), by distance then index.
struct grid8_search {
    std::vector<int> map = std::vector<int>(k_map_size, -1);
    std::vector<uint16_t> neighbours;
    std::vector<int8_t> grid;  // grid point k, element i: 2l + 1

    grid8_search(const uint16_t* codes, int n_grid, int n_want) : grid(size_t(8 * n_grid)) {
        for (int k = 0; k < n_grid; ++k) {
            for (int i = 0; i < 8; ++i) grid[size_t(8 * k + i)] = int8_t(2 * ((codes[k] >> (2 * i)) & 3) + 1);
            map[codes[k]] = k;
        }
        std::vector<int> dist(static_cast<size_t>(n_grid));
        for (int u = 0; u < k_map_size; ++u) {
            if (map[size_t(u)] >= 0) continue;
            // The n_want smallest distinct distances, then every point at each, in index order: the
            // prefix of the points sorted by (distance, index).
            std::vector<int> nearest;
            for (int j = 0; j < n_grid; ++j) {
                int d2 = 0;
                for (int i = 0; i < 8; ++i) {
                    const int diff = grid[size_t(8 * j + i)] - (2 * ((u >> (2 * i)) & 3) + 1);
                    d2 += diff * diff;
                }
                dist[size_t(j)] = d2;
                if (std::find(nearest.begin(), nearest.end(), d2) == nearest.end()) {
                    nearest.push_back(d2);
                    std::sort(nearest.begin(), nearest.end());
                    if (int(nearest.size()) > n_want) nearest.pop_back();
                }
            }
            map[size_t(u)] = -int(neighbours.size()) - 1;
            const size_t count_at = neighbours.size();
            neighbours.push_back(0);
            for (int d2 : nearest) {
                for (int j = 0; j < n_grid; ++j) if (dist[size_t(j)] == d2) neighbours.push_back(uint16_t(j));
            }
            neighbours[count_at] = uint16_t(neighbours.size() - count_at - 1);
        }
    }
};

const grid8_search& iq2xxs_tables() {
    static const grid8_search s(k_iq2xxs_codes, 256, 2);
    return s;
}

const grid8_search& iq1s_tables() {
    static const grid8_search s(k_iq1s_codes, 2048, 3);
    return s;
}

int best_neighbour(const grid8_search& s, const uint16_t* nb, const float* xval, const float* weight, float scale, int8_t* L) {
    float best_d2 = 3.402823466e+38f;
    int best = -1;
    for (int j = 1; j <= nb[0]; ++j) {
        const int8_t* pg = &s.grid[size_t(8 * nb[j])];
        float d2 = 0;
        for (int i = 0; i < 8; ++i) {
            const float diff = scale * float(pg[i]) - xval[i];
            d2 += weight[i] * diff * diff;
        }
        if (d2 < best_d2) {
            best_d2 = d2;
            best = nb[j];
        }
    }
    const int8_t* pg = &s.grid[size_t(8 * best)];
    for (int i = 0; i < 8; ++i) L[i] = int8_t((pg[i] - 1) / 2);
    return best;
}

// ggml's make_qp_quants: a non-negative scale for levels 0..nmax, weighted least squares with a
// few trial scales and coordinate descent.
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* w) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
    if (max < k_group_max_eps) {
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

// One super-block with its slice of the importance matrix (256 column weights).
void quantize_iq2_xxs_block(const float* xbl, block_iq2_xxs* y, const float* quant_weights) {
    const grid8_search& s = iq2xxs_tables();
    float scales[8], weight[32], xval[32], waux[32];
    int8_t L[32], Laux[32];
    uint8_t block_signs[4];
    uint32_t q2[16] = {};
    y->d = fp32_to_fp16(0.f);

    float sumx2 = 0;
    for (int i = 0; i < k_qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = sumx2 / k_qk_k;
    float max_scale = 0;

    // The 2l+1 levels of group k snapped at inverse scale id, or its best neighbour.
    auto snap = [&](int k, float id, float scale, int8_t* Lk) {
        uint16_t u = 0;
        for (int i = 0; i < 8; ++i) {
            const int l = std::max(0, std::min(k_max_q - 1, nearest_int(0.5f * (id * xval[8 * k + i] - 1))));
            Lk[i] = int8_t(l);
            u = uint16_t(u | (l << (2 * i)));
        }
        int grid_index = s.map[u];
        if (grid_index < 0) grid_index = best_neighbour(s, s.neighbours.data() - s.map[u] - 1, xval + 8 * k, waux + 8 * k, scale, Lk);
        return grid_index;
    };

    for (int ib = 0; ib < 8; ++ib) {
        const float* xb = xbl + 32 * ib;
        const float* qw = quant_weights + 32 * ib;
        for (int i = 0; i < 32; ++i) weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
        for (int i = 0; i < 32; ++i) waux[i] = std::sqrt(weight[i]);
        for (int k = 0; k < 4; ++k) block_signs[k] = even_parity_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k);
        float max = xval[0];
        for (int i = 1; i < 32; ++i) max = std::max(max, xval[i]);
        if (max < k_group_max_eps) {
            scales[ib] = 0;
            std::memset(L, 0, 32);
            continue;
        }
        float scale = make_qp_quants(32, k_max_q + 1, xval, reinterpret_cast<uint8_t*>(L), weight);
        const float eff_max = scale * k_max_q;
        if (eff_max <= 0) {
            scales[ib] = 0;
            std::memset(L, 0, 32);
            continue;
        }
        float best = 0;
        for (int is = -6; is <= 6; ++is) {
            const float id = (float(2 * k_max_q - 1) + float(is) * 0.1f) / eff_max;
            const float this_scale = 1 / id;
            for (int k = 0; k < 4; ++k) snap(k, id, this_scale, Laux + 8 * k);
            float sumqx = 0, sumq2 = 0;
            for (int i = 0; i < 32; ++i) {
                const float w = weight[i], q = float(2 * Laux[i] + 1);
                sumqx += w * xval[i] * q;
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                scale = sumqx / sumq2;
                best = scale * sumqx;
                std::memcpy(L, Laux, 32);
            }
        }
        if (scale > 0) {  // re-snap every group at the final scale
            const float id = 1 / scale;
            for (int k = 0; k < 4; ++k) {
                const int grid_index = snap(k, id, scale, L + 8 * k);
                for (int i = 0; i < 8; ++i) L[8 * k + i] = int8_t((s.grid[size_t(8 * grid_index + i)] - 1) / 2);
            }
            float sumqx = 0, sumq2 = 0;
            for (int i = 0; i < 32; ++i) {
                const float w = weight[i], q = float(2 * L[i] + 1);
                sumqx += w * xval[i] * q;
                sumq2 += w * q * q;
            }
            if (sumq2 > 0) scale = sumqx / sumq2;
        }
        if (scale < 0) {  // never expected; scales are stored unsigned, so flip the signs instead
            scale = -scale;
            for (uint8_t& b : block_signs) b = uint8_t(~b) & 127;
        }
        for (int k = 0; k < 4; ++k) {
            uint16_t u = 0;
            for (int i = 0; i < 8; ++i) u = uint16_t(u | (L[8 * k + i] << (2 * i)));
            q2[2 * ib] |= uint32_t(std::max(0, s.map[u])) << (8 * k);  // on the grid by construction
            q2[2 * ib + 1] |= uint32_t(block_signs[k]) << (7 * k);
        }
        scales[ib] = scale;
        max_scale = std::max(max_scale, scale);
    }

    if (!max_scale) {
        std::memset(y->qs, 0, sizeof y->qs);
        return;
    }
    const float d = max_scale / 31;
    y->d = fp32_to_fp16(d);
    const float id = 1 / d;
    for (int ib = 0; ib < 8; ++ib) {
        const int l = std::max(0, std::min(15, nearest_int(0.5f * (id * scales[ib] - 1))));
        q2[2 * ib + 1] |= uint32_t(l) << 28;
    }
    std::memcpy(y->qs, q2, sizeof y->qs);
}

// ---- IQ1_S ----

// llama.cpp's qsort order for the (value, index) pairs of a sub-block: by value only, through the
// C library's qsort, so that ties come out in the same order as in llama.cpp on this libc.
int iq1_pair_order(const void* left, const void* right) {
    const float l = *static_cast<const float*>(left), r = *static_cast<const float*>(right);
    return l < r ? -1 : l > r ? 1 : 0;
}

// The neighbour of an off-grid group with the least weighted error at `scale`, grid values mapped
// through xg (the levels -1, 0, 1 shifted by +-delta); writes its levels 0..2.
int iq1_best_neighbour(const grid8_search& s, const uint16_t* nb, const float* xval, const float* weight, float scale,
                       const float* xg, int8_t* L) {
    float best = 3.402823466e+38f;
    int best_index = -1;
    for (int j = 1; j <= nb[0]; ++j) {
        const int8_t* pg = &s.grid[size_t(8 * nb[j])];
        float d2 = 0;
        for (int i = 0; i < 8; ++i) {
            const float diff = scale * xg[(pg[i] - 1) / 2] - xval[i];
            d2 += weight[i] * diff * diff;
        }
        if (d2 < best) {
            best = d2;
            best_index = nb[j];
        }
    }
    if (best_index < 0) best_index = nb[1];  // only when every distance is NaN
    const int8_t* pg = &s.grid[size_t(8 * best_index)];
    for (int i = 0; i < 8; ++i) L[i] = int8_t((pg[i] - 1) / 2);
    return best_index;
}

// One IQ1_S super-block. Per 32 weights, the exact weighted least-squares split of the sorted
// values into the levels -1, 0, 1 (both signs of the delta tried), then each group of 8 mapped to
// the grid or its best neighbour.
void quantize_iq1_s_block(const float* xbl, block_iq1_s* y, const float* quant_weights) {
    const grid8_search& s = iq1s_tables();
    const float x_p[3] = {-1 + k_iq1_delta, k_iq1_delta, 1 + k_iq1_delta};
    const float x_m[3] = {-1 - k_iq1_delta, -k_iq1_delta, 1 - k_iq1_delta};
    float scales[8], weight[32], sumx[33], sumw[33], pairs[64];
    int8_t L[32], shifts[8];
    uint16_t index[4];
    y->d = fp32_to_fp16(0.f);
    std::memset(y->qs, 0, sizeof y->qs);
    std::memset(y->qh, 0, sizeof y->qh);

    float sumx2 = 0;
    for (int i = 0; i < k_qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = 2 * sumx2 / k_qk_k;
    float max_scale = 0;

    for (int ib = 0; ib < 8; ++ib) {
        const float* xb = xbl + 32 * ib;
        const float* qw = quant_weights + 32 * ib;
        for (int i = 0; i < 32; ++i) weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
        float max = std::fabs(xb[0]);
        for (int i = 1; i < 32; ++i) max = std::max(max, std::fabs(xb[i]));
        if (max < 1e-12f) {
            scales[ib] = 0;
            shifts[ib] = 1;
            continue;
        }
        // Sorted values with their positions (the index stored in the pair's second float's bits).
        for (int j = 0; j < 32; ++j) {
            pairs[2 * j] = xb[j];
            std::memcpy(&pairs[2 * j + 1], &j, 4);
        }
        std::qsort(pairs, 32, 2 * sizeof(float), iq1_pair_order);
        auto idx = [&](int j) {
            int i;
            std::memcpy(&i, &pairs[2 * j + 1], 4);
            return i;
        };
        sumx[0] = sumw[0] = 0;
        for (int j = 0; j < 32; ++j) {
            const int i = idx(j);
            sumx[j + 1] = sumx[j] + weight[i] * xb[i];
            sumw[j + 1] = sumw[j] + weight[i];
        }
        float best_score = -3.402823466e+38f, scale = max;
        int besti1 = -1, besti2 = -1, best_shift = 0;
        for (int i1 = 0; i1 <= 32; ++i1) {
            for (int i2 = i1; i2 <= 32; ++i2) {
                for (int shift : {1, -1}) {
                    const float* xs = shift == 1 ? x_p : x_m;
                    const float sumqx = (sumx[i1] - sumx[0]) * xs[0] + (sumx[i2] - sumx[i1]) * xs[1] + (sumx[32] - sumx[i2]) * xs[2];
                    const float sumq2 = (sumw[i1] - sumw[0]) * xs[0] * xs[0] + (sumw[i2] - sumw[i1]) * xs[1] * xs[1] +
                                        (sumw[32] - sumw[i2]) * xs[2] * xs[2];
                    if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                        scale = sumqx / sumq2;
                        best_score = scale * sumqx;
                        besti1 = i1;
                        besti2 = i2;
                        best_shift = shift;
                    }
                }
            }
        }
        if (besti1 < 0 || besti2 < 0 || best_shift == 0) {
            scales[ib] = 0;
            shifts[ib] = 1;
            continue;
        }
        for (int j = 0; j < besti1; ++j) L[idx(j)] = 0;
        for (int j = besti1; j < besti2; ++j) L[idx(j)] = 1;
        for (int j = besti2; j < 32; ++j) L[idx(j)] = 2;
        if (scale < 0) {
            for (int8_t& l : L) l = int8_t(2 - l);
            scale = -scale;
            best_shift = -best_shift;
        }
        bool all_on_grid = true;
        const float* xx = best_shift == 1 ? x_p : x_m;
        for (int k = 0; k < 4; ++k) {
            uint16_t u = 0;
            for (int j = 0; j < 8; ++j) u = uint16_t(u | (L[8 * k + j] << (2 * j)));
            int grid_index = s.map[u];
            if (grid_index < 0) {
                all_on_grid = false;
                grid_index = iq1_best_neighbour(s, s.neighbours.data() - s.map[u] - 1, xb + 8 * k, weight + 8 * k, scale, xx, L + 8 * k);
            }
            index[k] = uint16_t(grid_index);
        }
        if (!all_on_grid) {
            float sumqx = 0, sumq2 = 0;
            for (int k = 0; k < 4; ++k) {
                const int8_t* pg = &s.grid[size_t(8 * index[k])];
                for (int j = 0; j < 8; ++j) {
                    const float w = weight[8 * k + j], q = xx[(pg[j] - 1) / 2];
                    sumqx += w * q * xb[8 * k + j];
                    sumq2 += w * q * q;
                }
            }
            if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
        }
        uint16_t h = 0;
        for (int k = 0; k < 4; ++k) {
            y->qs[4 * ib + k] = uint8_t(index[k] & 255);
            h = uint16_t(h | ((index[k] >> 8) << (3 * k)));
        }
        y->qh[ib] = h;
        scales[ib] = scale;
        shifts[ib] = int8_t(best_shift);
        max_scale = std::max(max_scale, scale);
    }

    if (!max_scale) return;
    const float d = max_scale / 15;
    y->d = fp32_to_fp16(d * 1.125f);  // llama.cpp's fudge factor
    const float id = 1 / d;
    for (int ib = 0; ib < 8; ++ib) {
        int l = std::max(0, std::min(7, nearest_int(0.5f * (id * scales[ib] - 1))));
        if (shifts[ib] == -1) l |= 8;
        y->qh[ib] = uint16_t(y->qh[ib] | (l << 12));
    }
}

// ---- IQ1_M ----

// One IQ1_M super-block (quant_weights may be null). As IQ1_S per 16 weights, with a delta sign per
// group of 8 (the four sign combinations of the two groups searched together), 3-bit scales, and d
// refit over the whole super-block.
void quantize_iq1_m_block(const float* xbl, block_iq1_m* y, const float* quant_weights) {
    const grid8_search& s = iq1s_tables();
    const float x_p[3] = {-1 + k_iq1_delta, k_iq1_delta, 1 + k_iq1_delta};
    const float x_m[3] = {-1 - k_iq1_delta, -k_iq1_delta, 1 - k_iq1_delta};
    const uint8_t masks[4] = {0x00, 0x80, 0x08, 0x88};  // delta sign bits of the two groups, per shift k
    float scales[16], weight[16], pairs[32];
    int8_t L[16], shifts[16];
    uint16_t index[2];
    std::memset(y, 0, sizeof *y);

    float sumx2 = 0;
    for (int i = 0; i < k_qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = 2 * sumx2 / k_qk_k;
    float max_scale = 0;
    auto weights_of = [&](int ib) {
        const float* xb = xbl + 16 * ib;
        if (quant_weights) {
            const float* qw = quant_weights + 16 * ib;
            for (int i = 0; i < 16; ++i) weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
        } else {
            for (int i = 0; i < 16; ++i) weight[i] = xb[i] * xb[i];
        }
    };
    // Levels of group k (0, 1) under shift combination `shift`: 0 (+,+), 1 (+,-), 2 (-,+), 3 (-,-).
    auto levels = [&](int shift, int k) { return (k == 0 ? shift < 2 : shift % 2 == 0) ? x_p : x_m; };

    for (int ib = 0; ib < 16; ++ib) {
        const float* xb = xbl + 16 * ib;
        weights_of(ib);
        float max = std::fabs(xb[0]);
        for (int i = 1; i < 16; ++i) max = std::max(max, std::fabs(xb[i]));
        if (max < 1e-7f) {
            scales[ib] = 0;
            shifts[ib] = 0;
            continue;
        }
        for (int j = 0; j < 16; ++j) {
            pairs[2 * j] = xb[j];
            std::memcpy(&pairs[2 * j + 1], &j, 4);
        }
        std::qsort(pairs, 16, 2 * sizeof(float), iq1_pair_order);
        auto idx = [&](int j) {
            int i;
            std::memcpy(&i, &pairs[2 * j + 1], 4);
            return i;
        };
        float best_score = -3.402823466e+38f, scale = max;
        int besti1 = -1, besti2 = -1, best_k = -1;
        // Prefix sums per half (each half has its own delta sign); with v0 - v1 = v1 - v2 = -1 the
        // 3-group sum of a split is T * v2 - px[i1] - px[i2].
        float px[2][17], pw[2][17];
        px[0][0] = px[1][0] = pw[0][0] = pw[1][0] = 0;
        for (int j = 0; j < 16; ++j) {
            const int i = idx(j);
            const int h = i < 8 ? 0 : 1;
            px[h][j + 1] = px[h][j] + weight[i] * xb[i];
            px[1 - h][j + 1] = px[1 - h][j];
            pw[h][j + 1] = pw[h][j] + weight[i];
            pw[1 - h][j + 1] = pw[1 - h][j];
        }
        const float txs[2] = {px[0][16], px[1][16]}, tws[2] = {pw[0][16], pw[1][16]};
        const float p2 = x_p[2], m2 = x_m[2];
        const float cp1 = x_p[0] * x_p[0] - x_p[1] * x_p[1], cp2 = x_p[1] * x_p[1] - x_p[2] * x_p[2];
        const float cm1 = x_m[0] * x_m[0] - x_m[1] * x_m[1], cm2 = x_m[1] * x_m[1] - x_m[2] * x_m[2];
        for (int i1 = 0; i1 <= 16; ++i1) {
            for (int i2 = i1; i2 <= 16; ++i2) {
                float qx_p[2], qx_m[2], q2_p[2], q2_m[2];
                for (int h = 0; h < 2; ++h) {
                    const float sx = px[h][i1] + px[h][i2];
                    qx_p[h] = txs[h] * p2 - sx;
                    qx_m[h] = txs[h] * m2 - sx;
                    q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                    q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                }
                const float sumqx[4] = {qx_p[0] + qx_p[1], qx_p[0] + qx_m[1], qx_m[0] + qx_p[1], qx_m[0] + qx_m[1]};
                const float sumq2[4] = {q2_p[0] + q2_p[1], q2_p[0] + q2_m[1], q2_m[0] + q2_p[1], q2_m[0] + q2_m[1]};
                for (int k = 0; k < 4; ++k) {
                    if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best_score * sumq2[k]) {
                        scale = sumqx[k] / sumq2[k];
                        best_score = scale * sumqx[k];
                        besti1 = i1;
                        besti2 = i2;
                        best_k = k;
                    }
                }
            }
        }
        if (besti1 < 0 || besti2 < 0 || best_k < 0) {
            scales[ib] = 0;
            shifts[ib] = 0;
            continue;
        }
        for (int j = 0; j < besti1; ++j) L[idx(j)] = 0;
        for (int j = besti1; j < besti2; ++j) L[idx(j)] = 1;
        for (int j = besti2; j < 16; ++j) L[idx(j)] = 2;
        if (scale < 0) {
            for (int8_t& l : L) l = int8_t(2 - l);
            scale = -scale;
            best_k = 3 - best_k;
        }
        bool all_on_grid = true;
        for (int k = 0; k < 2; ++k) {
            uint16_t u = 0;
            for (int j = 0; j < 8; ++j) u = uint16_t(u | (L[8 * k + j] << (2 * j)));
            int grid_index = s.map[u];
            if (grid_index < 0) {
                all_on_grid = false;
                grid_index = iq1_best_neighbour(s, s.neighbours.data() - s.map[u] - 1, xb + 8 * k, weight + 8 * k, scale, levels(best_k, k), L + 8 * k);
            }
            index[k] = uint16_t(grid_index);
        }
        if (!all_on_grid) {
            float sumqx = 0, sumq2 = 0;
            for (int k = 0; k < 2; ++k) {
                const float* xx = levels(best_k, k);
                const int8_t* pg = &s.grid[size_t(8 * index[k])];
                for (int j = 0; j < 8; ++j) {
                    const float w = weight[8 * k + j], q = xx[(pg[j] - 1) / 2];
                    sumqx += w * q * xb[8 * k + j];
                    sumq2 += w * q * q;
                }
            }
            if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
        }
        y->qs[2 * ib] = uint8_t(index[0] & 255);
        y->qs[2 * ib + 1] = uint8_t(index[1] & 255);
        y->qh[ib] = uint8_t((index[0] >> 8) | ((index[1] >> 8) << 4));
        scales[ib] = scale;
        shifts[ib] = int8_t(best_k);
        max_scale = std::max(max_scale, scale);
    }

    if (!max_scale) return;
    // 3-bit scales against d = max / 15, then d refit by least squares over the whole super-block.
    uint16_t sc[4] = {};
    float d = max_scale / 15;
    const float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int ib = 0; ib < 16; ++ib) {
        const int l = std::max(0, std::min(7, nearest_int(0.5f * (id * scales[ib] - 1))));
        sc[ib / 4] = uint16_t(sc[ib / 4] | (l << (3 * (ib % 4))));
        y->qh[ib] |= masks[shifts[ib]];
        const float* xb = xbl + 16 * ib;
        weights_of(ib);
        for (int k = 0; k < 2; ++k) {
            const float* xx = levels(shifts[ib], k);
            const int8_t* pg = &s.grid[size_t(8 * (y->qs[2 * ib + k] + ((y->qh[ib] << (8 - 4 * k)) & 0x700)))];
            for (int j = 0; j < 8; ++j) {
                const float w = weight[8 * k + j], q = xx[(pg[j] - 1) / 2] * float(2 * l + 1);
                sumqx += w * q * xb[8 * k + j];
                sumq2 += w * q * q;
            }
        }
    }
    if (sumq2 > 0) d = sumqx / sumq2;
    const uint16_t dh = fp32_to_fp16(d * 1.1125f);  // llama.cpp's fudge factor
    sc[0] = uint16_t(sc[0] | ((dh & 0x000f) << 12));
    sc[1] = uint16_t(sc[1] | ((dh & 0x00f0) << 8));
    sc[2] = uint16_t(sc[2] | ((dh & 0x0f00) << 4));
    sc[3] = uint16_t(sc[3] | (dh & 0xf000));
    std::memcpy(y->scales, sc, 8);
}

}  // namespace

void from_float_imatrix_iq2_xxs(const float* src, void* dst, int64_t n, const float* imatrix) {
    block_iq2_xxs* y = static_cast<block_iq2_xxs*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i) quantize_iq2_xxs_block(src + k_qk_k * i, &y[i], imatrix + k_qk_k * i);
}

void from_float_imatrix_iq1_s(const float* src, void* dst, int64_t n, const float* imatrix) {
    block_iq1_s* y = static_cast<block_iq1_s*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i) quantize_iq1_s_block(src + k_qk_k * i, &y[i], imatrix + k_qk_k * i);
}

void from_float_iq1_m(const float* src, void* dst, int64_t n) {
    block_iq1_m* y = static_cast<block_iq1_m*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i) quantize_iq1_m_block(src + k_qk_k * i, &y[i], nullptr);
}

void from_float_imatrix_iq1_m(const float* src, void* dst, int64_t n, const float* imatrix) {
    block_iq1_m* y = static_cast<block_iq1_m*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i) quantize_iq1_m_block(src + k_qk_k * i, &y[i], imatrix + k_qk_k * i);
}

}  // namespace moerun::ref
