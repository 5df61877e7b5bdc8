// Interleaved weight rows: the CPU's own layout for matmul weights whose type has an interleaved
// tile on the active path (cpu_kernels::int8_tile_interleaved; the AVX512_VNNI path's Q4_K and
// Q5_K). A group of k_interleave_rows consecutive rows keeps its bytes, 16 * row_bytes in the same
// place, reordered:
//
//   dword i (< block_bytes / 4) of block b of row r  ->  byte b * 16 * block_bytes + 64 i + 4 r
//
// (a block of block_bytes % 4 != 0 keeps its last bytes after its dwords, row by row), so one
// 64-byte load gives the same dword of all 16 rows, row r in lane r: what the int8 tiles
// otherwise build per call with a 16 x 4 transpose per 16 bytes (avx512/int8_gemm_k.cpp). Decode
// then unpacks a super-block of 16 rows in registers. The results are bit for bit those of the
// rows in place. Measured on a Zen 5 (bench_matmul --interleave 0|1, k 2048, m 1):
//   Q4_K in cache, 1 thread: 330 against 128 GFLOP/s (the kernel alone), 197 against 119 (matmul)
//   from DRAM, 2 threads, n 65536: Q4_K 85-91 against 56-64 GB/s, Q5_K 70-72 against 59-60
// Not interleaved, because it measured no faster: Q6_K on AVX-512 (a kernel of this layout read
// 63-70 against 72-74 GB/s from DRAM: its 6-bit unpacking, not the reduction, binds), and every
// type on AVX2 (an 8-row kernel packing from this layout decoded Q4_K at 72-75 against 76-78
// GFLOP/s: without VNNI the rows in place already share the activation loads and reduce 8 rows
// at once, so the layout saves little).
//
// The weights are rewritten once at load into private memory (interleave_weights), so the layout
// costs no memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstddef>
#include <functional>

#include "../backend/backend.h"  // weight_reader
#include "../backend/model_desc.h"
#include "../base/thread_pool.h"

namespace moerun {

constexpr int k_interleave_rows = 16;

// The group of 16 rows at `rows` (row_bytes apart, blocks of block_bytes) into
// `out` (16 * row_bytes, not overlapping rows).
void interleave_group(const uint8_t* rows, size_t row_bytes, size_t block_bytes, uint8_t* out);

// Row r (< 16) of an interleaved group back in the file's layout: out (row_bytes).
void deinterleave_row(const uint8_t* group, size_t row_bytes, size_t block_bytes, int r, uint8_t* out);

// Whether the active path interleaves t: a host matmul weight of a type with an interleaved tile,
// whose row count per matrix (ne[1]) is a multiple of 16, so each matrix (and each expert of a 3-D
// weight) is whole groups.
bool can_interleave(const tensor& t);

// Interleaves every matmul weight of w that can_interleave, except the token embedding (read a
// row at a time) and what shares its bytes, and sets tensor::interleaved. dst(p) is where weight
// byte p's arranged bytes go. Without `read`, dst(p) is p's own writable alias (the copied file)
// and the weights are rewritten in place, keeping their addresses; with it, read(p, n, out) gives
// weight bytes [p, p + n) from their source (the file), the arranged bytes go to dst(p) and the
// tensors point there. step (may be null) is called on the calling thread after every 64 MiB or so
// with the bytes interleaved so far of all to interleave, and may throw to stop (an aborted load:
// the weights done so far are rewritten, the rest untouched, and the caller discards them).
// Returns the bytes interleaved. MOERUN_INTERLEAVE=0 turns it off.
uint64_t interleave_weights(model_weights& w, thread_pool& pool, const std::function<uint8_t*(const void*)>& dst, const weight_reader& read,
                            const load_step_fn& step = nullptr);

}  // namespace moerun
