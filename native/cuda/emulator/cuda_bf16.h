// The CUDA emulator's stand-in for the toolkit's <cuda_bf16.h> (see cuda_runtime.h): the bfloat16
// type and its widening to float.
#pragma once

#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
    unsigned short x;
};

inline float __bfloat162float(__nv_bfloat16 b) {
    const uint32_t u = uint32_t(b.x) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
