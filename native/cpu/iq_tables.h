// Lookup tables the SIMD lattice kernels (cpu/avx2/iq_grid.cpp, cpu/avx512/iq_grid.cpp) read besides
// the format's own grids (quant/iq_grids.h); plain data, the same on every ISA.
#pragma once

#include <array>
#include <cstdint>

#include "../quant/iq_grids.h"

namespace moerun {

// IQ1_S/IQ1_M grid points plus one: the levels -1, 0, 1 as unsigned bytes 0, 1, 2. A point's dot with
// activations q is then dot(point + 1, q) - sum(q), and Q8_K rows carry sum(q) per 16 (bsums), so
// the kernels multiply unsigned by signed bytes directly, with no sign step.
inline constexpr int8_t k_iq1_levels_plus1[4] = {0, 1, 2, 0};
inline constexpr std::array<uint64_t, 2048> k_iq1s_grid_plus1 = expand_grid<uint64_t>(k_iq1s_codes, k_iq1_levels_plus1, 2, 8);

}  // namespace moerun
