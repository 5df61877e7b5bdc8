// AVX-512 (F, BW, VL, DQ; VNNI and BF16 where present) kernels. Compiled with -mavx512* flags;
// only called after cpuid says so.
#include "../dispatch.h"

namespace moerun {

void cpu_register_avx512(type_traits* table) {
    (void)table;
}

}  // namespace moerun
