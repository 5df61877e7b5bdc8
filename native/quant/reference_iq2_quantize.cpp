// The quantizers of the 8-element lattice formats with 2-bit level codes: IQ2_XXS, IQ2_XS, IQ2_S,
// IQ1_S and IQ1_M, as llama.cpp's quantize_row_*_impl (what llama-quantize runs), so they write
// llama.cpp's bytes. llama.cpp quantizes IQ2_XXS, IQ2_XS and IQ1_S only with an importance matrix
// (from_float_imatrix only); IQ2_S and IQ1_M with or without one.
//
// IQ2_XXS / IQ2_XS / IQ2_S: the search of lattice_search.h, per 32 / 16 / 16 weights; the formats
// differ in its constants (lattice_format below) and in how they pack the grid indices, signs and
// 4-bit sub-block scales. IQ1_S / IQ1_M: an exact split of each sub-block's sorted values into three
// levels, each group of 8 then mapped to the grid or its best neighbour.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "blocks.h"
#include "iq_grids.h"
#include "lattice_search.h"
#include "reference.h"
#include "search.h"

namespace moerun::ref {
namespace {

// The 2-bit grids: groups of 8, levels 0..2, and llama.cpp's neighbour depth (nwant) for each.
constexpr auto iq2xxs_grid = lattice_grid_of<k_iq2xxs_codes, 256, 8, 2, 2, 2>;
constexpr auto iq2xs_grid = lattice_grid_of<k_iq2xs_codes, 512, 8, 2, 2, 2>;
constexpr auto iq2s_grid = lattice_grid_of<k_iq2s_codes, 1024, 8, 2, 2, 1>;
constexpr auto iq1s_grid = lattice_grid_of<k_iq1s_codes, 2048, 8, 2, 2, 3>;

// llama.cpp's constants: sub-block, levels, sigma2 and no-imatrix weights, zero threshold, sign
// parity, start, trials, re-snap rule, d fudge (lattice_format's fields in order).
constexpr lattice_format k_iq2_xxs = {32, 3, 1.f, 0.f, 1e-15f, true, true, 6, 0.1f, true, true, true, 1.f};
constexpr lattice_format k_iq2_xs = {16, 3, 1.f, 0.f, 1e-15f, true, false, 9, 0.1f, true, false, false, 1.f};
constexpr lattice_format k_iq2_s = {16, 3, 2.f, 0.25f, 1e-8f, false, false, 9, 0.1f, true, false, false, 0.9875f};

// IQ2_XXS, per 32 weights: two 32-bit words, four 8-bit grid indices, then four 7-bit sign groups
// and the 4-bit scale at bit 28.
void quantize_iq2_xxs_block(const float* xbl, block_iq2_xxs* y, const float* quant_weights) {
    uint32_t q2[16] = {};
    const bool any = quantize_lattice_super_block(
        iq2xxs_grid(), k_iq2_xxs, xbl, quant_weights, y->d,
        [&](int ib, const uint16_t* index, const uint8_t* signs) {
            for (int k = 0; k < 4; ++k) {
                q2[2 * ib] |= uint32_t(index[k]) << (8 * k);
                q2[2 * ib + 1] |= uint32_t(signs[k]) << (7 * k);
            }
        },
        [&](int ib, int l) { q2[2 * ib + 1] |= uint32_t(l) << 28; });
    if (!any) std::memset(q2, 0, sizeof q2);
    std::memcpy(y->qs, q2, sizeof y->qs);
}

// IQ2_XS, per 8 weights: a 9-bit grid index and 7 sign bits; 4-bit scales per 16, two a byte.
void quantize_iq2_xs_block(const float* xbl, block_iq2_xs* y, const float* quant_weights) {
    std::memset(y, 0, sizeof *y);
    const bool any = quantize_lattice_super_block(
        iq2xs_grid(), k_iq2_xs, xbl, quant_weights, y->d,
        [&](int ib, const uint16_t* index, const uint8_t* signs) {
            for (int k = 0; k < 2; ++k) y->qs[2 * ib + k] = uint16_t(index[k] | (signs[k] << 9));
        },
        [&](int ib, int l) { y->scales[ib / 2] = uint8_t(y->scales[ib / 2] | (l << (4 * (ib % 2)))); });
    if (!any) std::memset(y->qs, 0, sizeof y->qs);
}

// IQ2_S, per 8 weights: the low 8 bits of a 10-bit grid index, 2 high bits in qh, a full sign
// byte; 4-bit scales per 16 as IQ2_XS. A super-block whose scales are all 0 keeps what its
// sub-blocks packed (llama.cpp's order).
void quantize_iq2_s_block(const float* xbl, block_iq2_s* y, const float* quant_weights) {
    std::memset(y, 0, sizeof *y);
    quantize_lattice_super_block(
        iq2s_grid(), k_iq2_s, xbl, quant_weights, y->d,
        [&](int ib, const uint16_t* index, const uint8_t* signs) {
            for (int k = 0; k < 2; ++k) {
                const int i8 = 2 * ib + k;
                y->qs[i8] = uint8_t(index[k] & 255);
                y->qh[i8 / 4] = uint8_t(y->qh[i8 / 4] | ((index[k] >> 8) << (2 * (i8 % 4))));
                y->qs[k_qk_k / 8 + i8] = signs[k];
            }
        },
        [&](int ib, int l) { y->scales[ib / 2] = uint8_t(y->scales[ib / 2] | (l << (4 * (ib % 2)))); });
}

// ---- IQ1_S ----

// llama.cpp's qsort order for the (value, index) pairs of a sub-block: by value only, through the
// C library's qsort, so that ties come out in the same order as in llama.cpp on this libc.
int iq1_pair_order(const void* left, const void* right) {
    const float l = *static_cast<const float*>(left), r = *static_cast<const float*>(right);
    return l < r ? -1 : l > r ? 1 : 0;
}

// One IQ1_S super-block. Per 32 weights, the exact weighted least-squares split of the sorted
// values into the levels -1, 0, 1 (both signs of the delta tried), then each group of 8 mapped to
// the grid or its best neighbour.
void quantize_iq1_s_block(const float* xbl, block_iq1_s* y, const float* quant_weights) {
    const lattice_grid& grid = iq1s_grid();
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
        importance_weights(32, xb, quant_weights + 32 * ib, sigma2, 0.f, weight);
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
            all_on_grid = all_on_grid && grid.index_of(L + 8 * k) >= 0;
            index[k] = uint16_t(grid.nearest_point(L + 8 * k, xb + 8 * k, weight + 8 * k, scale, xx));
        }
        if (!all_on_grid) {
            float sumqx = 0, sumq2 = 0;
            for (int k = 0; k < 4; ++k) {
                const int8_t* p = grid.levels(index[k]);
                for (int j = 0; j < 8; ++j) {
                    const float w = weight[8 * k + j], q = xx[p[j]];
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
    const lattice_grid& grid = iq1s_grid();
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
        importance_weights(16, xbl + 16 * ib, quant_weights ? quant_weights + 16 * ib : nullptr, sigma2, 0.f, weight);
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
            all_on_grid = all_on_grid && grid.index_of(L + 8 * k) >= 0;
            index[k] = uint16_t(grid.nearest_point(L + 8 * k, xb + 8 * k, weight + 8 * k, scale, levels(best_k, k)));
        }
        if (!all_on_grid) {
            float sumqx = 0, sumq2 = 0;
            for (int k = 0; k < 2; ++k) {
                const float* xx = levels(best_k, k);
                const int8_t* p = grid.levels(index[k]);
                for (int j = 0; j < 8; ++j) {
                    const float w = weight[8 * k + j], q = xx[p[j]];
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
            const int8_t* p = grid.levels(y->qs[2 * ib + k] + ((y->qh[ib] << (8 - 4 * k)) & 0x700));
            for (int j = 0; j < 8; ++j) {
                const float w = weight[8 * k + j], q = xx[p[j]] * float(2 * l + 1);
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
    quantize_super_blocks<block_iq2_xxs, quantize_iq2_xxs_block>(src, dst, n, imatrix);
}

void from_float_imatrix_iq2_xs(const float* src, void* dst, int64_t n, const float* imatrix) {
    quantize_super_blocks<block_iq2_xs, quantize_iq2_xs_block>(src, dst, n, imatrix);
}

void from_float_iq2_s(const float* src, void* dst, int64_t n) { quantize_super_blocks<block_iq2_s, quantize_iq2_s_block>(src, dst, n, nullptr); }

void from_float_imatrix_iq2_s(const float* src, void* dst, int64_t n, const float* imatrix) {
    quantize_super_blocks<block_iq2_s, quantize_iq2_s_block>(src, dst, n, imatrix);
}

void from_float_imatrix_iq1_s(const float* src, void* dst, int64_t n, const float* imatrix) {
    quantize_super_blocks<block_iq1_s, quantize_iq1_s_block>(src, dst, n, imatrix);
}

void from_float_iq1_m(const float* src, void* dst, int64_t n) { quantize_super_blocks<block_iq1_m, quantize_iq1_m_block>(src, dst, n, nullptr); }

void from_float_imatrix_iq1_m(const float* src, void* dst, int64_t n, const float* imatrix) {
    quantize_super_blocks<block_iq1_m, quantize_iq1_m_block>(src, dst, n, imatrix);
}

}  // namespace moerun::ref
