// The lattice, ternary and MXFP4 dots (iq_dots.h) with SDOT. Compiled with
// -march=armv8.2-a+dotprod; run only where the OS reports DotProd.
#include "../iq_dots.h"
#include "../kernels.h"
#include "sdot.h"

namespace moerun::neon_dotprod {

void register_iq_rows(cpu_kernels* table) { neon_int8::register_iq_rows<sdot>(table); }

}  // namespace moerun::neon_dotprod
