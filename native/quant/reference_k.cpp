// Reference kernels for the K-quants (Q2_K .. Q6_K) and their activation type Q8_K.
//
// The quantizers are llama.cpp's reference quantizers (what llama-quantize runs without an
// importance matrix), transcribed expression for expression so that the files we write are
// bit-identical to ggml's: a per-sub-block search for the best scale (and min), then the
// sub-block scales quantized against the super-block scale, then the weights requantized with
// the scales actually stored.
//
// The dot products unpack a super-block's quants to int8, take exact integer sums per
// sub-block weighted by the integer sub-block scales, and scale once per super-block in float.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "blocks.h"
#include "lattice_search.h"
#include "reference.h"
#include "search.h"

namespace moerun::ref {
namespace {

constexpr float k_group_max_eps = 1e-15f;

// ==== scale searches ====

// Symmetric quants L in [0, 2*nmax) for w ≈ scale * (L - nmax), weighted by qw, or by x^2 without
// (ggml's make_qx_quants with rmse_type 1): try 19 scales around nmax/max, keep the best weighted fit.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* qw = nullptr) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < k_group_max_eps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = float(-nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = std::max(-nmax, std::min(nmax - 1, l));
        L[i] = int8_t(l + nmax);
        const float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * float(l);
        suml2 += w * float(l) * float(l);
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(float(nmax) + 0.1f * float(is)) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = std::max(-nmax, std::min(nmax - 1, l));
            const float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * float(l);
            suml2 += w * float(l) * float(l);
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                const int l = nearest_int(iscale * x[i]);
                L[i] = int8_t(nmax + std::max(-nmax, std::min(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Symmetric 3-bit quants (ggml's make_q3_quants with do_rmse): start from nmax/max, then move
// single quants to their best level while the weighted fit improves (at most 5 passes).
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < k_group_max_eps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    const float iscale = float(-nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = std::max(-nmax, std::min(nmax - 1, l));
        L[i] = int8_t(l);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * float(l);
        suml2 += w * float(l) * float(l);
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * float(L[i]);
            if (slx > 0) {
                float sl2 = suml2 - w * float(L[i]) * float(L[i]);
                int new_l = nearest_int(x[i] * sl2 / slx);
                new_l = std::max(-nmax, std::min(nmax - 1, new_l));
                if (new_l != L[i]) {
                    slx += w * x[i] * float(new_l);
                    sl2 += w * float(new_l) * float(new_l);
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = int8_t(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Affine quants L in [0, nmax] for w ≈ scale * L - the_min (ggml's make_qkx2_quants): for each
// of nstep+1 trial scales, quantize, then solve the weighted least-squares (scale, min) for those
// quants in closed form; keep the trial with the smallest weighted error (squared or absolute).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = float(nmax) / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = uint8_t(std::max(0, std::min(nmax, l)));
        float diff = scale * float(L[i]) + min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = std::max(0, std::min(nmax, l));
            Laux[i] = uint8_t(l);
            const float w = weights[i];
            sum_l += w * float(l);
            sum_l2 += w * float(l) * float(l);
            sum_xl += w * float(l) * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * float(Laux[i]) + this_min - x[i];
                diff = use_mad ? std::fabs(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// ==== quant unpacking (shared by to_float and vec_dot) ====
// Each writes the 256 quants of a super-block in element order.

// 2-bit fields of Q2_K/Q3_K: per 128 elements 32 bytes; element 32*k + l at bits 2k of byte l.
void unpack_2bit(const uint8_t* qs, int8_t* q) {
    for (int half = 0; half < 2; ++half, qs += 32, q += 128) {
        for (int k = 0; k < 4; ++k) {
            for (int l = 0; l < 32; ++l) q[32 * k + l] = int8_t((qs[l] >> (2 * k)) & 3);
        }
    }
}

// Q3_K: 2 low bits, and bit 2 in hmask; the stored value is q - 4 with q in 0..7.
void unpack_q3_k(const block_q3_K& b, int8_t* q) {
    unpack_2bit(b.qs, q);
    for (int j = 0; j < 256; ++j) q[j] = int8_t(q[j] - ((b.hmask[j % 32] >> (j / 32)) & 1 ? 0 : 4));
}

// Q4_K/Q5_K nibbles: per 64 elements 32 bytes, first 32 in the low nibbles. `qh` (Q5_K) adds
// bit 4 of element j at bit j/32 of qh[j%32].
void unpack_q45_k(const uint8_t* qs, const uint8_t* qh, int8_t* q) {
    for (int j = 0; j < 256; ++j) {
        const uint8_t byte = qs[32 * (j / 64) + j % 32];
        int v = (j % 64) < 32 ? byte & 0xF : byte >> 4;
        if (qh) v |= ((qh[j % 32] >> (j / 32)) & 1) << 4;
        q[j] = int8_t(v);
    }
}

// Q6_K: q - 32 with q in 0..63 (4 low bits in ql, 2 high bits in qh).
void unpack_q6_k(const block_q6_K& b, int8_t* q) {
    for (int half = 0; half < 2; ++half) {
        const uint8_t* ql = b.ql + 64 * half;
        const uint8_t* qh = b.qh + 32 * half;
        int8_t* o = q + 128 * half;
        for (int l = 0; l < 32; ++l) {
            o[l] = int8_t(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            o[l + 32] = int8_t(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            o[l + 64] = int8_t(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            o[l + 96] = int8_t(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

// Packs 256 2-bit values as unpack_2bit reads them.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
    for (int j = 0; j < 256; j += 128) {
        for (int l = 0; l < 32; ++l) {
            qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }
}

// sum(a[i] * b[i]) over n int8 values.
int dot_i8(const int8_t* a, const int8_t* b, int n) {
    int s = 0;
    for (int i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

// Stores 6-bit scales/mins of 8 sub-blocks into a Q4_K/Q5_K scales[12] (inverse of get_scale_min_k4).
void pack_scale_min_k4(const uint8_t* ls, const uint8_t* lm, uint8_t* scales) {
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            scales[j] = ls[j];
            scales[j + 4] = lm[j];
        } else {
            scales[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            scales[j - 4] |= uint8_t((ls[j] >> 4) << 6);
            scales[j] |= uint8_t((lm[j] >> 4) << 6);
        }
    }
}

// The tail both Q4_K/Q5_K block quantizers share: the 6-bit sub-block scales ls and mins lm
// (clamped to 63 here) packed against fp16 d and dmin, then every weight requantized to 0..nmax
// with the scales as stored.
void store_q45_k_scales(const float* x, int nmax, uint8_t* ls, uint8_t* lm, float d_block, float dmin_block, uint16_t* d_out,
                        uint16_t* dmin_out, uint8_t* scales_out, uint8_t* L) {
    for (int j = 0; j < 8; ++j) {
        ls[j] = std::min<uint8_t>(63, ls[j]);
        lm[j] = std::min<uint8_t>(63, lm[j]);
    }
    std::memset(scales_out, 0, 12);
    pack_scale_min_k4(ls, lm, scales_out);
    *d_out = fp32_to_fp16(d_block);
    *dmin_out = fp32_to_fp16(dmin_block);
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        get_scale_min_k4(j, scales_out, &sc, &m);
        const float d = fp16_to_fp32(*d_out) * float(sc);
        if (!d) continue;
        const float dm = fp16_to_fp32(*dmin_out) * float(m);
        for (int ii = 0; ii < 32; ++ii) {
            const int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = uint8_t(std::max(0, std::min(nmax, l)));
        }
    }
}

// Q4_K/Q5_K: per-sub-block affine search, then 6-bit scales and mins against fp16 d and dmin.
// Fills L (0..nmax) and the block's d, dmin and scales.
void quantize_q45_k_block(const float* x, int nmax, float rmin, int nstep, uint16_t* d_out, uint16_t* dmin_out,
                          uint8_t* scales_out, uint8_t* L) {
    uint8_t Laux[32];
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
        ls[j] = uint8_t(nearest_int(inv_scale * scales[j]));
        lm[j] = uint8_t(nearest_int(inv_min * mins[j]));
    }
    store_q45_k_scales(x, nmax, ls, lm, max_scale / 63.f, max_min / 63.f, d_out, dmin_out, scales_out, L);
}

// Dot of a Q4_K/Q5_K super-block's quants q (0..31) with a Q8_K block:
// sum_j d*sc_j*dot(q, q8)_j - dmin*m_j*sum(q8)_j.
float dot_q45_k_block(const int8_t* q, uint16_t d, uint16_t dmin, const uint8_t* scales, const block_q8_K& y) {
    int isum = 0, msum = 0;
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        get_scale_min_k4(j, scales, &sc, &m);
        isum += sc * dot_i8(q + 32 * j, y.qs + 32 * j, 32);
        msum += m * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
    }
    return fp16_to_fp32(d) * y.d * float(isum) - fp16_to_fp32(dmin) * y.d * float(msum);
}

}  // namespace

// ==== Q2_K ====

void to_float_q2_k(const void* src, float* dst, int64_t n) {
    const block_q2_K* x = static_cast<const block_q2_K*>(src);
    int8_t q[256];
    for (int64_t i = 0; i < n / k_qk_k; ++i, dst += k_qk_k) {
        const float d = fp16_to_fp32(x[i].d), min = fp16_to_fp32(x[i].dmin);
        unpack_2bit(x[i].qs, q);
        for (int j = 0; j < 16; ++j) {
            const uint8_t sc = x[i].scales[j];
            const float dl = d * float(sc & 0xF), ml = min * float(sc >> 4);
            for (int l = 0; l < 16; ++l) dst[16 * j + l] = dl * float(q[16 * j + l]) - ml;
        }
    }
}

void from_float_q2_k(const float* x, void* dst, int64_t n) {
    block_q2_K* y = static_cast<block_q2_K*>(dst);
    uint8_t L[256], Laux[16];
    float weights[16], mins[16], scales[16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < n / k_qk_k; ++i, x += k_qk_k) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; ++j) y[i].scales[j] = uint8_t(nearest_int(iscale * scales[j]));
            y[i].d = fp32_to_fp16(max_scale / q4scale);
        } else {
            for (int j = 0; j < 16; ++j) y[i].scales[j] = 0;
            y[i].d = fp32_to_fp16(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; ++j) y[i].scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = fp32_to_fp16(max_min / q4scale);
        } else {
            y[i].dmin = fp32_to_fp16(0.f);
        }
        for (int j = 0; j < 16; ++j) {
            const float d = fp16_to_fp32(y[i].d) * float(y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = fp16_to_fp32(y[i].dmin) * float(y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii) {
                const int l = nearest_int((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = uint8_t(std::max(0, std::min(3, l)));
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

void vec_dot_q2_k(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q2_K* x = static_cast<const block_q2_K*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    int8_t q[256];
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        unpack_2bit(x[i].qs, q);
        int isum = 0, msum = 0;
        for (int j = 0; j < 16; ++j) {
            isum += (x[i].scales[j] & 0xF) * dot_i8(q + 16 * j, y[i].qs + 16 * j, 16);
            msum += (x[i].scales[j] >> 4) * y[i].bsums[j];
        }
        sum += fp16_to_fp32(x[i].d) * y[i].d * float(isum) - fp16_to_fp32(x[i].dmin) * y[i].d * float(msum);
    }
    *s = sum;
}

// ==== Q3_K ====

void to_float_q3_k(const void* src, float* dst, int64_t n) {
    const block_q3_K* x = static_cast<const block_q3_K*>(src);
    int8_t q[256], sc[16];
    for (int64_t i = 0; i < n / k_qk_k; ++i, dst += k_qk_k) {
        const float d_all = fp16_to_fp32(x[i].d);
        unpack_q3_k(x[i], q);
        q3k_unpack_scales(x[i].scales, sc);
        for (int j = 0; j < 16; ++j) {
            const float dl = d_all * float(sc[j]);
            for (int l = 0; l < 16; ++l) dst[16 * j + l] = dl * float(q[16 * j + l]);
        }
    }
}

namespace {
// The end of a Q3_K super-block once its scales are stored: requantize each sub-block with its
// stored scale (a sub-block whose scale is zero keeps its search's levels, as in ggml), then the
// high bits into hmask and the low two into qs.
void finish_q3_k_block(const float* x, block_q3_K& y, int8_t* L) {
    int8_t sc[16];
    q3k_unpack_scales(y.scales, sc);
    for (int j = 0; j < 16; ++j) {
        const float d = fp16_to_fp32(y.d) * float(sc[j]);
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            const int l = nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = int8_t(std::max(-4, std::min(3, l)) + 4);
        }
    }
    std::memset(y.hmask, 0, 32);
    uint8_t low[256];
    for (int j = 0; j < 256; ++j) {
        if (L[j] > 3) y.hmask[j % 32] |= uint8_t(1 << (j / 32));
        low[j] = uint8_t(L[j] > 3 ? L[j] - 4 : L[j]);
    }
    pack_2bit(low, y.qs);
}
}  // namespace

void from_float_q3_k(const float* x, void* dst, int64_t n) {
    block_q3_K* y = static_cast<block_q3_K*>(dst);
    int8_t L[256];
    float scales[16];
    for (int64_t i = 0; i < n / k_qk_k; ++i, x += k_qk_k) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; ++j) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            const float scale = std::fabs(scales[j]);
            if (scale > amax) { amax = scale; max_scale = scales[j]; }
        }
        std::memset(y[i].scales, 0, 12);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; ++j) {
                int l = nearest_int(iscale * scales[j]);
                l = std::max(-32, std::min(31, l)) + 32;
                if (j < 8) y[i].scales[j] = uint8_t(l & 0xF);
                else y[i].scales[j - 8] |= uint8_t((l & 0xF) << 4);
                y[i].scales[j % 4 + 8] |= uint8_t((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = fp32_to_fp16(1 / iscale);
        } else {
            y[i].d = fp32_to_fp16(0.f);
        }
        finish_q3_k_block(x, y[i], L);
    }
}

void vec_dot_q3_k(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q3_K* x = static_cast<const block_q3_K*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    int8_t q[256], sc[16];
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        unpack_q3_k(x[i], q);
        q3k_unpack_scales(x[i].scales, sc);
        int isum = 0;
        for (int j = 0; j < 16; ++j) isum += sc[j] * dot_i8(q + 16 * j, y[i].qs + 16 * j, 16);
        sum += fp16_to_fp32(x[i].d) * y[i].d * float(isum);
    }
    *s = sum;
}

// ==== Q4_K ====

void to_float_q4_k(const void* src, float* dst, int64_t n) {
    const block_q4_K* x = static_cast<const block_q4_K*>(src);
    int8_t q[256];
    for (int64_t i = 0; i < n / k_qk_k; ++i, dst += k_qk_k) {
        const float d = fp16_to_fp32(x[i].d), min = fp16_to_fp32(x[i].dmin);
        unpack_q45_k(x[i].qs, nullptr, q);
        for (int j = 0; j < 8; ++j) {
            uint8_t sc, m;
            get_scale_min_k4(j, x[i].scales, &sc, &m);
            const float d1 = d * float(sc), m1 = min * float(m);
            for (int l = 0; l < 32; ++l) dst[32 * j + l] = d1 * float(q[32 * j + l]) - m1;
        }
    }
}

namespace {
// 256 4-bit quants (0..15) into a Q4_K block's qs.
void pack_q4_k_quants(const uint8_t* L, block_q4_K& y) {
    uint8_t* q = y.qs;
    for (int j = 0; j < 256; j += 64, q += 32) {
        for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
    }
}
// 256 5-bit quants (0..31) into a Q5_K block's qs (low four bits) and qh (the fifth).
void pack_q5_k_quants(const uint8_t* L, block_q5_K& y) {
    std::memset(y.qh, 0, 32);
    uint8_t* ql = y.qs;
    for (int j = 0; j < 256; j += 64, ql += 32) {
        for (int l = 0; l < 32; ++l) {
            const int l1 = L[j + l], l2 = L[j + l + 32];
            if (l1 > 15) y.qh[l] |= uint8_t(1 << (j / 32));
            if (l2 > 15) y.qh[l] |= uint8_t(2 << (j / 32));
            ql[l] = uint8_t((l1 & 0xF) | ((l2 & 0xF) << 4));
        }
    }
}
}  // namespace

void from_float_q4_k(const float* x, void* dst, int64_t n) {
    block_q4_K* y = static_cast<block_q4_K*>(dst);
    uint8_t L[256];
    for (int64_t i = 0; i < n / k_qk_k; ++i, x += k_qk_k) {
        quantize_q45_k_block(x, 15, -1.f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        pack_q4_k_quants(L, y[i]);
    }
}

void vec_dot_q4_k(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q4_K* x = static_cast<const block_q4_K*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    int8_t q[256];
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        unpack_q45_k(x[i].qs, nullptr, q);
        sum += dot_q45_k_block(q, x[i].d, x[i].dmin, x[i].scales, y[i]);
    }
    *s = sum;
}

// ==== Q5_K ====

void to_float_q5_k(const void* src, float* dst, int64_t n) {
    const block_q5_K* x = static_cast<const block_q5_K*>(src);
    int8_t q[256];
    for (int64_t i = 0; i < n / k_qk_k; ++i, dst += k_qk_k) {
        const float d = fp16_to_fp32(x[i].d), min = fp16_to_fp32(x[i].dmin);
        unpack_q45_k(x[i].qs, x[i].qh, q);
        for (int j = 0; j < 8; ++j) {
            uint8_t sc, m;
            get_scale_min_k4(j, x[i].scales, &sc, &m);
            const float d1 = d * float(sc), m1 = min * float(m);
            for (int l = 0; l < 32; ++l) dst[32 * j + l] = d1 * float(q[32 * j + l]) - m1;
        }
    }
}

void from_float_q5_k(const float* x, void* dst, int64_t n) {
    block_q5_K* y = static_cast<block_q5_K*>(dst);
    uint8_t L[256];
    for (int64_t i = 0; i < n / k_qk_k; ++i, x += k_qk_k) {
        quantize_q45_k_block(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        pack_q5_k_quants(L, y[i]);
    }
}

void vec_dot_q5_k(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q5_K* x = static_cast<const block_q5_K*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    int8_t q[256];
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        unpack_q45_k(x[i].qs, x[i].qh, q);
        sum += dot_q45_k_block(q, x[i].d, x[i].dmin, x[i].scales, y[i]);
    }
    *s = sum;
}

// ==== Q6_K ====

void to_float_q6_k(const void* src, float* dst, int64_t n) {
    const block_q6_K* x = static_cast<const block_q6_K*>(src);
    int8_t q[256];
    for (int64_t i = 0; i < n / k_qk_k; ++i, dst += k_qk_k) {
        const float d = fp16_to_fp32(x[i].d);
        unpack_q6_k(x[i], q);
        for (int j = 0; j < 256; ++j) dst[j] = d * float(x[i].scales[j / 16]) * float(q[j]);
    }
}

namespace {
// The end of a Q6_K super-block from its 16 sub-block scales (max_scale: the one of largest
// magnitude): 8-bit scales against d, the weights requantized with them, packed into ql / qh.
void finish_q6_k_block(const float* x, const float* scales, float max_scale, float max_abs_scale, block_q6_K& y, int8_t* L) {
    if (max_abs_scale < k_group_max_eps) {
        std::memset(&y, 0, sizeof(block_q6_K));
        return;
    }
    const float iscale = -128.f / max_scale;
    y.d = fp32_to_fp16(1 / iscale);
    for (int ib = 0; ib < 16; ++ib) y.scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
    for (int j = 0; j < 16; ++j) {
        const float d = fp16_to_fp32(y.d) * float(y.scales[j]);
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            const int l = nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = int8_t(std::max(-32, std::min(31, l)) + 32);
        }
    }
    for (int half = 0; half < 2; ++half) {
        const int8_t* Lh = L + 128 * half;
        uint8_t* ql = y.ql + 64 * half;
        uint8_t* qh = y.qh + 32 * half;
        for (int l = 0; l < 32; ++l) {
            ql[l] = uint8_t((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
            ql[l + 32] = uint8_t((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
            qh[l] = uint8_t((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
        }
    }
}
}  // namespace

void from_float_q6_k(const float* x, void* dst, int64_t n) {
    block_q6_K* y = static_cast<block_q6_K*>(dst);
    int8_t L[256];
    float scales[16];
    for (int64_t i = 0; i < n / k_qk_k; ++i, x += k_qk_k) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ++ib) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            const float abs_scale = std::fabs(scales[ib]);
            if (abs_scale > max_abs_scale) { max_abs_scale = abs_scale; max_scale = scales[ib]; }
        }
        finish_q6_k_block(x, scales, max_scale, max_abs_scale, y[i], L);
    }
}

void vec_dot_q6_k(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q6_K* x = static_cast<const block_q6_K*>(vx);
    const block_q8_K* y = static_cast<const block_q8_K*>(vy);
    int8_t q[256];
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk_k; ++i) {
        unpack_q6_k(x[i], q);
        int isum = 0;
        for (int j = 0; j < 16; ++j) isum += x[i].scales[j] * dot_i8(q + 16 * j, y[i].qs + 16 * j, 16);
        sum += fp16_to_fp32(x[i].d) * y[i].d * float(isum);
    }
    *s = sum;
}

// ==== Q8_K ====

void to_float_q8_k(const void* src, float* dst, int64_t n) {
    const block_q8_K* x = static_cast<const block_q8_K*>(src);
    for (int64_t i = 0; i < n / k_qk_k; ++i, dst += k_qk_k) {
        for (int j = 0; j < 256; ++j) dst[j] = x[i].d * float(x[i].qs[j]);
    }
}

// The value of largest magnitude maps to -127 (not -128), so |q| <= 127 and SIMD dots can use
// sign tricks without overflow.
void from_float_q8_k(const float* x, void* dst, int64_t n) {
    block_q8_K* y = static_cast<block_q8_K*>(dst);
    for (int64_t i = 0; i < n / k_qk_k; ++i, x += k_qk_k) {
        float max = 0, amax = 0;
        for (int j = 0; j < 256; ++j) {
            const float ax = std::fabs(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (!amax) {
            std::memset(&y[i], 0, sizeof(block_q8_K));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < 256; ++j) y[i].qs[j] = int8_t(std::min(127, nearest_int(iscale * x[j])));
        for (int j = 0; j < 16; ++j) {
            int sum = 0;
            for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = int16_t(sum);
        }
        y[i].d = 1 / iscale;
    }
}

// ==== quantizers with an importance matrix ====
// llama.cpp's quantize_row_q*_K_impl (what llama-quantize runs with --imatrix), expression for
// expression. Each column's importance qw scales a per-weight error weight qw * sqrt(sigma2 + x^2)
// (Q6_K: qw alone), which drives the sub-block scale search; the sub-block scales are then fitted
// to the super-block scale with the same weights summed per sub-block (make_qp_quants).

namespace {

// mean of x^2 over a 256-element super-block, times `times`
float sigma2_of(const float* x, float times) {
    float sum_x2 = 0;
    for (int j = 0; j < 256; ++j) sum_x2 += x[j] * x[j];
    return times * sum_x2 / 256;
}

// Q4_K / Q5_K (levels 0..nmax): affine search per 32 weights, then 6-bit scales and mins against
// d and dmin by weighted fit; fills L and the block's d, dmin, scales.
void quantize_q45_k_block_imatrix(const float* x, const float* qw, int nmax, uint16_t* d_out, uint16_t* dmin_out,
                                  uint8_t* scales_out, uint8_t* L) {
    uint8_t Laux[32], Ls[8], Lm[8];
    float weights[32], sw[8], mins[8], scales[8];
    const float sigma2 = sigma2_of(x, 2);
    for (int j = 0; j < 8; ++j) {
        for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; ++l) sumw += weights[l];
        sw[j] = sumw;
        // ggml's make_qkx3_quants, which with weights given is make_qkx2_quants
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
    }
    const float d_block = make_qp_quants(8, 63, scales, Ls, sw);
    const float m_block = make_qp_quants(8, 63, mins, Lm, sw);
    store_q45_k_scales(x, nmax, Ls, Lm, d_block, m_block, d_out, dmin_out, scales_out, L);
}

}  // namespace

void from_float_imatrix_q2_k(const float* x, void* dst, int64_t n, const float* qw) {
    block_q2_K* y = static_cast<block_q2_K*>(dst);
    uint8_t L[256], Laux[16], Ls[16], Lm[16];
    float mins[16], scales[16], sw[16], weight[16];
    for (int64_t i = 0; i < n / k_qk_k; ++i, x += k_qk_k, qw += k_qk_k) {
        const float sigma2 = sigma2_of(x, 1);
        for (int j = 0; j < 16; ++j) {
            for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            sw[j] = 0;
            for (int l = 0; l < 16; ++l) sw[j] += weight[l];
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
        }
        y[i].d = fp32_to_fp16(make_qp_quants(16, 15, scales, Ls, sw));
        y[i].dmin = fp32_to_fp16(make_qp_quants(16, 15, mins, Lm, sw));
        const float dm = fp16_to_fp32(y[i].d), mm = fp16_to_fp32(y[i].dmin);
        for (int j = 0; j < 16; ++j) y[i].scales[j] = uint8_t(Ls[j] | (Lm[j] << 4));
        for (int j = 0; j < 16; ++j) {  // requantize with the stored scales
            const float d = dm * float(y[i].scales[j] & 0xF);
            if (!d) continue;
            const float m = mm * float(y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii) {
                const int l = nearest_int((x[16 * j + ii] + m) / d);
                L[16 * j + ii] = uint8_t(std::max(0, std::min(3, l)));
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

void from_float_imatrix_q3_k(const float* x, void* dst, int64_t n, const float* qw) {
    block_q3_K* y = static_cast<block_q3_K*>(dst);
    int8_t L[256], Ls[16];
    float scales[16], weight[16], sw[16];
    for (int64_t i = 0; i < n / k_qk_k; ++i, x += k_qk_k, qw += k_qk_k) {
        const float sigma2 = sigma2_of(x, 2);
        for (int j = 0; j < 16; ++j) {
            for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 16; ++l) sumw += weight[l];
            sw[j] = sumw;
            scales[j] = make_qx_quants(16, 4, x + 16 * j, L + 16 * j, weight);
        }
        std::memset(y[i].scales, 0, 12);
        const float d_block = make_qx_quants(16, 32, scales, Ls, sw);
        for (int j = 0; j < 16; ++j) {  // 6-bit scales (0..63, 32 = zero): low 4 bits, then high 2
            const int l = Ls[j];
            if (j < 8) y[i].scales[j] = uint8_t(l & 0xF);
            else y[i].scales[j - 8] |= uint8_t((l & 0xF) << 4);
            y[i].scales[j % 4 + 8] |= uint8_t((l >> 4) << (2 * (j / 4)));
        }
        y[i].d = fp32_to_fp16(d_block);
        finish_q3_k_block(x, y[i], L);
    }
}

void from_float_imatrix_q4_k(const float* x, void* dst, int64_t n, const float* qw) {
    block_q4_K* y = static_cast<block_q4_K*>(dst);
    uint8_t L[256];
    for (int64_t i = 0; i < n / k_qk_k; ++i, x += k_qk_k, qw += k_qk_k) {
        quantize_q45_k_block_imatrix(x, qw, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        pack_q4_k_quants(L, y[i]);
    }
}

void from_float_imatrix_q5_k(const float* x, void* dst, int64_t n, const float* qw) {
    block_q5_K* y = static_cast<block_q5_K*>(dst);
    uint8_t L[256];
    for (int64_t i = 0; i < n / k_qk_k; ++i, x += k_qk_k, qw += k_qk_k) {
        quantize_q45_k_block_imatrix(x, qw, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
        pack_q5_k_quants(L, y[i]);
    }
}

void from_float_imatrix_q6_k(const float* x, void* dst, int64_t n, const float* qw) {
    block_q6_K* y = static_cast<block_q6_K*>(dst);
    int8_t L[256];
    float scales[16];
    for (int64_t i = 0; i < n / k_qk_k; ++i, x += k_qk_k, qw += k_qk_k) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ++ib) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, qw + 16 * ib);
            const float abs_scale = std::fabs(scales[ib]);
            if (abs_scale > max_abs_scale) { max_abs_scale = abs_scale; max_scale = scales[ib]; }
        }
        finish_q6_k_block(x, scales, max_scale, max_abs_scale, y[i], L);
    }
}

// ==== the 32-element legacy formats with an importance matrix ====
// llama.cpp's quantize_row_q{4,5}_{0,1}_impl: the K-quants' searches (hence here) on each block of
// 32, weighted by qw * sqrt(sigma2 + x^2) with sigma2 the mean of x^2 over the whole row.

namespace {

float row_sigma2(const float* x, int64_t n) {
    float sum_x2 = 0;
    for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
    return sum_x2 / float(n);
}

void legacy_weights(const float* xb, const float* qw, float sigma2, float* weight) {
    for (int j = 0; j < 32; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
}

// 32 levels (0..31) into qs (low nibbles, element j and j + 16) and a 32-bit qh (the fifth bits).
template <typename L_t>
void pack_q5_32(const L_t* L, uint8_t* qs, uint8_t* qh_bytes) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
        const uint8_t xi0 = uint8_t(L[j]), xi1 = uint8_t(L[j + 16]);
        qs[j] = uint8_t((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
        qh |= ((xi0 & 0x10u) >> 4) << j;
        qh |= ((xi1 & 0x10u) >> 4) << (j + 16);
    }
    std::memcpy(qh_bytes, &qh, sizeof(qh));
}

}  // namespace

void from_float_imatrix_q4_0(const float* x, void* dst, int64_t n, const float* qw) {
    block_q4_0* y = static_cast<block_q4_0*>(dst);
    const float sigma2 = row_sigma2(x, n);
    float weight[32];
    int8_t L[32];
    for (int64_t ib = 0; ib < n / 32; ++ib) {
        legacy_weights(x + 32 * ib, qw + 32 * ib, sigma2, weight);
        y[ib].d = fp32_to_fp16(make_qx_quants(32, 8, x + 32 * ib, L, weight));
        for (int j = 0; j < 16; ++j) y[ib].qs[j] = uint8_t(L[j] | (L[j + 16] << 4));
    }
}

void from_float_imatrix_q4_1(const float* x, void* dst, int64_t n, const float* qw) {
    block_q4_1* y = static_cast<block_q4_1*>(dst);
    const float sigma2 = row_sigma2(x, n);
    float weight[32], min;
    uint8_t L[32], Laux[32];
    for (int64_t ib = 0; ib < n / 32; ++ib) {
        legacy_weights(x + 32 * ib, qw + 32 * ib, sigma2, weight);
        y[ib].d = fp32_to_fp16(make_qkx2_quants(32, 15, x + 32 * ib, weight, L, &min, Laux, -0.9f, 0.05f, 36, false));
        y[ib].m = fp32_to_fp16(-min);
        for (int j = 0; j < 16; ++j) y[ib].qs[j] = uint8_t(L[j] | (L[j + 16] << 4));
    }
}

void from_float_imatrix_q5_0(const float* x, void* dst, int64_t n, const float* qw) {
    block_q5_0* y = static_cast<block_q5_0*>(dst);
    const float sigma2 = row_sigma2(x, n);
    float weight[32];
    int8_t L[32];
    for (int64_t ib = 0; ib < n / 32; ++ib) {
        legacy_weights(x + 32 * ib, qw + 32 * ib, sigma2, weight);
        y[ib].d = fp32_to_fp16(make_qx_quants(32, 16, x + 32 * ib, L, weight));
        pack_q5_32(L, y[ib].qs, y[ib].qh);
    }
}

void from_float_imatrix_q5_1(const float* x, void* dst, int64_t n, const float* qw) {
    block_q5_1* y = static_cast<block_q5_1*>(dst);
    const float sigma2 = row_sigma2(x, n);
    float weight[32], min;
    uint8_t L[32], Laux[32];
    for (int64_t ib = 0; ib < n / 32; ++ib) {
        legacy_weights(x + 32 * ib, qw + 32 * ib, sigma2, weight);
        y[ib].d = fp32_to_fp16(make_qkx2_quants(32, 31, x + 32 * ib, weight, L, &min, Laux, -0.9f, 0.05f, 36, false));
        y[ib].m = fp32_to_fp16(-min);
        pack_q5_32(L, y[ib].qs, y[ib].qh);
    }
}

}  // namespace moerun::ref
