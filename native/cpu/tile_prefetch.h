// Prefetch of the weight tiles ahead during decode.
//
// A decode tile reads its weight rows in lockstep: 16 (AVX-512) or 8 (AVX2) interleaved streams a
// row length apart, a few bytes of each per step. The hardware prefetchers follow that poorly: on
// a Sapphire Rapids VM one core read 16 rows of 1152 bytes that way at 4.6-4.9 GB/s, against
// 9.2 GB/s reading the same bytes in address order. The tiles that follow are the bytes right
// after this one (threads take contiguous row blocks; an expert's matrix is contiguous), so a
// tile ahead is prefetched in address order, spread evenly over the steps of this one: one
// sequential stream, which the same core read at 8.0-9.2 GB/s. Measured there (bench_matmul --m 1
// on 151 MB of weights, 1 thread, 3 interleaved rounds): Q4_0 5.2 -> 8.9-10.9 GB/s two tiles
// ahead, 6.5-7.7 one tile ahead. Prefetches never fault, so running past the weight's last rows is harmless.
//
// How far ahead depends on the CPU. On a Zen 5 (2 threads, 8 of 256 random experts per call, the
// tiles alternating call by call: bench_matmul --experts 256:8 --prefetch-rows 32,16) the
// AVX-512 tile read 9-25% faster prefetching 16 rows ahead (one tile) than 32 (two): Q8_0
// gate/up shape (512 x 2048) 34-42 -> 38-51 GB/s, down (2048 x 512) 40-49 -> 46-54, and a
// Ling-mini Q8_0 decode went from 45-50 to 48-58 tok/s. The AVX2 tile (8 rows) read the same at
// 8 and 16 rows ahead there. Intel keeps the two tiles measured above.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moerun {

// Weight rows between a decode tile of tile_rows rows and the one it prefetches, a whole number of
// tiles: 16 on AMD, two tiles elsewhere (measured above). Defined in cpu/dispatch.cpp.
int decode_prefetch_rows(int tile_rows);
// For benchmarks (bench_matmul --prefetch-rows): overrides that choice from the next tile on; 0
// restores it, -1 turns the prefetch off (decode_prefetch_rows then returns 0).
void set_decode_prefetch_rows(int rows);

class tile_prefetch {
public:
    // tile: the tile's first row; rows rows of w_row bytes; steps: how many times step() will run.
    tile_prefetch(const void* tile, size_t w_row, int rows, int64_t steps) : tile_prefetch(tile, w_row, rows, steps, decode_prefetch_rows(rows)) {}

    // Prefetches this step's share of that tile's lines into L1.
    void step() {
        for (int64_t i = 0; i < per_step_ && next_ < end_; ++i, next_ += k_line) __builtin_prefetch(next_, 0, 3);
    }

private:
    tile_prefetch(const void* tile, size_t w_row, int rows, int64_t steps, int ahead)
        : next_(static_cast<const char*>(tile) + size_t(ahead) * w_row),
          end_(next_ + size_t(rows) * w_row),
          per_step_(steps > 0 && ahead > 0 ? int64_t((size_t(rows) * w_row / k_line + size_t(steps) - 1) / size_t(steps)) : 0) {}

    static constexpr size_t k_line = 64;
    const char* next_;
    const char* end_;
    int64_t per_step_;
};

}  // namespace moerun
