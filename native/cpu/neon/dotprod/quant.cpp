// The integer-dot kernels (int8_dots.h) with SDOT: 16 int8 products summed four at a time into
// the int32 lanes. Compiled with -march=armv8.2-a+dotprod; run only where the OS reports DotProd.
#include "../int8_dots.h"
#include "../kernels.h"

namespace moerun::neon_dotprod {

namespace {

struct sdot {
    static int32x4_t dot(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }
};

}  // namespace

void register_int8_rows(cpu_kernels* table) { neon_int8::register_int8_rows<sdot>(table); }

}  // namespace moerun::neon_dotprod
