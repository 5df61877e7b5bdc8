// Small helpers shared by the reference quantizers (reference_k.cpp, reference_iq*.cpp).
#pragma once

#include <cstdint>
#include <cstring>

namespace moerun::ref {

// Round to nearest, ties to even, for |f| < 2^22: adding 1.5 * 2^23 puts the integer in the low
// mantissa bits. This is ggml's nearest_int; the exact tie rule matters for bit-identical files.
inline int nearest_int(float f) {
    const float v = f + 12582912.f;
    int32_t i;
    std::memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// Index of the entry of the sorted table `val` (n entries) nearest to x; ties go to the lower.
inline int best_index_int8(int n, const int8_t* val, float x) {
    if (x <= val[0]) return 0;
    if (x >= val[n - 1]) return n - 1;
    int lo = 0, hi = n - 1;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (x < val[mid]) hi = mid; else lo = mid;
    }
    return x - val[hi - 1] < val[hi] - x ? hi - 1 : hi;
}

// The IQ2/IQ3 lattice quantizers' signs, 8 weights at a time: |x| goes to xval and each negative
// weight sets its bit. The format stores 7 bits and implies an even count, so an odd count flips the
// sign of the weight that matters least (smallest weight * x^2; the first on ties). Returns the 7 bits.
inline uint8_t even_parity_signs(const float* x, const float* weight, float* xval) {
    int nflip = 0;
    uint8_t sg = 0;
    for (int i = 0; i < 8; ++i) {
        if (x[i] >= 0) {
            xval[i] = x[i];
        } else {
            xval[i] = -x[i];
            ++nflip;
            sg |= uint8_t(1 << i);
        }
    }
    if (nflip % 2) {
        int imin = 0;
        float min = weight[0] * x[0] * x[0];
        for (int i = 1; i < 8; ++i) {
            const float ax = weight[i] * x[i] * x[i];
            if (ax < min) { min = ax; imin = i; }
        }
        xval[imin] = -xval[imin];
        sg ^= uint8_t(1 << imin);
    }
    return sg & 127;
}

}  // namespace moerun::ref
