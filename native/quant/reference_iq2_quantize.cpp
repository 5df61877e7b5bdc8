// The IQ2_XXS quantizer: llama.cpp's quantize_row_iq2_xxs_impl (what llama-quantize runs), so it
// writes llama.cpp's bytes. llama.cpp quantizes IQ2_XXS only with an importance matrix, so this is
// a from_float_imatrix. Per 32 weights: the signs are split off (flipping the least important
// weight when a group of 8 has an odd number of negatives), a first scale comes from make_qp_quants,
// then 13 trial scales each snap every group of 8 magnitudes to a grid point (iq_grids.h) or, off
// the grid, to the best of its nearest grid points; the weighted least-squares scale wins, and the
// sub-block scales are coded in 4 bits against the super-block's fp16 d.
#include <algorithm>
#include <array>
#include <cmath>
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
constexpr int k_map_size = 43692;          // 8-element points of levels 0..2 (2 bits each): codes < 43691

// The search tables, from the grid's level codes (as in reference_iq3_quantize.cpp): map[u] = grid
// index of the point with code u, or for a point off the grid -(offset + 1) into `neighbours`: a
// count n, then the n grid indices at the two smallest squared distances (in 2l+1 units, ties by
// index).
struct iq2xxs_search {
    std::vector<int> map = std::vector<int>(k_map_size, -1);
    std::vector<uint16_t> neighbours;
    std::array<int8_t, 256 * 8> grid;  // grid point k, element i: 2l + 1

    iq2xxs_search() {
        for (int k = 0; k < 256; ++k) {
            for (int i = 0; i < 8; ++i) grid[size_t(8 * k + i)] = int8_t(2 * ((k_iq2xxs_codes[k] >> (2 * i)) & 3) + 1);
            map[k_iq2xxs_codes[k]] = k;
        }
        constexpr int n_want = 2;
        std::vector<std::pair<int, int>> dist(256);
        for (int u = 0; u < k_map_size; ++u) {
            if (map[size_t(u)] >= 0) continue;
            for (int j = 0; j < 256; ++j) {
                int d2 = 0;
                for (int i = 0; i < 8; ++i) {
                    const int diff = grid[size_t(8 * j + i)] - (2 * ((u >> (2 * i)) & 3) + 1);
                    d2 += diff * diff;
                }
                dist[size_t(j)] = {d2, j};
            }
            std::sort(dist.begin(), dist.end());
            map[size_t(u)] = -int(neighbours.size()) - 1;
            const size_t count_at = neighbours.size();
            neighbours.push_back(0);
            int d2 = dist[0].first, have = 1, n = 0;
            for (const auto& [d, j] : dist) {
                if (d > d2) {
                    if (have == n_want) break;
                    d2 = d;
                    ++have;
                }
                neighbours.push_back(uint16_t(j));
                ++n;
            }
            neighbours[count_at] = uint16_t(n);
        }
    }
};

const iq2xxs_search& search_tables() {
    static const iq2xxs_search s;
    return s;
}

int best_neighbour(const iq2xxs_search& s, const uint16_t* nb, const float* xval, const float* weight, float scale, int8_t* L) {
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
    const iq2xxs_search& s = search_tables();
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
        for (int k = 0; k < 4; ++k) {  // signs per 8; an odd count flips the least important weight
            int nflip = 0;
            uint8_t sg = 0;
            for (int i = 0; i < 8; ++i) {
                if (xb[8 * k + i] >= 0) {
                    xval[8 * k + i] = xb[8 * k + i];
                } else {
                    xval[8 * k + i] = -xb[8 * k + i];
                    ++nflip;
                    sg |= uint8_t(1 << i);
                }
            }
            if (nflip % 2) {
                int imin = 0;
                float min = weight[8 * k] * xb[8 * k] * xb[8 * k];
                for (int i = 1; i < 8; ++i) {
                    const float ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
                    if (ax < min) { min = ax; imin = i; }
                }
                xval[8 * k + imin] = -xval[8 * k + imin];
                sg ^= uint8_t(1 << imin);
            }
            block_signs[k] = sg & 127;
        }
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

}  // namespace

void from_float_imatrix_iq2_xxs(const float* src, void* dst, int64_t n, const float* imatrix) {
    block_iq2_xxs* y = static_cast<block_iq2_xxs*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i) quantize_iq2_xxs_block(src + k_qk_k * i, &y[i], imatrix + k_qk_k * i);
}

}  // namespace moerun::ref
