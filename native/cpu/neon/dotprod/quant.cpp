// The integer-dot kernels (int8_dots.h) with SDOT: 16 int8 products summed four at a time into
// the int32 lanes. Compiled with -march=armv8.2-a+dotprod; run only where the OS reports DotProd.
#include "../int8_dots.h"
#include "../kernels.h"
#include "sdot.h"

namespace moerun::neon_dotprod {

void register_int8_rows(cpu_kernels* table) { neon_int8::register_int8_rows<sdot>(table); }

}  // namespace moerun::neon_dotprod
