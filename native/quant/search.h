// Small helpers shared by the reference quantizers (reference_k.cpp, reference_iq.cpp).
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

}  // namespace moerun::ref
