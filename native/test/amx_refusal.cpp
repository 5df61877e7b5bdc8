// The amx path's fallback when Linux refuses this process the AMX tile state (cpu/dispatch.cpp).
// A real refusal, as an application with small alternate signal stacks gets: with a 2 KiB
// sigaltstack installed the kernel refuses ARCH_REQ_XCOMP_PERM (ENOSPC), since the AMX state would
// not fit a signal frame there. Then cpu_detect must report no AMX, the default path must be the
// best other one, whose prompt tiles run (an AMX tile instruction would fault), and MOERUN_CPU=amx
// must be an error (run this with it set to check that).
//
//   amx_refusal            prints "refused: ..." and exits 0 when the fallback holds; on a CPU or
//                          kernel without AMX it prints "no AMX ..." and exits 0 (nothing to refuse)
//   MOERUN_CPU=amx amx_refusal   exits 0 when the path is refused with an error
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../base/error.h"
#include "../cpu/dispatch.h"
#include "../cpu/kernels.h"

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#endif

using namespace moerun;

namespace {

// AMX-TILE and AMX-INT8 in cpuid and the tile state enabled by the OS in XCR0, read here rather
// than through cpu_detect, which is what is under test.
bool cpu_has_amx() {
#if defined(__x86_64__) && defined(__linux__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25))) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0x60000) == 0x60000;
#else
    return false;
#endif
}

int fail(const char* what) {
    std::printf("FAIL %s\n", what);
    return 1;
}

}  // namespace

int main() {
    if (!cpu_has_amx()) {
        std::printf("no AMX on this CPU (or the OS does not enable its state): nothing to refuse\n");
        return 0;
    }
    static std::vector<char> small_stack(2048);
    stack_t ss{};
    ss.ss_sp = small_stack.data();
    ss.ss_size = small_stack.size();
    if (sigaltstack(&ss, nullptr) != 0) return fail("sigaltstack");

    const char* env = std::getenv("MOERUN_CPU");
    if (env && std::strcmp(env, "amx") == 0) {
        try {
            cpu_active_path();
        } catch (const error& e) {
            std::printf("refused: MOERUN_CPU=amx is an error: %s\n", e.what());
            return 0;
        }
        return fail("MOERUN_CPU=amx was accepted although the OS refused the tile state");
    }

    const cpu_features& f = cpu_detect();
    if (f.amx_tile || f.amx_int8 || f.amx_bf16) return fail("cpu_detect reports AMX although the OS refused the tile state");
    if (cpu_path_supported(cpu_path::amx)) return fail("the amx path is reported as supported");
    const cpu_path active = cpu_active_path();
    if (active == cpu_path::amx) return fail("the amx path is active");
    // A prompt-sized tile of every type the amx path has: with AMX kernels in the table (the tile
    // state refused) the first tile instruction would fault.
    constexpr int64_t k = 512, rows = 16, tokens = 40;
    const std::vector<float> zeros(size_t(k), 0.0f);
    for (tensor_type t : {tensor_type::Q8_0, tensor_type::Q4_0, tensor_type::Q4_K, tensor_type::Q5_K, tensor_type::Q6_K}) {
        const cpu_kernels& w = cpu_kernels_of(t);
        if (!w.int8_tile) continue;
        const size_t w_row = size_t(k / w.block_size) * w.type_size, x_row = act_row_size(w.vec_dot_type, k);
        std::vector<uint8_t> wq(w_row * rows), xq(x_row * tokens);
        for (int64_t r = 0; r < rows; ++r) w.from_float(zeros.data(), wq.data() + size_t(r) * w_row, k);
        for (int64_t i = 0; i < tokens; ++i) act_from_float(w.vec_dot_type)(zeros.data(), xq.data() + size_t(i) * x_row, k);
        std::vector<float> y(size_t(rows * tokens), -1.0f);
        w.int8_tile(k, wq.data(), w_row, rows, xq.data(), x_row, tokens, y.data(), rows);
        for (float v : y) if (v != 0.0f) return fail("a tile of zeros did not give zeros");
    }
    std::printf("refused: the OS refused the tile state; active path %s, its prompt tiles run\n", cpu_path_name(active));
    return 0;
}
