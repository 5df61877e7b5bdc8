// AVX-512 (BW + VNNI) dots of the 2-bit and 1-bit lattice formats IQ2_XXS and IQ1_S against Q8_K:
// two 32-weight sub-blocks per register, so each of a super-block's four steps does one 64-byte
// multiply for 64 weights per activation row.
//
// IQ2_XXS: the 8 grid points of two sub-blocks are gathered into 64 unsigned bytes; their 64 sign
// bits (7 stored per 8 weights, the 8th their parity, expanded with pdep) become a mask register
// that negates the activations (masked subtract; AVX-512 has no 512-bit vpsignb).
// IQ1_S: the points plus one (0..2, cpu/iq_tables.h) multiply the activations directly; the "- 1"
// and the delta term are per-sub-block activation sums (Q8_K's bsums) times the scales, one short
// vector step per super-block instead of a second multiply per sub-block.
// The int16 pair products take their sub-block scales in vpdpwssd (VNNI). Integer sums are exact
// and each super-block's sum is scaled in float exactly as the reference (quant/reference_iq_grid.cpp)
// does, so these kernels equal it bit for bit.
#include "../../quant/blocks.h"
#include "../iq_tables.h"
#include "kernels.h"
#include "simd.h"

// Every AVX-512 CPU has BMI2 (Skylake-X and Zen 4 on), with a fast pdep on all of them: the
// functions that use it are compiled for it (an attribute, so GCC and clang both take it).
#define MOERUN_BMI2 __attribute__((target("bmi2")))

namespace moerun::avx512 {
namespace {

// Weight rows stream from DRAM in decode; these kernels spend so long per byte that the hardware
// prefetcher falls behind, so each super-block prefetches the bytes this far ahead (16 lines;
// 1,024 beat 512 and 2,048 in bench_dot_peer on rows that do not fit the caches).
constexpr int k_prefetch_bytes = 1024;

inline uint32_t load_u32(const void* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// The int16 scales of sub-blocks 2p and 2p + 1 over the 32 lanes of a 64-byte product (the first
// in lanes 0-15, the second in 16-31), from int16 lane `at + 2p * stride` and `at + (2p + 1) *
// stride` of a super-block's scale vector (one vpermw).
inline __m512i pair_scales(__m512i scales, int p, int at, int stride) {
    const __m512i half = _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
                                                            10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           4);  // 0 for lanes 0-15, 1 for 16-31
    const __m512i idx = _mm512_add_epi16(_mm512_mullo_epi16(half, _mm512_set1_epi16(short(stride))), _mm512_set1_epi16(short(at + 2 * p * stride)));
    return _mm512_permutexvar_epi16(idx, scales);
}

// Grid points i0..i7 in one register, point j in bytes 8j..8j+7.
inline __m512i points8(const uint64_t* g, size_t i0, size_t i1, size_t i2, size_t i3, size_t i4, size_t i5, size_t i6, size_t i7) {
    const __m256i lo = _mm256_set_epi64x(int64_t(g[i3]), int64_t(g[i2]), int64_t(g[i1]), int64_t(g[i0]));
    const __m256i hi = _mm256_set_epi64x(int64_t(g[i7]), int64_t(g[i6]), int64_t(g[i5]), int64_t(g[i4]));
    return join(lo, hi);
}

// The sign mask of two IQ2_XXS sub-blocks from their sign words (4 x 7 bits in bits 0-27 each):
// bit 8l + j for weight 8l + j, the 8th bit of each byte the parity of its 7.
MOERUN_BMI2 inline __mmask64 parity_sign_mask(uint32_t a, uint32_t b) {
    const uint64_t bits = uint64_t(a & 0x0fffffff) | (uint64_t(b & 0x0fffffff) << 28);
    const uint64_t e = _pdep_u64(bits, 0x7f7f7f7f7f7f7f7full);
    uint64_t p = e ^ (e >> 4);  // bit 0 of each byte: the parity of that byte's bits
    p ^= p >> 2;
    p ^= p >> 1;
    return _cvtu64_mask64(e | ((p & 0x0101010101010101ull) << 7));
}

// ---- IQ2_XXS: per sub-block two words, 4 grid-index bytes, then 28 sign bits | ls << 28 ----

template <int R>
MOERUN_BMI2 inline void iq2_xxs_rows(int64_t nb, const block_iq2_xxs* x, const uint8_t* y, size_t y_stride, float* out) {
    float sum[R];
    const block_q8_K* yr[R];
    for (int r = 0; r < R; ++r) {
        sum[r] = 0;
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    for (int64_t i = 0; i < nb; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(x + i) + k_prefetch_bytes, _MM_HINT_T0);
        const uint8_t* q = reinterpret_cast<const uint8_t*>(x[i].qs);
        // 2 ls + 1 of sub-block ib from the top nibble of its second word: int16 lane 4 ib + 3
        const __m512i words = load512(q);
        const __m512i scales = _mm512_add_epi32(_mm512_slli_epi32(_mm512_srli_epi32(words, 28), 17), _mm512_set1_epi32(1 << 16));
        __m512i acc[R];
        for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
        for (int p = 0; p < 4; ++p) {  // sub-blocks 2p, 2p + 1
            const uint8_t* ia = q + 16 * p;  // sub-block 2p's index bytes; 2p + 1's at ia + 8
            const uint32_t sg_a = load_u32(ia + 4), sg_b = load_u32(ia + 12);
            const __m512i w = points8(k_iq2xxs_grid.data(), ia[0], ia[1], ia[2], ia[3], ia[8], ia[9], ia[10], ia[11]);
            const __mmask64 neg = parity_sign_mask(sg_a, sg_b);
            const __m512i scale = pair_scales(scales, p, 3, 4);
            for (int r = 0; r < R; ++r) {
                const __m512i q8 = load512(yr[r][i].qs + 64 * p);
                const __m512i q8s = _mm512_mask_sub_epi8(q8, neg, _mm512_setzero_si512(), q8);
                acc[r] = _mm512_dpwssd_epi32(acc[r], _mm512_maddubs_epi16(w, q8s), scale);
            }
        }
        const float d = f16(x[i].d);
        for (int r = 0; r < R; ++r) sum[r] += d * yr[r][i].d * float(_mm512_reduce_add_epi32(acc[r]));
    }
    for (int r = 0; r < R; ++r) out[r] = 0.125f * sum[r];
}

// ---- IQ1_S: per sub-block 4 index bytes in qs and 3 high bits each, ls and the delta sign in qh ----

// A sub-block's four 11-bit grid indices as 16-bit fields: the low bytes from its qs word, bits
// 3l..3l+2 of its qh word on top of index l.
MOERUN_BMI2 inline uint64_t iq1s_indices(uint32_t qs, uint32_t qh) {
    return _pdep_u64(qs, 0x00ff00ff00ff00ffull) | _pdep_u64(qh, 0x0700070007000700ull);
}

template <int R>
MOERUN_BMI2 inline void iq1_s_rows(int64_t nb, const block_iq1_s* x, const uint8_t* y, size_t y_stride, float* out) {
    float sum[R];
    const block_q8_K* yr[R];
    for (int r = 0; r < R; ++r) {
        sum[r] = 0;
        yr[r] = reinterpret_cast<const block_q8_K*>(y + size_t(r) * y_stride);
    }
    for (int64_t i = 0; i < nb; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(x + i) + k_prefetch_bytes, _MM_HINT_T0);
        const block_iq1_s& b = x[i];
        // Per sub-block: ls = 2 * scale field + 1, and ls with the delta's sign, each for both
        // 16-quant halves (the bsums pair of the sub-block).
        const __m128i qh = load128(b.qh);
        const __m128i ls = _mm_add_epi16(_mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(qh, 12), _mm_set1_epi16(7)), 1), _mm_set1_epi16(1));
        const __m128i neg = _mm_srai_epi16(qh, 15);
        const __m128i lsd = _mm_sub_epi16(_mm_xor_si128(ls, neg), neg);
        const __m256i ls_pairs = _mm256_set_m128i(_mm_unpackhi_epi16(ls, ls), _mm_unpacklo_epi16(ls, ls));
        const __m256i lsd_pairs = _mm256_set_m128i(_mm_unpackhi_epi16(lsd, lsd), _mm_unpacklo_epi16(lsd, lsd));
        const __m512i scales = _mm512_castsi128_si512(ls);  // ls of sub-block ib in int16 lane ib
        __m512i acc[R];
        for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
        for (int p = 0; p < 4; ++p) {
            const uint64_t ia = iq1s_indices(load_u32(b.qs + 8 * p), b.qh[2 * p]);
            const uint64_t ib = iq1s_indices(load_u32(b.qs + 8 * p + 4), b.qh[2 * p + 1]);
            const __m512i w = points8(k_iq1s_grid_plus1.data(), ia & 0xffff, (ia >> 16) & 0xffff, (ia >> 32) & 0xffff, ia >> 48,
                                      ib & 0xffff, (ib >> 16) & 0xffff, (ib >> 32) & 0xffff, ib >> 48);
            const __m512i scale = pair_scales(scales, p, 0, 1);
            for (int r = 0; r < R; ++r) {
                acc[r] = _mm512_dpwssd_epi32(acc[r], _mm512_maddubs_epi16(w, load512(yr[r][i].qs + 64 * p)), scale);
            }
        }
        const float d = f16(b.d);
        for (int r = 0; r < R; ++r) {
            const __m256i bsums = load256(yr[r][i].bsums);
            const __m256i plus1 = _mm256_madd_epi16(bsums, ls_pairs);  // sum over ib of ls * sum(q)
            const int isum = _mm512_reduce_add_epi32(_mm512_sub_epi32(acc[r], _mm512_zextsi256_si512(plus1)));
            const int dsum = avx2::hsum_i32(_mm256_madd_epi16(bsums, lsd_pairs));
            sum[r] += d * yr[r][i].d * (float(isum) + k_iq1_delta * float(dsum));
        }
    }
    for (int r = 0; r < R; ++r) out[r] = sum[r];
}

}  // namespace

void vec_dot_iq2_xxs_vnni(int64_t n, float* s, const void* x, const void* y) {
    iq2_xxs_rows<1>(n / 256, static_cast<const block_iq2_xxs*>(x), static_cast<const uint8_t*>(y), 0, s);
}
void vec_dot_n_iq2_xxs_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    avx2::dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        iq2_xxs_rows<decltype(rows)::value>(n / 256, static_cast<const block_iq2_xxs*>(x), yj, ys, out);
    });
}
void vec_dot_iq1_s_vnni(int64_t n, float* s, const void* x, const void* y) {
    iq1_s_rows<1>(n / 256, static_cast<const block_iq1_s*>(x), static_cast<const uint8_t*>(y), 0, s);
}
void vec_dot_n_iq1_s_vnni(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    avx2::dot_n_rows<4>(ny, s, ss, y, ys, [&](auto rows, const uint8_t* yj, float* out) {
        iq1_s_rows<decltype(rows)::value>(n / 256, static_cast<const block_iq1_s*>(x), yj, ys, out);
    });
}

}  // namespace moerun::avx512
