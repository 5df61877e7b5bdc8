// The quantizers of the 4-element lattice formats with 3-bit level codes, IQ3_XXS and IQ3_S, as
// llama.cpp's quantize_row_iq3_xxs_impl and quantize_row_iq3_s_impl (what llama-quantize runs), so
// they write llama.cpp's bytes; both with or without an importance matrix. Per 32 weights: the
// search of lattice_search.h (signs split off, trial scales that snap every group of 4 magnitudes to
// the grid or its best neighbour, the weighted least-squares scale); the formats differ in its
// constants and in how they pack the grid indices, signs and 4-bit sub-block scales.
#include <cstring>
#include <limits>

#include "blocks.h"
#include "iq_grids.h"
#include "lattice_search.h"
#include "reference.h"

namespace moerun::ref {
namespace {

// The 3-bit grids: groups of 4, levels 0..7, and llama.cpp's neighbour depth (nwant) for each.
constexpr auto iq3xxs_grid = lattice_grid_of<k_iq3xxs_codes, 256, 4, 3, 7, 2>;
constexpr auto iq3s_grid = lattice_grid_of<k_iq3s_codes, 512, 4, 3, 7, 3>;

// llama.cpp's constants (lattice_format's fields in order). IQ3_S stores nothing for a sub-block
// only when it is exactly zero (its test is !max): below the smallest positive float.
constexpr lattice_format k_iq3_xxs = {32, 8, 2.f, 0.f, 1e-8f, true, false, 15, 0.2f, true, false, false, 1.0125f};
constexpr lattice_format k_iq3_s = {32, 8, 2.f, 0.f, std::numeric_limits<float>::denorm_min(), false, false, 9, 0.2f, false, false, true, 1.033f};

// IQ3_XXS: 64 bytes of 8-bit grid indices, then per 32 weights a 32-bit word of four 7-bit sign
// groups and the 4-bit scale at bit 28.
void quantize_iq3_xxs_block(const float* xbl, block_iq3_xxs* y, const float* quant_weights) {
    uint8_t q3[64] = {};
    uint32_t scales_and_signs[8] = {};
    const bool any = quantize_lattice_super_block(
        iq3xxs_grid(), k_iq3_xxs, xbl, quant_weights, y->d,
        [&](int ib, const uint16_t* index, const uint8_t* signs) {
            for (int k = 0; k < 8; ++k) q3[8 * ib + k] = uint8_t(index[k]);
            scales_and_signs[ib] = signs[0] | (signs[1] << 7) | (signs[2] << 14) | (uint32_t(signs[3]) << 21);
        },
        [&](int ib, int l) { scales_and_signs[ib] |= uint32_t(l) << 28; });
    if (!any) {
        std::memset(y->qs, 0, sizeof y->qs);
        return;
    }
    std::memcpy(y->qs, q3, sizeof q3);
    std::memcpy(y->qs + sizeof q3, scales_and_signs, sizeof scales_and_signs);
}

// IQ3_S: the low 8 bits of each 9-bit grid index in qs, bit 8 in qh, a sign byte per 8 weights, a
// 4-bit scale per 32. As in llama.cpp, a sub-block that stores nothing (exactly zero) does not
// advance the qs and sign positions, so the sub-blocks after it land one slot early there (qh
// keeps its place): the bytes llama.cpp writes, though its dequantizer reads those slots back
// shifted.
void quantize_iq3_s_block(const float* xbl, block_iq3_s* y, const float* quant_weights) {
    std::memset(y, 0, sizeof *y);
    int slot = 0;  // sub-blocks packed so far
    quantize_lattice_super_block(
        iq3s_grid(), k_iq3_s, xbl, quant_weights, y->d,
        [&](int ib, const uint16_t* index, const uint8_t* signs) {
            for (int k = 0; k < 8; ++k) {
                y->qs[8 * slot + k] = uint8_t(index[k] & 255);
                y->qh[ib] = uint8_t(y->qh[ib] | ((index[k] >> 8) << k));
            }
            std::memcpy(y->signs + 4 * slot, signs, 4);
            ++slot;
        },
        [&](int ib, int l) { y->scales[ib / 2] = uint8_t(y->scales[ib / 2] | (l << (4 * (ib % 2)))); });
}

}  // namespace

void from_float_iq3_xxs(const float* src, void* dst, int64_t n) { quantize_super_blocks<block_iq3_xxs, quantize_iq3_xxs_block>(src, dst, n, nullptr); }

void from_float_imatrix_iq3_xxs(const float* src, void* dst, int64_t n, const float* imatrix) {
    quantize_super_blocks<block_iq3_xxs, quantize_iq3_xxs_block>(src, dst, n, imatrix);
}

void from_float_iq3_s(const float* src, void* dst, int64_t n) { quantize_super_blocks<block_iq3_s, quantize_iq3_s_block>(src, dst, n, nullptr); }

void from_float_imatrix_iq3_s(const float* src, void* dst, int64_t n, const float* imatrix) {
    quantize_super_blocks<block_iq3_s, quantize_iq3_s_block>(src, dst, n, imatrix);
}

}  // namespace moerun::ref
