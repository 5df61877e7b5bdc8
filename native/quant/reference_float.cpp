// Reference kernels for the plain float types: F32, F16, BF16.
#include <cstring>

#include "reference.h"

namespace moerun {

// Half <-> single by bit manipulation, round-to-nearest-even (matches F16C's vcvtps2ph imm 0).
float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000 | (mant << 13);  // inf / NaN
    } else if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalize
            int e = -1;
            do { mant <<= 1; ++e; } while ((mant & 0x400) == 0);
            bits = sign | (uint32_t(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint16_t sign = uint16_t((x >> 16) & 0x8000);
    const uint32_t abs = x & 0x7fffffff;
    if (abs > 0x7f800000) return uint16_t(sign | 0x7e00 | ((abs >> 13) & 0x3ff));  // NaN
    if (abs >= 0x477ff000) return uint16_t(sign | 0x7c00);  // rounds to >= 65520: inf
    if (abs < 0x38800000) {  // result is subnormal or zero
        if (abs < 0x33000000) return sign;  // < 2^-25 rounds to zero
        const uint32_t e = abs >> 23;
        const uint32_t mant = (abs & 0x7fffff) | 0x800000;
        const uint32_t shift = 126 - e;  // 14..24
        uint32_t r = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) ++r;
        return uint16_t(sign | r);
    }
    uint32_t r = abs - 0x38000000;  // rebias exponent 127 -> 15 (in place, shifted by 13 below)
    r += 0xfff + ((r >> 13) & 1);   // round to nearest even on the 13 dropped bits
    return uint16_t(sign | (r >> 13));
}

namespace ref {

void to_float_f32(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, size_t(n) * 4); }
void from_float_f32(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, size_t(n) * 4); }
void vec_dot_f32(int64_t n, float* s, const void* x, const void* y) {
    const float* a = static_cast<const float*>(x);
    const float* b = static_cast<const float*>(y);
    double sum = 0;  // float products summed in double: llama.cpp's plain-C order
    for (int64_t i = 0; i < n; ++i) sum += double(a[i] * b[i]);
    *s = float(sum);
}

void to_float_f16(const void* src, float* dst, int64_t n) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
}
void from_float_f16(const float* src, void* dst, int64_t n) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
}
void vec_dot_f16(int64_t n, float* s, const void* x, const void* y) {
    const uint16_t* a = static_cast<const uint16_t*>(x);
    const uint16_t* b = static_cast<const uint16_t*>(y);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += double(fp16_to_fp32(a[i])) * double(fp16_to_fp32(b[i]));
    *s = float(sum);
}

void to_float_bf16(const void* src, float* dst, int64_t n) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
}
void from_float_bf16(const float* src, void* dst, int64_t n) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
}
void vec_dot_bf16(int64_t n, float* s, const void* x, const void* y) {
    const uint16_t* a = static_cast<const uint16_t*>(x);
    const uint16_t* b = static_cast<const uint16_t*>(y);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += double(bf16_to_fp32(a[i])) * double(bf16_to_fp32(b[i]));
    *s = float(sum);
}

}  // namespace ref
}  // namespace moerun
