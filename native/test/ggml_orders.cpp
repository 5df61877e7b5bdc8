// llama.cpp's own row kernels as the oracle for moerun's summation orders (cpu/kernels.h,
// cpu/vector_ops.h): loads each CPU variant of llama.cpp's ggml (node-llama-cpp's prebuilt
// libggml-cpu-*.so) that this CPU runs, and compares, bit for bit, on random rows of every length
// 1..300:
//   ggml_vec_dot_f32 / ggml_vec_dot_f16   with vec_dot_unrolled of the matching moerun path
//   ggml_vec_soft_max_f32 (+ its scale)   with vector_ops::softmax
//   ggml_vec_swiglu_f32                   with vector_ops::swiglu
// The GEMM order has no exported row kernel; the architecture tests cover it end to end.
//
//   ./build-core/ggml_orders node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
// Exit status 1 on any difference, 0 otherwise (also when no variant can run here: it says so).
#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "../cpu/dispatch.h"
#include "../cpu/vector_ops.h"
#include "../quant/types.h"

using namespace moerun;

namespace {

// Which moerun path follows each llama.cpp x86 variant (ggml/src/CMakeLists.txt): the AVX-512
// builds sum in 16 lanes, the AVX2 ones in 8. Older variants (no FMA or no AVX2) have no match.
struct variant_map {
    const char* name;
    cpu_path path;
};
constexpr variant_map k_variants[] = {
    {"haswell", cpu_path::avx2},        {"alderlake", cpu_path::avx2},   {"skylakex", cpu_path::avx512},
    {"cannonlake", cpu_path::avx512},   {"cascadelake", cpu_path::avx512}, {"icelake", cpu_path::avx512},
    {"cooperlake", cpu_path::avx512},   {"zen4", cpu_path::avx512},      {"sapphirerapids", cpu_path::avx512},
};

using dot_f32_fn = void (*)(int, float*, size_t, const float*, size_t, const float*, size_t, int);
using dot_f16_fn = void (*)(int, float*, size_t, const uint16_t*, size_t, const uint16_t*, size_t, int);
using soft_max_fn = double (*)(int, float*, const float*, float);
using swiglu_fn = void (*)(int, float*, const float*, const float*);

enum class outcome { passed, failed, skipped };

outcome check_variant(const std::string& lib, cpu_path path) {
    const std::string name = std::filesystem::path(lib).filename().string();
    void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        std::printf("skip %s: %s\n", name.c_str(), dlerror());
        return outcome::skipped;
    }
    if (auto score = reinterpret_cast<int (*)()>(dlsym(h, "ggml_backend_score")); score && score() == 0) {
        std::printf("skip %s: this CPU cannot run it\n", name.c_str());
        return outcome::skipped;
    }
    if (auto init = reinterpret_cast<void (*)()>(dlsym(h, "ggml_cpu_init"))) init();  // its F16 tables
    const auto dot32 = reinterpret_cast<dot_f32_fn>(dlsym(h, "ggml_vec_dot_f32"));
    const auto dot16 = reinterpret_cast<dot_f16_fn>(dlsym(h, "ggml_vec_dot_f16"));
    const auto soft_max = reinterpret_cast<soft_max_fn>(dlsym(h, "ggml_vec_soft_max_f32"));
    const auto swiglu = reinterpret_cast<swiglu_fn>(dlsym(h, "ggml_vec_swiglu_f32"));
    if (!dot32 || !dot16 || !soft_max || !swiglu) {
        std::printf("FAIL %s: a row kernel is not exported\n", name.c_str());
        return outcome::failed;
    }
    const cpu_kernels& t32 = cpu_kernels_for_path(path, tensor_type::F32);
    const cpu_kernels& t16 = cpu_kernels_for_path(path, tensor_type::F16);
    const vector_ops ops = vector_ops_for_path(path);

    std::mt19937 rng(7);
    std::normal_distribution<float> gauss;
    size_t diff[4] = {0, 0, 0, 0}, total = 0;
    for (int n = 1; n <= 300; ++n) {
        const size_t len = static_cast<size_t>(n);
        for (int rep = 0; rep < 8; ++rep, ++total) {
            std::vector<float> a(len), b(len);
            std::vector<uint16_t> ha(len), hb(len);
            for (int i = 0; i < n; ++i) {
                a[size_t(i)] = gauss(rng), b[size_t(i)] = gauss(rng);
                ha[size_t(i)] = fp32_to_fp16(a[size_t(i)]), hb[size_t(i)] = fp32_to_fp16(b[size_t(i)]);
            }
            float want, got;
            dot32(n, &want, 0, a.data(), 0, b.data(), 0, 1);
            t32.vec_dot_unrolled(n, &got, a.data(), b.data());
            diff[0] += std::memcmp(&want, &got, 4) != 0;
            dot16(n, &want, 0, ha.data(), 0, hb.data(), 0, 1);
            t16.vec_dot_unrolled(n, &got, ha.data(), hb.data());
            diff[1] += std::memcmp(&want, &got, 4) != 0;

            // Softmax of scaled scores (wide range, exp's large-|x| branches too), as ggml's
            // soft_max op runs it: max, the exp row and its double sum, then a scale by 1/sum.
            std::vector<float> x(len), ref(len), ours;
            for (int i = 0; i < n; ++i) x[size_t(i)] = gauss(rng) * (rep < 4 ? 3.0f : 60.0f);
            float max = -INFINITY;
            for (float v : x) max = std::fmax(max, v);
            const float inv = float(1.0 / soft_max(n, ref.data(), x.data(), max));
            for (float& v : ref) v *= inv;
            ours = x;
            ops.softmax(ours.data(), n, -INFINITY);
            diff[2] += std::memcmp(ref.data(), ours.data(), len * 4) != 0;

            std::vector<float> g(len), u(len), y(len);
            for (int i = 0; i < n; ++i) g[size_t(i)] = gauss(rng) * (rep < 4 ? 3.0f : 40.0f), u[size_t(i)] = gauss(rng);
            swiglu(n, y.data(), g.data(), u.data());
            ops.swiglu(g.data(), u.data(), n);
            diff[3] += std::memcmp(y.data(), g.data(), len * 4) != 0;
        }
    }
    const bool ok = diff[0] + diff[1] + diff[2] + diff[3] == 0;
    std::printf("%-4s %s vs moerun %s: rows that differ of %zu: vec_dot_f32 %zu, vec_dot_f16 %zu, softmax %zu, swiglu %zu\n",
                ok ? "ok" : "FAIL", name.c_str(), cpu_path_name(path), total, diff[0], diff[1], diff[2], diff[3]);
    return ok ? outcome::passed : outcome::failed;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s DIR_WITH_libggml-cpu-*.so\n", argv[0]);
        return 2;
    }
    int failures = 0, checked = 0;
    for (const variant_map& v : k_variants) {
        const std::string lib = std::string(argv[1]) + "/libggml-cpu-" + v.name + ".so";
        if (!std::filesystem::exists(lib)) continue;
        if (!cpu_path_supported(v.path)) {
            std::printf("skip %s: moerun's %s path does not run on this CPU\n", v.name, cpu_path_name(v.path));
            continue;
        }
        const outcome o = check_variant(lib, v.path);
        failures += o == outcome::failed;
        checked += o != outcome::skipped;
    }
    std::printf("%s: %d variant(s) checked, %d failed\n", failures ? "FAILED" : "passed", checked, failures);
    return failures ? 1 : 0;
}
