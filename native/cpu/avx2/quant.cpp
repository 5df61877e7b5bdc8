// AVX2 kernels for the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL against Q8_0/Q8_1)
// and the activation quantizers Q8_0, Q8_1, Q8_K.
//
// Each block's 32 weights are expanded to int8 in one register and multiplied with the 32 int8
// activations (maddubs + madd), giving exact int32 partial sums that are scaled by d_x * d_y in
// float. The quantizers reproduce the reference bit for bit (same scale arithmetic, same rounding).
#include <algorithm>
#include <type_traits>

#include "../../quant/blocks.h"
#include "../../quant/types.h"
#include "kernels.h"
#include "simd.h"

namespace moerun::avx2 {

namespace {

// Activation block b's scale: Q8_0 rows carry it as a float after the blocks (q8_0_act_scales),
// Q8_1 rows only as the block's half.
template <typename Y>
struct act_scales {
    const Y* row = nullptr;
    const float* d = nullptr;
    act_scales() = default;
    act_scales(const Y* r, int64_t nb) : row(r) {
        if constexpr (std::is_same_v<Y, block_q8_0>) d = q8_0_act_scales(r, nb);
    }
    float operator[](int64_t b) const {
        if constexpr (std::is_same_v<Y, block_q8_0>) return d[b];
        else return f16(row[b].d);
    }
};

// The common loop: sum over blocks of d_x * d_y * dot(expand(x), y).
// `expand` gives the block's 32 quants as signed int8 (or unsigned when `unsigned_x`).
template <typename B, typename Y, bool unsigned_x, typename Expand>
inline __m256 dot_blocks(int64_t nb, const B* x, const Y* y, Expand expand) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const act_scales<Y> yd(y, nb);
    int64_t i = 0;
    auto one = [&](int64_t b, __m256& acc) {
        const __m256i qx = expand(x[b]);
        const __m256i qy = load256(y[b].qs);
        const __m256i p = unsigned_x ? mul_u8_i8(qx, qy) : mul_i8_i8(qx, qy);
        const __m256 d = _mm256_set1_ps(f16(x[b].d) * yd[b]);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum_i16(p)), acc);
    };
    for (; i + 2 <= nb; i += 2) {
        one(i, acc0);
        one(i + 1, acc1);
    }
    if (i < nb) one(i, acc0);
    return _mm256_add_ps(acc0, acc1);
}

// dot_blocks for R activation rows at once (vec_dot_n): each block is expanded once, then
// multiplied with every row; each row keeps dot_blocks' two alternating accumulators, so
// out[r] is bit for bit what dot_blocks gives for row r.
template <int R, typename B, typename Y, bool unsigned_x, typename Expand>
inline void dot_blocks_rows(int64_t nb, const B* x, const uint8_t* y, size_t y_stride, __m256* out, Expand expand) {
    __m256 acc0[R], acc1[R];
    const Y* yr[R];
    act_scales<Y> yd[R];
    for (int r = 0; r < R; ++r) {
        acc0[r] = acc1[r] = _mm256_setzero_ps();
        yr[r] = reinterpret_cast<const Y*>(y + size_t(r) * y_stride);
        yd[r] = act_scales<Y>(yr[r], nb);
    }
    auto one = [&](int64_t b, __m256* acc) {
        const __m256i qx = expand(x[b]);
        const __m256i ux = unsigned_x ? qx : _mm256_sign_epi8(qx, qx);  // |x| (see mul_i8_i8)
        const float dx = f16(x[b].d);
        for (int r = 0; r < R; ++r) {
            const __m256i qy = load256(yr[r][b].qs);
            const __m256i p = _mm256_maddubs_epi16(ux, unsigned_x ? qy : _mm256_sign_epi8(qy, qx));
            const __m256 d = _mm256_set1_ps(dx * yd[r][b]);
            acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum_i16(p)), acc[r]);
        }
    };
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        one(i, acc0);
        one(i + 1, acc1);
    }
    if (i < nb) one(i, acc0);
    for (int r = 0; r < R; ++r) out[r] = _mm256_add_ps(acc0[r], acc1[r]);
}

// vec_dot_n of a format without a min term: s[j] = hsum(dot_blocks(x, y_j)).
template <typename B, typename Y, bool unsigned_x, typename Expand>
inline void dot_n_blocks(int64_t n, float* s, int64_t s_stride, const void* vx, const void* vy, size_t y_stride, int64_t ny,
                         Expand expand) {
    const B* x = static_cast<const B*>(vx);
    const uint8_t* y = static_cast<const uint8_t*>(vy);
    for_row_groups<4>(ny, [&](auto rows, int64_t j) {
        constexpr int R = decltype(rows)::value;
        __m256 acc[R];
        dot_blocks_rows<R, B, Y, unsigned_x>(n / 32, x, y + size_t(j) * y_stride, y_stride, acc, expand);
        for (int r = 0; r < R; ++r) s[(j + r) * s_stride] = hsum(acc[r]);
    });
}

// The same for Q4_1 / Q5_1, whose min term goes through the Q8_1 block sums: s[j] = hsum + mins_j.
template <typename B, typename Expand>
inline void dot_n_blocks_min(int64_t n, float* s, int64_t s_stride, const void* vx, const void* vy, size_t y_stride, int64_t ny,
                             Expand expand) {
    const B* x = static_cast<const B*>(vx);
    const uint8_t* y = static_cast<const uint8_t*>(vy);
    for_row_groups<4>(ny, [&](auto rows, int64_t j) {
        constexpr int R = decltype(rows)::value;
        __m256 acc[R];
        dot_blocks_rows<R, B, block_q8_1, true>(n / 32, x, y + size_t(j) * y_stride, y_stride, acc, expand);
        for (int r = 0; r < R; ++r) {
            const block_q8_1* yr = reinterpret_cast<const block_q8_1*>(y + size_t(j + r) * y_stride);
            float mins = 0;
            for (int64_t i = 0; i < n / 32; ++i) mins += f16(x[i].m) * f16(yr[i].s);
            s[(j + r) * s_stride] = hsum(acc[r]) + mins;
        }
    });
}

inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Bit 4 of each of the 32 quants of a Q5 block, as 0x10 or 0 per byte.
inline __m256i q5_high(const uint8_t* qh) { return _mm256_and_si256(bits_to_bytes(load_u32(qh)), _mm256_set1_epi8(0x10)); }

// Sum of the 32 int8 quants of a register.
inline int sum_i8(__m256i q) { return hsum_i32(sum_i16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q))); }

// Q8_0 / Q8_1 block: d = amax / 127, q = roundf(x / d) (ties away from zero, as the reference).
inline __m256i quantize_q8_block(const float* x, float* d_out) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        amax = _mm256_max_ps(amax, abs_ps(v[k]));
    }
    const float d = hmax(amax) / 127;
    const float id = d ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = round_away(_mm256_mul_ps(v[k], vid));
    *d_out = d;
    return pack_i32_to_i8(q[0], q[1], q[2], q[3]);
}

}  // namespace

// ---- dequantizer ----

// As the reference, value by value: float(q) times the block's d (attention over a Q8_0 cache
// dequantizes its values with it, cpu/backend.cpp).
void to_float_q8_0(const void* src, float* dst, int64_t n) {
    const block_q8_0* x = static_cast<const block_q8_0*>(src);
    for (int64_t i = 0; i < n / 32; ++i, dst += 32) {
        const __m256 d = _mm256_set1_ps(f16(x[i].d));
        for (int k = 0; k < 4; ++k) {
            const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[i].qs + 8 * k)));
            _mm256_storeu_ps(dst + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

// ---- activation quantizers ----

void from_float_q8_0(const float* src, void* dst, int64_t n) {
    block_q8_0* y = static_cast<block_q8_0*>(dst);
    for (int64_t i = 0; i < n / 32; ++i) {
        float d;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), quantize_q8_block(src + 32 * i, &d));
        y[i].d = to_f16(d);
    }
}

void from_float_q8_0_act(const float* src, void* dst, int64_t n) {
    from_float_q8_0(src, dst, n);
    const block_q8_0* y = static_cast<const block_q8_0*>(dst);
    float* d = const_cast<float*>(q8_0_act_scales(dst, n / 32));
    for (int64_t i = 0; i < n / 32; ++i) d[i] = f16(y[i].d);
}

void from_float_q8_1(const float* src, void* dst, int64_t n) {
    block_q8_1* y = static_cast<block_q8_1*>(dst);
    for (int64_t i = 0; i < n / 32; ++i) {
        float d;
        const __m256i q = quantize_q8_block(src + 32 * i, &d);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), q);
        y[i].d = to_f16(d);
        y[i].s = to_f16(float(sum_i8(q)) * d);
    }
}

// Q8_K: the signed value of largest magnitude (first in order on ties) maps to -127;
// q = round-to-nearest-even(x * -127 / max), as the reference's nearest_int.
void from_float_q8_k(const float* src, void* dst, int64_t n) {
    block_q8_K* y = static_cast<block_q8_K*>(dst);
    for (int64_t i = 0; i < n / 256; ++i) {
        const float* x = src + 256 * i;
        __m256 amax_v = _mm256_setzero_ps();
        for (int k = 0; k < 32; ++k) amax_v = _mm256_max_ps(amax_v, abs_ps(_mm256_loadu_ps(x + 8 * k)));
        const float amax = hmax(amax_v);
        if (!amax) {
            std::memset(&y[i], 0, sizeof(block_q8_K));
            continue;
        }
        float max = 0;
        for (int k = 0; k < 32; ++k) {
            const int m = _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + 8 * k)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
            if (m) {
                max = x[8 * k + __builtin_ctz(unsigned(m))];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 vis = _mm256_set1_ps(iscale);
        for (int k = 0; k < 8; ++k) {
            __m256i q[4];
            for (int j = 0; j < 4; ++j) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + 32 * k + 8 * j)));
            const __m256i q8 = pack_i32_to_i8(q[0], q[1], q[2], q[3]);  // saturates at 127, like MIN(127, q)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + 32 * k), q8);
            // Sums of each 16 quants: pairwise int16 sums, then 8 pairs per half.
            const __m256i s32 = sum_i16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q8));  // 8 sums of 4
            const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm_srli_si128(_mm256_castsi256_si128(s32), 8));
            const __m128i t = _mm_add_epi32(_mm256_extracti128_si256(s32, 1), _mm_srli_si128(_mm256_extracti128_si256(s32, 1), 8));
            y[i].bsums[2 * k] = int16_t(_mm_cvtsi128_si32(s) + _mm_extract_epi32(s, 1));
            y[i].bsums[2 * k + 1] = int16_t(_mm_cvtsi128_si32(t) + _mm_extract_epi32(t, 1));
        }
        y[i].d = 1 / iscale;
    }
}

// ---- dots ----

void vec_dot_q4_1(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q4_1* x = static_cast<const block_q4_1*>(vx);
    const block_q8_1* y = static_cast<const block_q8_1*>(vy);
    float mins = 0;
    for (int64_t i = 0; i < n / 32; ++i) mins += f16(x[i].m) * f16(y[i].s);
    *s = hsum(dot_blocks<block_q4_1, block_q8_1, true>(n / 32, x, y, [](const block_q4_1& b) { return unpack_nibbles(b.qs); })) + mins;
}

void vec_dot_q5_0(int64_t n, float* s, const void* vx, const void* vy) {
    const __m256i off = _mm256_set1_epi8(16);
    *s = hsum(dot_blocks<block_q5_0, block_q8_0, false>(n / 32, static_cast<const block_q5_0*>(vx), static_cast<const block_q8_0*>(vy),
        [&](const block_q5_0& b) { return _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(b.qs), q5_high(b.qh)), off); }));
}

void vec_dot_q5_1(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q5_1* x = static_cast<const block_q5_1*>(vx);
    const block_q8_1* y = static_cast<const block_q8_1*>(vy);
    float mins = 0;
    for (int64_t i = 0; i < n / 32; ++i) mins += f16(x[i].m) * f16(y[i].s);
    *s = hsum(dot_blocks<block_q5_1, block_q8_1, true>(n / 32, x, y,
        [](const block_q5_1& b) { return _mm256_or_si256(unpack_nibbles(b.qs), q5_high(b.qh)); })) + mins;
}

void vec_dot_iq4_nl(int64_t n, float* s, const void* vx, const void* vy) {
    const __m256i lut = _mm256_broadcastsi128_si256(load128(k_iq4nl_values));
    *s = hsum(dot_blocks<block_iq4_nl, block_q8_0, false>(n / 32, static_cast<const block_iq4_nl*>(vx), static_cast<const block_q8_0*>(vy),
        [&](const block_iq4_nl& b) { return _mm256_shuffle_epi8(lut, unpack_nibbles(b.qs)); }));
}

// ---- multi-row dots (vec_dot_n): the expansions above, once per block for up to 4 rows ----

void vec_dot_n_q4_1(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    dot_n_blocks_min<block_q4_1>(n, s, ss, x, y, ys, ny, [](const block_q4_1& b) { return unpack_nibbles(b.qs); });
}

void vec_dot_n_q5_0(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    const __m256i off = _mm256_set1_epi8(16);
    dot_n_blocks<block_q5_0, block_q8_0, false>(n, s, ss, x, y, ys, ny,
        [&](const block_q5_0& b) { return _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(b.qs), q5_high(b.qh)), off); });
}

void vec_dot_n_q5_1(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    dot_n_blocks_min<block_q5_1>(n, s, ss, x, y, ys, ny,
        [](const block_q5_1& b) { return _mm256_or_si256(unpack_nibbles(b.qs), q5_high(b.qh)); });
}

void vec_dot_n_iq4_nl(int64_t n, float* s, int64_t ss, const void* x, const void* y, size_t ys, int64_t ny) {
    const __m256i lut = _mm256_broadcastsi128_si256(load128(k_iq4nl_values));
    dot_n_blocks<block_iq4_nl, block_q8_0, false>(n, s, ss, x, y, ys, ny,
        [&](const block_iq4_nl& b) { return _mm256_shuffle_epi8(lut, unpack_nibbles(b.qs)); });
}

}  // namespace moerun::avx2
