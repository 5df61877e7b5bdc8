// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c; only called after cpuid says so.
#include "../dispatch.h"

namespace moerun {

void cpu_register_avx2(type_traits* table) {
    (void)table;  // kernels are registered here as they land (see cpu/README of each path)
}

}  // namespace moerun
