// Reference kernels for the lattice formats IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S and
// IQ1_M: super-blocks of 256 whose groups of 8 (or 4) weights are points of a fixed grid
// (iq_grids.h), dot with Q8_K.
//
// to_float computes each value as llama.cpp's dequantize_row_* does (the same float operations in
// the same order), so it reproduces llama.cpp's floats bit for bit; vec_dot sums exact integers per
// super-block and scales them as ggml's generic dots do.
#include "blocks.h"
#include "iq_grids.h"
#include "reference.h"

namespace moerun::ref {
namespace {

// Element j of a packed grid point (byte j).
inline int grid_u8(uint64_t point, int j) { return int((point >> (8 * j)) & 0xff); }
inline int grid_i8(uint64_t point, int j) { return int(int8_t((point >> (8 * j)) & 0xff)); }
inline bool sign_bit(uint8_t signs, int j) { return (signs >> j) & 1; }

// IQ2 dot of 8 weights: grid point with signs against 8 activations.
inline int dot_grid8(uint64_t point, uint8_t signs, const int8_t* q8) {
    int s = 0;
    for (int j = 0; j < 8; ++j) s += grid_u8(point, j) * q8[j] * (sign_bit(signs, j) ? -1 : 1);
    return s;
}

// IQ3 dot of 8 weights: two grid points of 4 with the 8 signs.
inline int dot_grid4x2(uint32_t p1, uint32_t p2, uint8_t signs, const int8_t* q8) {
    int s = 0;
    for (int j = 0; j < 4; ++j) {
        s += grid_u8(p1, j) * q8[j] * (sign_bit(signs, j) ? -1 : 1);
        s += grid_u8(p2, j) * q8[j + 4] * (sign_bit(signs, j + 4) ? -1 : 1);
    }
    return s;
}

inline void put_grid8(float* y, float db, uint64_t point, uint8_t signs) {
    for (int j = 0; j < 8; ++j) y[j] = db * float(grid_u8(point, j)) * (sign_bit(signs, j) ? -1.f : 1.f);
}

inline void put_grid4x2(float* y, float db, uint32_t p1, uint32_t p2, uint8_t signs) {
    for (int j = 0; j < 4; ++j) {
        y[j] = db * float(grid_u8(p1, j)) * (sign_bit(signs, j) ? -1.f : 1.f);
        y[j + 4] = db * float(grid_u8(p2, j)) * (sign_bit(signs, j + 4) ? -1.f : 1.f);
    }
}

// IQ2_S index of group l (0..3) of sub-block ib: 8 bits from qs, 2 from qh.
inline int iq2s_index(const block_iq2_s& b, int ib, int l) { return b.qs[4 * ib + l] | ((b.qh[ib] << (8 - 2 * l)) & 0x300); }

// IQ3_S index k (0..7) of sub-block ib: 8 bits from qs, bit 8 from qh[ib] bit k.
inline int iq3s_index(const block_iq3_s& b, int ib, int k) { return b.qs[8 * ib + k] | (((b.qh[ib] >> k) & 1) << 8); }
inline int iq3s_scale(const block_iq3_s& b, int ib) { return 2 * ((b.scales[ib / 2] >> (4 * (ib % 2))) & 0xf) + 1; }

// IQ1_S index of group l of sub-block ib.
inline int iq1s_index(const block_iq1_s& b, int ib, int l) { return b.qs[4 * ib + l] | (((b.qh[ib] >> (3 * l)) & 7) << 8); }

// IQ1_M: its four scale words, d (the top nibbles), and index / delta sign of group l of sub-block ib.
inline void iq1m_words(const block_iq1_m& b, uint16_t sc[4]) { std::memcpy(sc, b.scales, 8); }
inline uint16_t iq1m_d(const uint16_t sc[4]) {
    return uint16_t((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
}
inline int iq1m_index(const block_iq1_m& b, int ib, int l) {
    return b.qs[4 * ib + l] | ((uint16_t(b.qh[2 * ib + l / 2]) << (8 - 4 * (l % 2))) & 0x700);
}
inline bool iq1m_negative_delta(const block_iq1_m& b, int ib, int l) { return b.qh[2 * ib + l / 2] & (l % 2 ? 0x80 : 0x08); }
// ls*2+1 of the first (h 0) or second (h 1) 16 weights of sub-block ib.
inline int iq1m_scale(const uint16_t sc[4], int ib, int h) { return 2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3 * h)) & 7) + 1; }

}  // namespace

// ---- IQ2_XXS ----

void to_float_iq2_xxs(const void* src, float* dst, int64_t n) {
    const block_iq2_xxs* x = static_cast<const block_iq2_xxs*>(src);
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            uint32_t aux[2];
            std::memcpy(aux, x[i].qs + 4 * ib, 8);
            const uint8_t* idx = reinterpret_cast<const uint8_t*>(aux);
            const float db = d * (0.5f + float(aux[1] >> 28)) * 0.25f;
            for (int l = 0; l < 4; ++l, dst += 8) put_grid8(dst, db, k_iq2xxs_grid[idx[l]], k_iq_signs[(aux[1] >> (7 * l)) & 127]);
        }
    }
}

void vec_dot_iq2_xxs(int64_t n, float* s, const void* vx, const void* vy) {
    const block_iq2_xxs* x = static_cast<const block_iq2_xxs*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const int8_t* q8 = y[i].qs;
        int bsum = 0;
        for (int ib = 0; ib < 8; ++ib) {
            uint32_t aux[2];
            std::memcpy(aux, x[i].qs + 4 * ib, 8);
            const uint8_t* idx = reinterpret_cast<const uint8_t*>(aux);
            int sumi = 0;
            for (int l = 0; l < 4; ++l, q8 += 8) sumi += dot_grid8(k_iq2xxs_grid[idx[l]], k_iq_signs[(aux[1] >> (7 * l)) & 127], q8);
            bsum += sumi * int(2 * (aux[1] >> 28) + 1);
        }
        sum += fp16_to_fp32(x[i].d) * y[i].d * float(bsum);
    }
    *s = 0.125f * sum;
}

// ---- IQ2_XS ----

void to_float_iq2_xs(const void* src, float* dst, int64_t n) {
    const block_iq2_xs* x = static_cast<const block_iq2_xs*>(src);
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            const float db[2] = {d * (0.5f + float(x[i].scales[ib] & 0xf)) * 0.25f, d * (0.5f + float(x[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; ++l, dst += 8) {
                const uint16_t q = x[i].qs[4 * ib + l];
                put_grid8(dst, db[l / 2], k_iq2xs_grid[q & 511], k_iq_signs[q >> 9]);
            }
        }
    }
}

void vec_dot_iq2_xs(int64_t n, float* s, const void* vx, const void* vy) {
    const block_iq2_xs* x = static_cast<const block_iq2_xs*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const int8_t* q8 = y[i].qs;
        int bsum = 0;
        for (int ib = 0; ib < 8; ++ib) {
            for (int h = 0; h < 2; ++h) {  // two halves of 16 with their own scale
                int sumi = 0;
                for (int l = 2 * h; l < 2 * h + 2; ++l, q8 += 8) {
                    const uint16_t q = x[i].qs[4 * ib + l];
                    sumi += dot_grid8(k_iq2xs_grid[q & 511], k_iq_signs[q >> 9], q8);
                }
                bsum += sumi * (2 * ((x[i].scales[ib] >> (4 * h)) & 0xf) + 1);
            }
        }
        sum += fp16_to_fp32(x[i].d) * y[i].d * float(bsum);
    }
    *s = 0.125f * sum;
}

// ---- IQ2_S ----

void to_float_iq2_s(const void* src, float* dst, int64_t n) {
    const block_iq2_s* x = static_cast<const block_iq2_s*>(src);
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        const uint8_t* signs = x[i].qs + 32;
        for (int ib = 0; ib < 8; ++ib) {
            const float db[2] = {d * (0.5f + float(x[i].scales[ib] & 0xf)) * 0.25f, d * (0.5f + float(x[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; ++l, dst += 8) put_grid8(dst, db[l / 2], k_iq2s_grid[size_t(iq2s_index(x[i], ib, l))], signs[4 * ib + l]);
        }
    }
}

void vec_dot_iq2_s(int64_t n, float* s, const void* vx, const void* vy) {
    const block_iq2_s* x = static_cast<const block_iq2_s*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const int8_t* q8 = y[i].qs;
        const uint8_t* signs = x[i].qs + 32;
        int bsum = 0;
        for (int ib = 0; ib < 8; ++ib) {
            for (int h = 0; h < 2; ++h) {
                int sumi = 0;
                for (int l = 2 * h; l < 2 * h + 2; ++l, q8 += 8) {
                    sumi += dot_grid8(k_iq2s_grid[size_t(iq2s_index(x[i], ib, l))], signs[4 * ib + l], q8);
                }
                bsum += sumi * (2 * ((x[i].scales[ib] >> (4 * h)) & 0xf) + 1);
            }
        }
        sum += fp16_to_fp32(x[i].d) * y[i].d * float(bsum);
    }
    *s = 0.125f * sum;
}

// ---- IQ3_XXS ----

void to_float_iq3_xxs(const void* src, float* dst, int64_t n) {
    const block_iq3_xxs* x = static_cast<const block_iq3_xxs*>(src);
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            uint32_t aux;
            std::memcpy(&aux, x[i].qs + 64 + 4 * ib, 4);
            const float db = d * (0.5f + float(aux >> 28)) * 0.5f;
            const uint8_t* q3 = x[i].qs + 8 * ib;
            for (int l = 0; l < 4; ++l, dst += 8) {
                put_grid4x2(dst, db, k_iq3xxs_grid[q3[2 * l]], k_iq3xxs_grid[q3[2 * l + 1]], k_iq_signs[(aux >> (7 * l)) & 127]);
            }
        }
    }
}

void vec_dot_iq3_xxs(int64_t n, float* s, const void* vx, const void* vy) {
    const block_iq3_xxs* x = static_cast<const block_iq3_xxs*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const int8_t* q8 = y[i].qs;
        int bsum = 0;
        for (int ib = 0; ib < 8; ++ib) {
            uint32_t aux;
            std::memcpy(&aux, x[i].qs + 64 + 4 * ib, 4);
            const uint8_t* q3 = x[i].qs + 8 * ib;
            int sumi = 0;
            for (int l = 0; l < 4; ++l, q8 += 8) {
                sumi += dot_grid4x2(k_iq3xxs_grid[q3[2 * l]], k_iq3xxs_grid[q3[2 * l + 1]], k_iq_signs[(aux >> (7 * l)) & 127], q8);
            }
            bsum += sumi * int(2 * (aux >> 28) + 1);
        }
        sum += fp16_to_fp32(x[i].d) * y[i].d * float(bsum);
    }
    *s = 0.25f * sum;
}

// ---- IQ3_S ----

void to_float_iq3_s(const void* src, float* dst, int64_t n) {
    const block_iq3_s* x = static_cast<const block_iq3_s*>(src);
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            const float db = d * float(iq3s_scale(x[i], ib));
            for (int l = 0; l < 4; ++l, dst += 8) {
                put_grid4x2(dst, db, k_iq3s_grid[size_t(iq3s_index(x[i], ib, 2 * l))], k_iq3s_grid[size_t(iq3s_index(x[i], ib, 2 * l + 1))],
                            x[i].signs[4 * ib + l]);
            }
        }
    }
}

void vec_dot_iq3_s(int64_t n, float* s, const void* vx, const void* vy) {
    const block_iq3_s* x = static_cast<const block_iq3_s*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const int8_t* q8 = y[i].qs;
        int bsum = 0;
        for (int ib = 0; ib < 8; ++ib) {
            int sumi = 0;
            for (int l = 0; l < 4; ++l, q8 += 8) {
                sumi += dot_grid4x2(k_iq3s_grid[size_t(iq3s_index(x[i], ib, 2 * l))], k_iq3s_grid[size_t(iq3s_index(x[i], ib, 2 * l + 1))],
                                    x[i].signs[4 * ib + l], q8);
            }
            bsum += sumi * iq3s_scale(x[i], ib);
        }
        sum += fp16_to_fp32(x[i].d) * y[i].d * float(bsum);
    }
    *s = sum;
}

// ---- IQ1_S ----

void to_float_iq1_s(const void* src, float* dst, int64_t n) {
    const block_iq1_s* x = static_cast<const block_iq1_s*>(src);
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            const uint16_t qh = x[i].qh[ib];
            const float dl = d * float(2 * ((qh >> 12) & 7) + 1);
            const float delta = qh & 0x8000 ? -k_iq1_delta : k_iq1_delta;
            for (int l = 0; l < 4; ++l, dst += 8) {
                const uint64_t point = k_iq1s_grid[size_t(iq1s_index(x[i], ib, l))];
                for (int j = 0; j < 8; ++j) dst[j] = dl * (float(grid_i8(point, j)) + delta);
            }
        }
    }
}

// The grid part as an integer dot, the delta part through Q8_K's sums of 16: sum(q8) * +-1/8.
void vec_dot_iq1_s(int64_t n, float* s, const void* vx, const void* vy) {
    const block_iq1_s* x = static_cast<const block_iq1_s*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        const int8_t* q8 = y[i].qs;
        int sumi = 0, sumi_delta = 0;
        for (int ib = 0; ib < 8; ++ib) {
            const uint16_t qh = x[i].qh[ib];
            const int ls = 2 * ((qh >> 12) & 7) + 1;
            int lsum = 0;
            for (int l = 0; l < 4; ++l, q8 += 8) {
                const uint64_t point = k_iq1s_grid[size_t(iq1s_index(x[i], ib, l))];
                for (int j = 0; j < 8; ++j) lsum += q8[j] * grid_i8(point, j);
            }
            sumi += ls * lsum;
            sumi_delta += ls * (qh & 0x8000 ? -1 : 1) * (y[i].bsums[2 * ib] + y[i].bsums[2 * ib + 1]);
        }
        sum += fp16_to_fp32(x[i].d) * y[i].d * (float(sumi) + k_iq1_delta * float(sumi_delta));
    }
    *s = sum;
}

// ---- IQ1_M ----

void to_float_iq1_m(const void* src, float* dst, int64_t n) {
    const block_iq1_m* x = static_cast<const block_iq1_m*>(src);
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        uint16_t sc[4];
        iq1m_words(x[i], sc);
        const float d = fp16_to_fp32(iq1m_d(sc));
        for (int ib = 0; ib < 8; ++ib) {
            for (int l = 0; l < 4; ++l, dst += 8) {
                const float dl = d * float(iq1m_scale(sc, ib, l / 2));
                const float delta = iq1m_negative_delta(x[i], ib, l) ? -k_iq1_delta : k_iq1_delta;
                const uint64_t point = k_iq1s_grid[size_t(iq1m_index(x[i], ib, l))];
                for (int j = 0; j < 8; ++j) dst[j] = dl * (float(grid_i8(point, j)) + delta);
            }
        }
    }
}

void vec_dot_iq1_m(int64_t n, float* s, const void* vx, const void* vy) {
    const block_iq1_m* x = static_cast<const block_iq1_m*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        uint16_t sc[4];
        iq1m_words(x[i], sc);
        const int8_t* q8 = y[i].qs;
        int sumi = 0, sumi_delta = 0;
        for (int ib = 0; ib < 8; ++ib) {
            for (int h = 0; h < 2; ++h) {  // two halves of 16 with their own scale
                int lsum = 0, dsum = 0;
                for (int l = 2 * h; l < 2 * h + 2; ++l, q8 += 8) {
                    const uint64_t point = k_iq1s_grid[size_t(iq1m_index(x[i], ib, l))];
                    int q8sum = 0;
                    for (int j = 0; j < 8; ++j) {
                        lsum += q8[j] * grid_i8(point, j);
                        q8sum += q8[j];
                    }
                    dsum += iq1m_negative_delta(x[i], ib, l) ? -q8sum : q8sum;
                }
                const int ls = iq1m_scale(sc, ib, h);
                sumi += lsum * ls;
                sumi_delta += dsum * ls;
            }
        }
        sum += fp16_to_fp32(iq1m_d(sc)) * y[i].d * (float(sumi) + k_iq1_delta * float(sumi_delta));
    }
    *s = sum;
}

}  // namespace moerun::ref
