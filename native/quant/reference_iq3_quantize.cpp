// The IQ3_XXS quantizer: llama.cpp's quantize_row_iq3_xxs_impl (what llama-quantize runs), so it
// writes llama.cpp's bytes. Per 32 weights: the signs are split off (flipping the least important
// weight when a group of 8 has an odd number of negatives), then 31 trial scales each snap every
// group of 4 magnitudes to a point of the grid (iq_grids.h) or, off the grid, to the best of its
// nearest grid points; the weighted least-squares scale wins, and the sub-block scales are coded in
// 4 bits against the super-block's fp16 d.
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

constexpr int k_max_q = 8;                 // levels per element (3 bits)
constexpr float k_group_max_eps = 1e-8f;   // sub-blocks below this are zero
constexpr int k_map_size = 1 << 12;        // every 4-element point of 3-bit levels

// The search tables, from the grid's level codes: map[u] = grid index of the point with level code
// u, or for a point off the grid -(offset + 1) into `neighbours`, where a count n is followed by the
// n grid indices at the two smallest squared distances (in odd-level units 2l+1, ties by index).
struct iq3_search {
    std::array<int, k_map_size> map;
    std::vector<uint16_t> neighbours;
    std::array<int8_t, 256 * 4> grid;  // grid point k, element i: 2l + 1

    iq3_search() {
        for (int k = 0; k < 256; ++k) {
            for (int i = 0; i < 4; ++i) grid[size_t(4 * k + i)] = int8_t(2 * ((k_iq3xxs_codes[k] >> (3 * i)) & 7) + 1);
        }
        map.fill(-1);
        for (int k = 0; k < 256; ++k) map[k_iq3xxs_codes[k]] = k;
        constexpr int n_want = 2;  // distinct distances kept
        std::vector<std::pair<int, int>> dist(256);
        for (int u = 0; u < k_map_size; ++u) {
            if (map[size_t(u)] >= 0) continue;
            for (int j = 0; j < 256; ++j) {
                int d2 = 0;
                for (int i = 0; i < 4; ++i) {
                    const int diff = grid[size_t(4 * j + i)] - (2 * ((u >> (3 * i)) & 7) + 1);
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

const iq3_search& search_tables() {
    static const iq3_search s;
    return s;
}

// The neighbour of an off-grid group with the least weighted error at `scale`; writes its levels.
int best_neighbour(const iq3_search& s, const uint16_t* nb, const float* xval, const float* weight, float scale, int8_t* L) {
    float best_d2 = 3.402823466e+38f;
    int best = -1;
    for (int j = 1; j <= nb[0]; ++j) {
        const int8_t* pg = &s.grid[size_t(4 * nb[j])];
        float d2 = 0;
        for (int i = 0; i < 4; ++i) {
            const float diff = scale * float(pg[i]) - xval[i];
            d2 += weight[i] * diff * diff;
        }
        if (d2 < best_d2) {
            best_d2 = d2;
            best = nb[j];
        }
    }
    const int8_t* pg = &s.grid[size_t(4 * best)];
    for (int i = 0; i < 4; ++i) L[i] = int8_t((pg[i] - 1) / 2);
    return best;
}

// One super-block; quant_weights (an importance matrix row slice) may be null.
void quantize_iq3_xxs_block(const float* xbl, block_iq3_xxs* y, const float* quant_weights) {
    const iq3_search& s = search_tables();
    float scales[8], weight[32], xval[32], waux[32];
    int8_t L[32], Laux[32];
    bool on_grid[8], on_grid_aux[8];
    uint8_t block_signs[4];
    uint8_t q3[96] = {};
    uint32_t scales_and_signs[8] = {};
    y->d = fp32_to_fp16(0.f);

    float sumx2 = 0;
    for (int i = 0; i < k_qk_k; ++i) sumx2 += xbl[i] * xbl[i];
    const float sigma2 = 2 * sumx2 / k_qk_k;
    float max_scale = 0;

    for (int ib = 0; ib < 8; ++ib) {
        const float* xb = xbl + 32 * ib;
        if (quant_weights) {
            const float* qw = quant_weights + 32 * ib;
            for (int i = 0; i < 32; ++i) weight[i] = qw[i] * std::sqrt(sigma2 + xb[i] * xb[i]);
        } else {
            for (int i = 0; i < 32; ++i) weight[i] = xb[i] * xb[i];
        }
        for (int i = 0; i < 32; ++i) waux[i] = std::sqrt(weight[i]);
        for (int k = 0; k < 4; ++k) block_signs[k] = even_parity_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k);
        float max = xval[0];
        for (int i = 1; i < 32; ++i) max = std::max(max, xval[i]);
        std::memset(L, 0, 32);
        if (max < k_group_max_eps) {
            scales[ib] = 0;
            continue;
        }
        float best = 0;
        float scale = max / (2 * k_max_q - 1);
        for (bool& g : on_grid) g = true;
        for (int is = -15; is <= 15; ++is) {
            const float id = (float(2 * k_max_q - 1) + float(is) * 0.2f) / max;
            const float this_scale = 1 / id;
            for (int k = 0; k < 8; ++k) {
                uint16_t u = 0;
                for (int i = 0; i < 4; ++i) {
                    const int l = nearest_int(0.5f * (id * xval[4 * k + i] - 1));
                    Laux[4 * k + i] = int8_t(std::max(0, std::min(k_max_q - 1, l)));
                    u = uint16_t(u | (Laux[4 * k + i] << (3 * i)));
                }
                on_grid_aux[k] = s.map[u] >= 0;
                if (!on_grid_aux[k]) {
                    best_neighbour(s, s.neighbours.data() - s.map[u] - 1, xval + 4 * k, waux + 4 * k, this_scale, Laux + 4 * k);
                }
            }
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
                std::copy(on_grid_aux, on_grid_aux + 8, on_grid);
            }
        }
        int n_off_grid = 0;
        for (bool g : on_grid) n_off_grid += !g;
        if (n_off_grid > 0 && scale > 0) {  // re-snap the off-grid groups at the final scale
            const float id = 1 / scale;
            for (int k = 0; k < 8; ++k) {
                if (on_grid[k]) continue;
                uint16_t u = 0;
                for (int i = 0; i < 4; ++i) {
                    const int l = std::max(0, std::min(k_max_q - 1, nearest_int(0.5f * (id * xval[4 * k + i] - 1))));
                    u = uint16_t(u | (l << (3 * i)));
                }
                int grid_index = s.map[u];
                if (grid_index < 0) grid_index = best_neighbour(s, s.neighbours.data() - s.map[u] - 1, xval + 4 * k, waux + 4 * k, scale, L + 4 * k);
                for (int i = 0; i < 4; ++i) L[4 * k + i] = int8_t((s.grid[size_t(4 * grid_index + i)] - 1) / 2);
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
        for (int k = 0; k < 8; ++k) {
            uint16_t u = 0;
            for (int i = 0; i < 4; ++i) u = uint16_t(u | (L[4 * k + i] << (3 * i)));
            q3[8 * ib + k] = uint8_t(std::max(0, s.map[u]));  // on the grid by construction
        }
        scales_and_signs[ib] = block_signs[0] | (block_signs[1] << 7) | (block_signs[2] << 14) | (uint32_t(block_signs[3]) << 21);
        scales[ib] = scale;
        max_scale = std::max(max_scale, scale);
    }

    if (!max_scale) {
        std::memset(y->qs, 0, sizeof y->qs);
        return;
    }
    const float d = max_scale / 31;
    y->d = fp32_to_fp16(d * 1.0125f);  // llama.cpp's fudge factor
    const float id = 1 / d;
    for (int ib = 0; ib < 8; ++ib) {
        const int l = std::max(0, std::min(15, nearest_int(0.5f * (id * scales[ib] - 1))));
        scales_and_signs[ib] |= uint32_t(l) << 28;
    }
    std::memcpy(y->qs, q3, 64);
    std::memcpy(y->qs + 64, scales_and_signs, 32);
}

}  // namespace

void from_float_iq3_xxs(const float* src, void* dst, int64_t n) {
    block_iq3_xxs* y = static_cast<block_iq3_xxs*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i) quantize_iq3_xxs_block(src + k_qk_k * i, &y[i], nullptr);
}

void from_float_imatrix_iq3_xxs(const float* src, void* dst, int64_t n, const float* imatrix) {
    block_iq3_xxs* y = static_cast<block_iq3_xxs*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i) quantize_iq3_xxs_block(src + k_qk_k * i, &y[i], imatrix + k_qk_k * i);
}

}  // namespace moerun::ref
