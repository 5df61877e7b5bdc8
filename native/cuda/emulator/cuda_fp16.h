// The CUDA emulator's stand-in for the toolkit's <cuda_fp16.h> (see cuda_runtime.h): the half type
// and the conversions native/cuda uses, through the compiler's _Float16 (IEEE binary16, conversions
// rounded to nearest even as __float2half_rn).
#pragma once

#include <cstdint>
#include <cstring>

struct __half_raw {
    unsigned short x;
};
struct __half {
    unsigned short x;
    __half() = default;
    constexpr __half(__half_raw r) : x(r.x) {}
};

inline __half __float2half_rn(float f) {
    const _Float16 h = static_cast<_Float16>(f);
    __half r;
    std::memcpy(&r.x, &h, 2);
    return r;
}
inline float __half2float(__half h) {
    _Float16 v;
    std::memcpy(&v, &h.x, 2);
    return static_cast<float>(v);
}
