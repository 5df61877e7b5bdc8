// Prefetch of the weight tiles ahead during decode.
//
// A decode tile reads its weight rows in lockstep: 16 (AVX-512) or 8 (AVX2) interleaved streams a
// row length apart, a few bytes of each per step. The hardware prefetchers follow that poorly: on
// a Sapphire Rapids VM one core read 16 rows of 1152 bytes that way at 4.6-4.9 GB/s, against
// 9.2 GB/s reading the same bytes in address order. The tiles that follow are the bytes right
// after this one (threads take contiguous row blocks; an expert's matrix is contiguous), so the
// tile two ahead is prefetched in address order, spread evenly over the steps of this one: one
// sequential stream, which the same core read at 8.0-9.2 GB/s. Measured (bench_matmul --m 1 on
// 151 MB of weights, 1 thread, 3 interleaved rounds): Q4_0 5.2 -> 8.9-10.9 GB/s, one tile ahead
// 6.5-7.7. Prefetches never fault, so running past the weight's last rows is harmless.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moerun {

class tile_prefetch {
public:
    // tile: the tile's first row; rows rows of w_row bytes; steps: how many times step() will run.
    tile_prefetch(const void* tile, size_t w_row, int rows, int64_t steps)
        : next_(static_cast<const char*>(tile) + size_t(k_tiles_ahead * rows) * w_row),
          end_(next_ + size_t(rows) * w_row),
          per_step_(steps > 0 ? int64_t((size_t(rows) * w_row / k_line + size_t(steps) - 1) / size_t(steps)) : 0) {}

    // Prefetches this step's share of that tile's lines into L1.
    void step() {
        for (int64_t i = 0; i < per_step_ && next_ < end_; ++i, next_ += k_line) __builtin_prefetch(next_, 0, 3);
    }

private:
    static constexpr size_t k_line = 64;
    static constexpr int k_tiles_ahead = 2;
    const char* next_;
    const char* end_;
    int64_t per_step_;
};

}  // namespace moerun
