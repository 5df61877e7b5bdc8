// The Dot primitive (int8_dots.h) of the dotprod and i8mm builds: SDOT sums the 16 int8 products
// four at a time into the int32 lanes. Included only by files compiled with +dotprod. In this
// namespace so that every kernel instantiated with it names neon_dotprod (test/neon.test.ts checks
// that SDOT appears only in such functions).
#pragma once

#include <arm_neon.h>

namespace moerun::neon_dotprod {
namespace {

struct sdot {
    static int32x4_t dot(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }
};

}  // namespace
}  // namespace moerun::neon_dotprod
