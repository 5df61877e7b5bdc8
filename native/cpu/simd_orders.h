// llama.cpp's float summation orders (cpu/kernels.h) that every SIMD path sums in, written once:
// templates over a small vector-ops struct that each ISA folder defines next to its primitives
// (avx2/simd.h, avx512/simd.h, neon/float.cpp). No intrinsics here: an ISA file includes this
// header and instantiates the templates with its own vector type, under its own compiler flags.
//   vec_dot_unrolled   the vector-dot order of one row pair (F32 or F16)
//   unrolled_tile      that order for nw keys x nx queries (attention scores), bit for bit
//   weighted_sum       the GEMM order over j of sum_j p[j] * v_j for up to 8 queries at once
//                      (attention values), bit for bit each query alone
//
// The ops struct `Ops` (one per ISA and element type):
//   using vec                            a vector of `width` floats
//   using elem                           the element loaded: float (F32) or uint16_t (F16)
//   static constexpr int lanes           L of the order
//   static constexpr int width           floats per vec: L, or L / slices where a vector holds a
//                                        slice of the L lanes (NEON's float32x4 quarters: the
//                                        vector-dot order then runs one pass per slice)
//   vec zero(), add(a, b), fmadd(a, b, acc) (acc + a * b, one rounding), broadcast(float)
//   vec load(const elem*)                `width` elements
//   float scalar(elem)                   one element as a float
//   float hsum_unrolled(const vec* s)    the vector-dot order's lane sum of the vector in
//                                        s[0..slices): the reduction of llama.cpp's vector dot
// weighted_sum also needs (width == lanes):
//   vec load_part(const elem*, int64_t count)          the first count < width, zero-padded
//   void store(float*, vec), store_part(float*, vec, int64_t count)
//   static constexpr int accumulators                  vectors it may keep as accumulators
//
// Everything has internal linkage (unnamed namespace), as in avx2/simd.h: an instantiation
// compiled with AVX-512 flags must never be the copy the linker keeps for an AVX2 file.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

// Fully unrolls the next constant-trip loop. Register-blocked tiles need it: GCC otherwise keeps
// their accumulator arrays in memory, with a store per accumulator per step.
#define MOERUN_UNROLL _Pragma("GCC unroll 16")

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

// ---- GEMM order over j: the attention values ----

// One `width`-wide chunk of elements [e, e + count) of the Q queries' outputs, sum_j p_q[j] * v_j
// over j < n[q]: per query L accumulators (accumulator l takes the rows j = l mod L), LB of them
// at a time (Q * LB in registers, each V row loaded once for the Q queries), the finished ones
// kept in `lanes`; then added as the GEMM order's lane tree adds them: halves down to 4, then
// (0 + 2) + (1 + 3). Rows j < min n are taken by every query, the ragged end (j < n[q] for some)
// query by query. The last chunk, when shorter than a vector (!whole: count < width), is loaded
// zero-padded. Inlined into weighted_sum_block: as a call per chunk the AVX-512 kernels measured
// 3-4% slower.
template <class Ops, int Q, int LB, bool whole>
[[gnu::always_inline]] inline void weighted_sum_chunk(const float* const* p, const int64_t* n, int64_t n_min, int64_t n_max, const typename Ops::elem* v,
                        size_t v_stride, int64_t e, int64_t count, float* const* out) {
    using vec = typename Ops::vec;
    constexpr int L = Ops::lanes;
    const auto load = [&](int64_t j) {
        const typename Ops::elem* row = v + size_t(j) * v_stride + size_t(e);
        if constexpr (whole) return Ops::load(row);
        else return Ops::load_part(row, count);
    };
    vec lanes[L][Q];
    for (int l0 = 0; l0 < L; l0 += LB) {
        vec acc[LB][Q];
        MOERUN_UNROLL
        for (int b = 0; b < LB; ++b)
            MOERUN_UNROLL
            for (int q = 0; q < Q; ++q) acc[b][q] = Ops::zero();
        int64_t j0 = l0;
        for (; j0 + LB <= n_min; j0 += L) {
            MOERUN_UNROLL
            for (int b = 0; b < LB; ++b) {
                const vec vj = load(j0 + b);
                MOERUN_UNROLL
                for (int q = 0; q < Q; ++q) acc[b][q] = Ops::fmadd(Ops::broadcast(p[q][j0 + b]), vj, acc[b][q]);
            }
        }
        for (; j0 < n_max; j0 += L) {  // constant indices into acc (unrolled), so it stays in registers
            MOERUN_UNROLL
            for (int b = 0; b < LB; ++b) {
                if (j0 + b >= n_max) break;
                const vec vj = load(j0 + b);
                MOERUN_UNROLL
                for (int q = 0; q < Q; ++q) {
                    if (j0 + b < n[q]) acc[b][q] = Ops::fmadd(Ops::broadcast(p[q][j0 + b]), vj, acc[b][q]);
                }
            }
        }
        MOERUN_UNROLL
        for (int b = 0; b < LB; ++b)
            MOERUN_UNROLL
            for (int q = 0; q < Q; ++q) lanes[l0 + b][q] = acc[b][q];
    }
    for (int q = 0; q < Q; ++q) {
        vec t[L / 2];
        for (int l = 0; l < L / 2; ++l) t[l] = Ops::add(lanes[l][q], lanes[l + L / 2][q]);
        for (int half = L / 4; half >= 4; half /= 2)
            for (int l = 0; l < half; ++l) t[l] = Ops::add(t[l], t[l + half]);
        const vec sum = Ops::add(Ops::add(t[0], t[2]), Ops::add(t[1], t[3]));
        if constexpr (whole) Ops::store(out[q] + e, sum);
        else Ops::store_part(out[q] + e, sum, count);
    }
}

// Q queries over every chunk of the `dim` elements. LB, the accumulators per query kept at once,
// is the largest power of two with Q * LB within Ops::accumulators (at most L).
template <class Ops, int Q>
void weighted_sum_block(const float* const* p, const int64_t* n, const typename Ops::elem* v, size_t v_stride, int64_t dim,
                        float* const* out) {
    static_assert(Ops::width == Ops::lanes, "one vector holds all L lanes");
    constexpr int LB = int(std::bit_floor(unsigned(std::min(Ops::lanes, Ops::accumulators / Q))));
    static_assert(LB >= 1, "room for one accumulator per query");
    const float* pq[Q];  // a local copy, which the compiler can keep in registers
    int64_t n_min = n[0], n_max = n[0];
    for (int q = 0; q < Q; ++q) {
        pq[q] = p[q];
        n_min = std::min(n_min, n[q]);
        n_max = std::max(n_max, n[q]);
    }
    int64_t e = 0;
    for (; e + Ops::width <= dim; e += Ops::width) weighted_sum_chunk<Ops, Q, LB, true>(pq, n, n_min, n_max, v, v_stride, e, Ops::width, out);
    if (e < dim) weighted_sum_chunk<Ops, Q, LB, false>(pq, n, n_min, n_max, v, v_stride, e, dim - e, out);
}

// vector_ops::weighted_sum (v_stride in elements): queries in blocks of up to 8.
template <class Ops>
void weighted_sum(int64_t n_queries, const float* const* p, const int64_t* n, const typename Ops::elem* v, size_t v_stride, int64_t dim,
                  float* const* out) {
    constexpr int k_queries = 8;
    using block_fn = void (*)(const float* const*, const int64_t*, const typename Ops::elem*, size_t, int64_t, float* const*);
    static constexpr auto blocks = []<int... I>(std::integer_sequence<int, I...>) {
        return std::array<block_fn, sizeof...(I)>{&weighted_sum_block<Ops, I + 1>...};
    }(std::make_integer_sequence<int, k_queries>{});
    for (int64_t q = 0; q < n_queries; q += k_queries) {
        blocks[size_t(std::min<int64_t>(k_queries, n_queries - q) - 1)](p + q, n + q, v, v_stride, dim, out + q);
    }
}

}  // namespace
}  // namespace moerun::simd_orders
