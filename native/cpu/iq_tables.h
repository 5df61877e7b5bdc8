// Lookup tables the SIMD lattice kernels (cpu/avx2/iq_grid.cpp, cpu/avx512/iq_grid.cpp,
// cpu/neon/iq_dots.h) read besides the format's own grids (quant/iq_grids.h); plain data, the same
// on every ISA.
#pragma once

#include <array>
#include <cstdint>

#include "../quant/blocks.h"
#include "../quant/iq_grids.h"

namespace moerun {

// IQ1_S/IQ1_M grid points plus one: the levels -1, 0, 1 as unsigned bytes 0, 1, 2. A point's dot with
// activations q is then dot(point + 1, q) - sum(q), and Q8_K rows carry sum(q) per 16 (bsums), so
// the kernels multiply unsigned by signed bytes directly, with no sign step.
inline constexpr int8_t k_iq1_levels_plus1[4] = {0, 1, 2, 0};
inline constexpr std::array<uint64_t, 2048> k_iq1s_grid_plus1 = expand_grid<uint64_t>(k_iq1s_codes, k_iq1_levels_plus1, 2, 8);

// k_iq_signs expanded for IQ2_XXS, IQ2_XS and IQ3_XXS: 7 stored sign bits -> 8 int8 bytes of +-1
// (the 8th by parity, bit j -> byte j), so one 8-byte load gives a group's signs.
inline constexpr std::array<uint64_t, 128> k_iq_sign_bytes = [] {
    std::array<uint64_t, 128> t{};
    for (size_t i = 0; i < 128; ++i) {
        for (int j = 0; j < 8; ++j) t[i] |= uint64_t((k_iq_signs[i] >> j) & 1 ? 0xff : 0x01) << (8 * j);
    }
    return t;
}();

}  // namespace moerun
