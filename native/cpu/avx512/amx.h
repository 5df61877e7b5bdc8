// AMX (AMX-TILE, AMX-INT8) for the int8 GEMM tiles of this folder, which run on the amx path
// (cpu/dispatch.h) only. Eight tile registers of up to 16 rows x 64 bytes; TDPBSUD adds to each
// int32 C[m][n] the dot of A's row m (signed bytes) with B's column n, whose 4-byte groups lie in
// B's rows: C[m][n] += sum_k A[m][4k..4k+3] . B[k][4n..4n+3]. So B is the "VNNI" layout of the
// packed weight tiles (dword g of weight row r at bytes 4r..4r+3 of B's row g), the activations
// load as A straight from their quantized rows (one row per token, any stride), and C holds a
// token per row and a weight row per int32 lane: the layout the AVX-512 tiles' float steps take.
//
// The tile instructions take their register numbers as literals (the intrinsics paste them into
// the assembly), so the kernels spell out their tile registers. Included only by files of this
// folder (AVX-512 + AMX flags); internal linkage, like simd.h.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "simd.h"

namespace moerun::avx512 {
namespace {

// GCC's tile intrinsics are asm statements that name the memory they load and store only by an
// address in a register, so the compiler does not know which memory they touch: unordered, it
// may keep a buffer's stores (a tile configuration, packed weights) after the tile load that reads
// them (it moved a configuration's stores past LDTILECFG, whose intrinsic names only its first 8
// bytes; no tiles were configured and the first tile instruction faulted). A tile step therefore
// names the memory its loads read with amx_fence, before and after it: an empty asm statement
// with that object as an operand, which the compiler orders with every access to the object (and,
// being volatile, with the tile instructions).
template <typename T>
inline void amx_fence(const T& object) {
    __asm__ volatile("" : : "m"(object));
}

// C tiles go to memory and back as volatile asm statements only, which the compiler keeps in
// program order: TILESTORED of tile register `tile` (a literal) to `c` (64-byte rows), and
// amx_load_row for each row read, after the store that wrote it and before the next store to it.
// No memory operand names the buffer: GCC's _tile_stored clobbers all memory, and even an operand
// naming just the buffer kept the kernels' accumulator arrays in memory (a load and a store per
// accumulator per block).
#define MOERUN_AMX_STORE(tile, c) __asm__ volatile("tilestored %%tmm" #tile ", (%0,%1,1)" : : "r"(&(c)), "r"(int64_t(64)))

// TILELOADD of tile register `tile` (a literal) from `base`, rows `stride` bytes apart. GCC's
// _tile_loadd passes the stride as a long, which Windows (LLP64) keeps in a 32-bit register, and
// "(base,index32,1)" does not assemble: the win32-x64 build failed so.
#define MOERUN_AMX_LOAD(tile, base, stride) \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #tile : : "r"(static_cast<const void*>(base)), "r"(int64_t(stride)))
inline __m512i amx_load_row(const int32_t* row) {
    __m512i v;
    __asm__ volatile("vmovdqa32 (%1), %0" : "=v"(v) : "r"(row));
    return v;
}

// A tile's int32 results as stored: 16 rows of 16 lanes.
struct alignas(64) amx_c_tile {
    int32_t v[16][16];
};

// A tile configuration (palette 1): rows and bytes per row of each tile register used.
struct alignas(64) amx_config {
    uint8_t palette = 1, start_row = 0, reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
    void set(int tile, int nrows, int bytes_per_row) {
        rows[tile] = uint8_t(nrows);
        colsb[tile] = uint16_t(bytes_per_row);
    }
};
static_assert(sizeof(amx_config) == 64, "LDTILECFG reads 64 bytes");

// The tile state of the calling thread for one kernel call: configured by load(), released at the
// end so that the thread does not keep 8 KiB of tile state (saved on every context switch) and
// the core's AMX power state between calls.
class amx_scope {
public:
    amx_scope() = default;
    amx_scope(const amx_scope&) = delete;
    amx_scope& operator=(const amx_scope&) = delete;
    ~amx_scope() {
        if (loaded_) _tile_release();
    }
    void load(const amx_config& c) {
        amx_fence(c);
        _tile_loadconfig(&c);
        amx_fence(c);
        loaded_ = true;
    }

private:
    bool loaded_ = false;
};

constexpr int k_amx_tokens = 16;  // activation rows per pass: the most rows of the A and C tiles

// Runs pass(first, tokens) over nx activation rows in passes of up to k_amx_tokens, loading the
// tile configuration config(tokens) for each new pass length; the tile state is released at the
// end (amx_scope).
template <typename Config, typename Pass>
inline void amx_token_passes(int64_t nx, Config&& config, Pass&& pass) {
    amx_scope tiles;
    int configured = 0;
    for (int64_t i = 0; i < nx; i += k_amx_tokens) {
        const int tokens = int(std::min<int64_t>(k_amx_tokens, nx - i));
        if (tokens != configured) {
            tiles.load(config(tokens));
            configured = tokens;
        }
        pass(i, tokens);
    }
}

// Software pipeline of a tile kernel over n steps (blocks, super-blocks): issue(b) runs step b's
// tile instructions, which store its int32 sums to ring slot b % (Lead + 1); take(b) reads them
// with vector loads. A tile store's data reaches those loads only after the store retires, and
// retirement is in order, so take(b) comes Lead steps behind issue(b): the tile unit then computes
// steps b + 1..b + Lead while the vector units take step b. (Taking whole chunks of steps behind
// their issue kept the two apart: the reorder buffer fills with one chunk's vector work while the
// next chunk's tile instructions wait to retire, 1.3-1.5x slower than this.)
template <int Lead, typename Issue, typename Take>
inline void tile_pipeline(int64_t n, Issue&& issue, Take&& take) {
    for (int64_t b = 0; b < std::min<int64_t>(Lead, n); ++b) issue(b, int(b % (Lead + 1)));
    for (int64_t b = 0; b < n; ++b) {
        if (b + Lead < n) issue(b + Lead, int((b + Lead) % (Lead + 1)));
        take(b, int(b % (Lead + 1)));
    }
}

}  // namespace
}  // namespace moerun::avx512
