// The integer-dot kernels (int8_dots.h) on plain ARMv8-A: each int8 x int8 product widened to
// int16 (SMULL/SMULL2), pairs added into int32 lanes (SADALP). Exact, so this path gives the
// dotprod path's results bit for bit.
#include "int8_dots.h"
#include "kernels.h"

namespace moerun::neon {

namespace {

struct mull_dot {
    static int32x4_t dot(int32x4_t acc, int8x16_t a, int8x16_t b) {
        acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
        return vpadalq_s16(acc, vmull_high_s8(a, b));
    }
};

}  // namespace

void register_int8_rows(cpu_kernels* table) { neon_int8::register_int8_rows<mull_dot>(table); }

}  // namespace moerun::neon
