// llama.cpp's float summation orders (cpu/kernels.h) that every SIMD path sums in, written once:
// templates over a small vector-ops struct that each ISA folder defines next to its primitives
// (avx2/simd.h, avx512/simd.h, neon/float.cpp). No intrinsics here: an ISA file includes this
// header and instantiates the templates with its own vector type, under its own compiler flags.
//   vec_dot_unrolled   the vector-dot order of one row pair (F32 or F16)
//   unrolled_tile      that order for nw keys x nx queries (attention scores), bit for bit
//
// The ops struct `Ops` (one per ISA and element type):
//   using vec                            a vector of `width` floats
//   using elem                           the element loaded: float (F32) or uint16_t (F16)
//   static constexpr int lanes           L of the order
//   static constexpr int width           floats per vec: L, or L / slices where a vector holds a
//                                        slice of the L lanes (NEON's float32x4 quarters: the
//                                        vector-dot order then runs one pass per slice)
//   vec zero(), add(a, b), fmadd(a, b, acc) (acc + a * b, one rounding)
//   vec load(const elem*)                `width` elements
//   float scalar(elem)                   one element as a float
//   float hsum_unrolled(const vec* s)    the vector-dot order's lane sum of the vector in
//                                        s[0..slices): the reduction of llama.cpp's vector dot
//
// Everything has internal linkage (unnamed namespace), as in avx2/simd.h: an instantiation
// compiled with AVX-512 flags must never be the copy the linker keeps for an AVX2 file.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

// Fully unrolls the next constant-trip loop. Register-blocked tiles need it: GCC otherwise keeps
// their accumulator arrays in memory, with a store per accumulator per step.
#define MOERUN_UNROLL _Pragma("GCC unroll 16")

// Kernel helpers are inlined whatever GCC's size heuristics say: every vector register is
// caller-saved, so a helper left out of line spills the caller's live registers around each call
// (at -O3 GCC kept a one-instruction vpshufb helper and a Q6_K super-block out of line).
#define MOERUN_ALWAYS_INLINE __attribute__((always_inline))

namespace moerun::simd_orders {
namespace {

// ---- vector-dot order: four accumulators over steps of 4L ----

// The vector-dot order's body for Q rows b[0..Q) against one row a, one slice of the lanes (a
// and b already offset to the slice): four accumulators over the first n & ~(4L - 1) elements,
// accumulator k taking elements [i + kL, i + kL + width) of each step, then added
// (0 + 2) + (1 + 3). a's vectors are loaded once for all Q rows.
template <class Ops, int Q>
void unrolled_slice(int64_t n, const typename Ops::elem* a, const typename Ops::elem* const* b, typename Ops::vec* out) {
    using vec = typename Ops::vec;
    constexpr int L = Ops::lanes;
    vec acc[Q][4];
    MOERUN_UNROLL
    for (int q = 0; q < Q; ++q)
        for (int k = 0; k < 4; ++k) acc[q][k] = Ops::zero();
    for (int64_t i = 0; i + 4 * L <= n; i += 4 * L) {
        vec va[4];
        for (int k = 0; k < 4; ++k) va[k] = Ops::load(a + i + L * k);
        MOERUN_UNROLL
        for (int q = 0; q < Q; ++q)
            for (int k = 0; k < 4; ++k) acc[q][k] = Ops::fmadd(va[k], Ops::load(b[q] + i + L * k), acc[q][k]);
    }
    MOERUN_UNROLL
    for (int q = 0; q < Q; ++q) out[q] = Ops::add(Ops::add(acc[q][0], acc[q][2]), Ops::add(acc[q][1], acc[q][3]));
}

// The body's sums for Q rows (each bit for bit the one-row sum): one pass per slice of the lanes,
// then the lane sum of each row's slices.
template <class Ops, int Q>
void unrolled_bodies(int64_t n, const typename Ops::elem* a, const typename Ops::elem* const* b, float* out) {
    using elem = typename Ops::elem;
    constexpr int slices = Ops::lanes / Ops::width;
    static_assert(slices * Ops::width == Ops::lanes, "a vector holds all lanes or an equal slice of them");
    typename Ops::vec sums[slices][Q];
    for (int c = 0; c < slices; ++c) {
        const elem* bc[Q];
        for (int q = 0; q < Q; ++q) bc[q] = b[q] + c * Ops::width;
        unrolled_slice<Ops, Q>(n, a + c * Ops::width, bc, sums[c]);
    }
    for (int q = 0; q < Q; ++q) {
        typename Ops::vec s[slices];
        for (int c = 0; c < slices; ++c) s[c] = sums[c][q];
        out[q] = Ops::hsum_unrolled(s);
    }
}

// The remainder past the body's 4L-element steps, added to the body's sum `body`. F32 in float:
// llama.cpp's build (GCC) vectorizes its remainder loop, whose vector part rounds each product
// before adding it (we build with -ffp-contract=off, which does the same) and whose scalar
// epilogue, the last (n - 4Lk) mod L/2 elements, fuses multiply and add. F16 in double (its
// products are exact in float).
template <class Ops>
float unrolled_rest(int64_t n, const typename Ops::elem* a, const typename Ops::elem* b, float body) {
    const int64_t rest = n & ~int64_t(4 * Ops::lanes - 1);
    if constexpr (std::is_same_v<typename Ops::elem, float>) {
        const int64_t fused = rest + ((n - rest) & ~int64_t(Ops::lanes / 2 - 1));
        float sum = body;
        for (int64_t i = rest; i < fused; ++i) sum += a[i] * b[i];
        for (int64_t i = fused; i < n; ++i) sum = std::fma(a[i], b[i], sum);
        return sum;
    } else {
        double sum = body;
        for (int64_t i = rest; i < n; ++i) sum += double(Ops::scalar(a[i]) * Ops::scalar(b[i]));
        return float(sum);
    }
}

// vec_dot_fn in the vector-dot order.
template <class Ops>
void vec_dot_unrolled(int64_t n, float* s, const void* x, const void* y) {
    const auto* a = static_cast<const typename Ops::elem*>(x);
    const auto* b = static_cast<const typename Ops::elem*>(y);
    float body;
    unrolled_bodies<Ops, 1>(n, a, &b, &body);
    *s = unrolled_rest<Ops>(n, a, b, body);
}

// Weight rows [r0, r1) against the Q activation rows x[0..Q): y[q][r] = vec_dot_unrolled(w_r, x_q).
template <class Ops, int Q>
void unrolled_rows(int64_t n, const void* w, size_t w_row, int64_t r0, int64_t r1, const typename Ops::elem* const* x, float* const* y) {
    for (int64_t r = r0; r < r1; ++r) {
        const auto* wr = reinterpret_cast<const typename Ops::elem*>(static_cast<const uint8_t*>(w) + size_t(r) * w_row);
        float body[Q];
        unrolled_bodies<Ops, Q>(n, wr, x, body);
        MOERUN_UNROLL
        for (int q = 0; q < Q; ++q) y[q][r] = unrolled_rest<Ops>(n, wr, x[q], body[q]);
    }
}

// gemm_tile_fn in the vector-dot order (cpu_kernels::unrolled_tile): each weight row (an attention
// key) against up to `k_queries` activation rows (queries) per pass, loaded once for all of them;
// weight rows in blocks of 32 (16 KiB of F32 at a head size of 128), so that the next pass over
// the same block finds them in L1.
template <class Ops, int k_queries>
void unrolled_tile(int64_t n, const void* w, size_t w_row, int64_t nw, const void* x, size_t x_row, int64_t nx, float* y,
                   int64_t y_stride) {
    using elem = typename Ops::elem;
    constexpr int64_t k_block = 32;
    using rows_fn = void (*)(int64_t, const void*, size_t, int64_t, int64_t, const elem* const*, float* const*);
    static constexpr auto rows = []<int... I>(std::integer_sequence<int, I...>) {
        return std::array<rows_fn, sizeof...(I)>{&unrolled_rows<Ops, I + 1>...};
    }(std::make_integer_sequence<int, k_queries>{});
    for (int64_t r0 = 0; r0 < nw; r0 += k_block) {
        for (int64_t i0 = 0; i0 < nx; i0 += k_queries) {
            const int64_t ni = std::min<int64_t>(k_queries, nx - i0);
            const elem* xi[k_queries];
            float* yi[k_queries];
            for (int64_t i = 0; i < ni; ++i) {
                xi[i] = reinterpret_cast<const elem*>(static_cast<const uint8_t*>(x) + size_t(i0 + i) * x_row);
                yi[i] = y + (i0 + i) * y_stride;
            }
            rows[size_t(ni - 1)](n, w, w_row, r0, std::min(nw, r0 + k_block), xi, yi);
        }
    }
}

}  // namespace
}  // namespace moerun::simd_orders
