// The lattice, ternary and MXFP4 dots (iq_dots.h) on plain ARMv8-A, with the widening multiply
// (mull_dot): exact, so this path gives the dotprod path's results bit for bit.
#include "iq_dots.h"
#include "kernels.h"

namespace moerun::neon {

void register_iq_rows(cpu_kernels* table) { neon_int8::register_iq_rows<neon_int8::mull_dot>(table); }

}  // namespace moerun::neon
