// Reference kernels for the legacy 32-element formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
//
// Quantizers follow llama.cpp's reference quantizers operation for operation (same float
// expressions, same rounding), so our files and activations are bit-identical to ggml's.
// Dot products sum each block exactly in integers and then scale in float.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "blocks.h"
#include "reference.h"

namespace moerun::ref {

// ---- Q4_0 ----

void to_float_q4_0(const void* src, float* dst, int64_t n) {
    const block_q4_0* x = static_cast<const block_q4_0*>(src);
    for (int64_t i = 0; i < n / k_qk32; ++i, dst += k_qk32) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < 16; ++j) {
            dst[j] = float((x[i].qs[j] & 0xF) - 8) * d;
            dst[j + 16] = float((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void from_float_q4_0(const float* src, void* dst, int64_t n) {
    block_q4_0* y = static_cast<block_q4_0*>(dst);
    for (int64_t i = 0; i < n / k_qk32; ++i, src += k_qk32) {
        // The signed value of largest magnitude maps to -8, so the range [-8, 7] is used fully.
        float amax = 0, max = 0;
        for (int j = 0; j < 32; ++j) {
            if (amax < std::fabs(src[j])) { amax = std::fabs(src[j]); max = src[j]; }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int j = 0; j < 16; ++j) {
            const uint8_t q0 = uint8_t(std::min(15, int(int8_t(src[j] * id + 8.5f))));
            const uint8_t q1 = uint8_t(std::min(15, int(int8_t(src[j + 16] * id + 8.5f))));
            y[i].qs[j] = uint8_t(q0 | (q1 << 4));
        }
    }
}

void vec_dot_q4_0(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q4_0* x = static_cast<const block_q4_0*>(vx);
    const block_q8_0* y = static_cast<const block_q8_0*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk32; ++i) {
        int isum = 0;
        for (int j = 0; j < 16; ++j) {
            isum += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        }
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * float(isum);
    }
    *s = sum;
}

// ---- Q4_1 ----

void to_float_q4_1(const void* src, float* dst, int64_t n) {
    const block_q4_1* x = static_cast<const block_q4_1*>(src);
    for (int64_t i = 0; i < n / k_qk32; ++i, dst += k_qk32) {
        const float d = fp16_to_fp32(x[i].d), m = fp16_to_fp32(x[i].m);
        for (int j = 0; j < 16; ++j) {
            dst[j] = float(x[i].qs[j] & 0xF) * d + m;
            dst[j + 16] = float(x[i].qs[j] >> 4) * d + m;
        }
    }
}

void from_float_q4_1(const float* src, void* dst, int64_t n) {
    block_q4_1* y = static_cast<block_q4_1*>(dst);
    for (int64_t i = 0; i < n / k_qk32; ++i, src += k_qk32) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; ++j) {
            if (src[j] < min) min = src[j];
            if (src[j] > max) max = src[j];
        }
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        y[i].m = fp32_to_fp16(min);
        for (int j = 0; j < 16; ++j) {
            const uint8_t q0 = uint8_t(std::min(15, int(int8_t((src[j] - min) * id + 0.5f))));
            const uint8_t q1 = uint8_t(std::min(15, int(int8_t((src[j + 16] - min) * id + 0.5f))));
            y[i].qs[j] = uint8_t(q0 | (q1 << 4));
        }
    }
}

// x = d*q + m, y = dy*qy: sum = d*dy*sum(q*qy) + m*(dy*sum(qy)) = d*dy*isum + m*s.
void vec_dot_q4_1(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q4_1* x = static_cast<const block_q4_1*>(vx);
    const block_q8_1* y = static_cast<const block_q8_1*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk32; ++i) {
        int isum = 0;
        for (int j = 0; j < 16; ++j) isum += (x[i].qs[j] & 0xF) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * float(isum) + fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
    }
    *s = sum;
}

// ---- Q5_0 / Q5_1 ----

namespace {
inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
// The 5-bit quant j (0..31) of a Q5 block.
inline int q5_quant(const uint8_t* qs, uint32_t qh, int j) {
    const int lo = j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
    return lo | int(((qh >> j) & 1) << 4);
}
}  // namespace

void to_float_q5_0(const void* src, float* dst, int64_t n) {
    const block_q5_0* x = static_cast<const block_q5_0*>(src);
    for (int64_t i = 0; i < n / k_qk32; ++i, dst += k_qk32) {
        const float d = fp16_to_fp32(x[i].d);
        const uint32_t qh = load_u32(x[i].qh);
        for (int j = 0; j < 32; ++j) dst[j] = float(q5_quant(x[i].qs, qh, j) - 16) * d;
    }
}

void from_float_q5_0(const float* src, void* dst, int64_t n) {
    block_q5_0* y = static_cast<block_q5_0*>(dst);
    for (int64_t i = 0; i < n / k_qk32; ++i, src += k_qk32) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; ++j) {
            if (amax < std::fabs(src[j])) { amax = std::fabs(src[j]); max = src[j]; }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            const uint8_t q0 = uint8_t(std::min(31, int(int8_t(src[j] * id + 16.5f))));
            const uint8_t q1 = uint8_t(std::min(31, int(int8_t(src[j + 16] * id + 16.5f))));
            y[i].qs[j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= uint32_t((q0 >> 4) & 1) << j;
            qh |= uint32_t((q1 >> 4) & 1) << (j + 16);
        }
        std::memcpy(y[i].qh, &qh, 4);
    }
}

void vec_dot_q5_0(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q5_0* x = static_cast<const block_q5_0*>(vx);
    const block_q8_0* y = static_cast<const block_q8_0*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk32; ++i) {
        const uint32_t qh = load_u32(x[i].qh);
        int isum = 0;
        for (int j = 0; j < 32; ++j) isum += (q5_quant(x[i].qs, qh, j) - 16) * y[i].qs[j];
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * float(isum);
    }
    *s = sum;
}

void to_float_q5_1(const void* src, float* dst, int64_t n) {
    const block_q5_1* x = static_cast<const block_q5_1*>(src);
    for (int64_t i = 0; i < n / k_qk32; ++i, dst += k_qk32) {
        const float d = fp16_to_fp32(x[i].d), m = fp16_to_fp32(x[i].m);
        const uint32_t qh = load_u32(x[i].qh);
        for (int j = 0; j < 32; ++j) dst[j] = float(q5_quant(x[i].qs, qh, j)) * d + m;
    }
}

void from_float_q5_1(const float* src, void* dst, int64_t n) {
    block_q5_1* y = static_cast<block_q5_1*>(dst);
    for (int64_t i = 0; i < n / k_qk32; ++i, src += k_qk32) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; ++j) {
            if (src[j] < min) min = src[j];
            if (src[j] > max) max = src[j];
        }
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        y[i].m = fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            const uint8_t q0 = uint8_t((src[j] - min) * id + 0.5f);
            const uint8_t q1 = uint8_t((src[j + 16] - min) * id + 0.5f);
            y[i].qs[j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= uint32_t((q0 >> 4) & 1) << j;
            qh |= uint32_t((q1 >> 4) & 1) << (j + 16);
        }
        std::memcpy(y[i].qh, &qh, 4);
    }
}

void vec_dot_q5_1(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q5_1* x = static_cast<const block_q5_1*>(vx);
    const block_q8_1* y = static_cast<const block_q8_1*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk32; ++i) {
        const uint32_t qh = load_u32(x[i].qh);
        int isum = 0;
        for (int j = 0; j < 32; ++j) isum += q5_quant(x[i].qs, qh, j) * y[i].qs[j];
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * float(isum) + fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
    }
    *s = sum;
}

// ---- Q8_0 / Q8_1 ----

namespace {

// Q8_0 and Q8_1 share their quants: 32 values scaled by d = amax / 127, rounded (ties away from 0).
// Returns d.
float quantize_32_i8(const float* src, int8_t* qs) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j) qs[j] = int8_t(std::round(src[j] * id));
    return d;
}

template <typename B>
void to_float_8bit(const void* src, float* dst, int64_t n) {
    const B* x = static_cast<const B*>(src);
    for (int64_t i = 0; i < n / k_qk32; ++i, dst += k_qk32) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < 32; ++j) dst[j] = float(x[i].qs[j]) * d;
    }
}

}  // namespace

void to_float_q8_0(const void* src, float* dst, int64_t n) { to_float_8bit<block_q8_0>(src, dst, n); }

void from_float_q8_0(const float* src, void* dst, int64_t n) {
    block_q8_0* y = static_cast<block_q8_0*>(dst);
    for (int64_t i = 0; i < n / k_qk32; ++i, src += k_qk32) y[i].d = fp32_to_fp16(quantize_32_i8(src, y[i].qs));
}

void vec_dot_q8_0(int64_t n, float* s, const void* vx, const void* vy) {
    const block_q8_0* x = static_cast<const block_q8_0*>(vx);
    const block_q8_0* y = static_cast<const block_q8_0*>(vy);
    float sum = 0;
    for (int64_t i = 0; i < n / k_qk32; ++i) {
        int isum = 0;
        for (int j = 0; j < 32; ++j) isum += x[i].qs[j] * y[i].qs[j];
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * float(isum);
    }
    *s = sum;
}

void to_float_q8_1(const void* src, float* dst, int64_t n) { to_float_8bit<block_q8_1>(src, dst, n); }

void from_float_q8_1(const float* src, void* dst, int64_t n) {
    block_q8_1* y = static_cast<block_q8_1*>(dst);
    for (int64_t i = 0; i < n / k_qk32; ++i, src += k_qk32) {
        const float d = quantize_32_i8(src, y[i].qs);
        y[i].d = fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < 32; ++j) sum += y[i].qs[j];
        y[i].s = fp32_to_fp16(float(sum) * d);
    }
}

}  // namespace moerun::ref
