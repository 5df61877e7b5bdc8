// Row-kernel speed against llama.cpp's own, in one process on the same bytes: moerun's vec_dot
// (matvec, m = 1) and vec_dot_n (m activation rows at once) of the given path, against ggml's
// vec_dot of one llama.cpp CPU variant (node-llama-cpp's prebuilt libggml-cpu-<variant>.so,
// loaded with dlopen), which its CPU matmul calls once per (weight row, activation row) for these
// types. The two alternate rep by rep, so machine load hits both alike; each figure is the minimum.
//
//   cmake --build build-core -j2 --target bench_dot_peer
//   MOERUN_CPU=avx2 ./build-core/bench_dot_peer BINS_DIR haswell [--types IQ2_XXS,IQ1_S] [--m 1,64]
//       [--k 2048] [--n 1408] [--budget 0.3] [--only moerun|ggml --reps N]
//   BINS_DIR: node_modules/@node-llama-cpp/linux-x64/bins/linux-x64; the variant: haswell (AVX2),
//   zen4 (AVX-512), ...
// --only with --reps runs one engine a fixed number of times, for instruction counts:
//   valgrind --tool=callgrind ./build-core/bench_dot_peer ... --m 1 --only moerun --reps 20
//
// Weights are random bytes cut into blocks with a small block scale (any bit pattern is a valid
// lattice block; values do not change speed), activations are moerun's Q8_K (or Q8_0 for MXFP4)
// rows of Gaussian floats, which are llama.cpp's bytes. Columns: time per call (ms), GFLOP/s
// (2 * m * n * k), llama.cpp's time over moerun's (> 1: moerun is faster), and the largest
// relative difference of the results (the two sum in different orders, so not 0).
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../base/tensor.h"
#include "../cpu/dispatch.h"
#include "../quant/types.h"

using namespace moerun;

namespace {

// ggml_vec_dot_<type>_q8_<K|0>(n, s, bs, vx, bx, vy, by, nrc): nrc = 1 on x86 for these types.
using ggml_dot_fn = void (*)(int, float*, size_t, const void*, size_t, const void*, size_t, int);

struct peer_type {
    const char* name;
    tensor_type type;
    const char* ggml_symbol;
};
constexpr peer_type k_types[] = {
    {"IQ2_XXS", tensor_type::IQ2_XXS, "ggml_vec_dot_iq2_xxs_q8_K"}, {"IQ2_XS", tensor_type::IQ2_XS, "ggml_vec_dot_iq2_xs_q8_K"},
    {"IQ2_S", tensor_type::IQ2_S, "ggml_vec_dot_iq2_s_q8_K"},       {"IQ3_XXS", tensor_type::IQ3_XXS, "ggml_vec_dot_iq3_xxs_q8_K"},
    {"IQ3_S", tensor_type::IQ3_S, "ggml_vec_dot_iq3_s_q8_K"},       {"IQ1_S", tensor_type::IQ1_S, "ggml_vec_dot_iq1_s_q8_K"},
    {"IQ1_M", tensor_type::IQ1_M, "ggml_vec_dot_iq1_m_q8_K"},       {"TQ1_0", tensor_type::TQ1_0, "ggml_vec_dot_tq1_0_q8_K"},
    {"TQ2_0", tensor_type::TQ2_0, "ggml_vec_dot_tq2_0_q8_K"},       {"MXFP4", tensor_type::MXFP4, "ggml_vec_dot_mxfp4_q8_0"},
    {"IQ4_NL", tensor_type::IQ4_NL, "ggml_vec_dot_iq4_nl_q8_0"},    {"IQ4_XS", tensor_type::IQ4_XS, "ggml_vec_dot_iq4_xs_q8_K"},
};

std::vector<std::string> split(const char* s) {
    std::vector<std::string> v;
    std::string cur;
    for (const char* p = s;; ++p) {
        if (*p == ',' || !*p) {
            if (!cur.empty()) v.push_back(cur);
            cur.clear();
            if (!*p) break;
        } else {
            cur += *p;
        }
    }
    return v;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// n rows of k weights of random valid blocks: the block scale (f16 at offset 0; IQ1_M's in the
// top nibbles of its four scale words; MXFP4's E8M0 exponent byte) set small and finite.
std::vector<uint8_t> random_weights(tensor_type type, int64_t n, int64_t k, std::mt19937& rng) {
    const type_traits& t = type_traits_reference(type);
    std::vector<uint8_t> w(row_size(type, k) * size_t(n));
    for (uint8_t& b : w) b = uint8_t(rng());
    const uint16_t d = fp32_to_fp16(1.0f / 64);
    for (uint8_t* b = w.data(); b < w.data() + w.size(); b += t.type_size) {
        if (type == tensor_type::IQ1_M) {
            for (int q = 0; q < 4; ++q) b[48 + 2 * q + 1] = uint8_t((b[48 + 2 * q + 1] & 0x0f) | (((d >> (4 * q)) & 0xf) << 4));
        } else if (type == tensor_type::MXFP4) {
            b[0] = uint8_t(121 + rng() % 4);  // 2^-6 .. 2^-3
        } else {
            std::memcpy(b, &d, 2);
        }
    }
    return w;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s BINS_DIR VARIANT [--types A,B] [--m 1,64] [--k K] [--n N] [--budget S] [--only moerun|ggml --reps N]\n", argv[0]);
        return 2;
    }
    std::vector<std::string> types = {"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0", "MXFP4"};
    std::vector<int64_t> ms = {1, 64};
    int64_t k = 2048, n = 1408;  // DeepSeek-V2-Lite's expert gate/up: 1408 rows of 2048
    double budget = 0.3;         // seconds per engine and point
    std::string only;
    int reps = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        const std::string opt = argv[i];
        if (opt == "--types") types = split(argv[i + 1]);
        else if (opt == "--m") {
            ms.clear();
            for (const std::string& s : split(argv[i + 1])) ms.push_back(std::atoll(s.c_str()));
        } else if (opt == "--k") k = std::atoll(argv[i + 1]);
        else if (opt == "--n") n = std::atoll(argv[i + 1]);
        else if (opt == "--budget") budget = std::atof(argv[i + 1]);
        else if (opt == "--only") only = argv[i + 1];
        else if (opt == "--reps") reps = std::atoi(argv[i + 1]);
        else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (k % 256 != 0 || n < 1 || (!only.empty() && only != "moerun" && only != "ggml")) {
        std::fprintf(stderr, "--k must be a multiple of 256, --n positive, --only moerun or ggml\n");
        return 2;
    }
    const std::string lib = std::string(argv[1]) + "/libggml-cpu-" + argv[2] + ".so";
    void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        std::fprintf(stderr, "cannot load %s: %s\n", lib.c_str(), dlerror());
        return 1;
    }
    if (auto score = reinterpret_cast<int (*)()>(dlsym(h, "ggml_backend_score")); score && score() == 0) {
        std::fprintf(stderr, "this CPU cannot run %s\n", lib.c_str());
        return 1;
    }
    if (auto init = reinterpret_cast<void (*)()>(dlsym(h, "ggml_cpu_init"))) init();

    const cpu_path path = cpu_active_path();
    std::printf("moerun %s vs llama.cpp %s, 1 thread, k = %lld, n = %lld\n", cpu_path_name(path), argv[2], (long long)k, (long long)n);
    std::printf("%-8s %4s %10s %10s %9s %9s %7s %9s\n", "type", "m", "moerun ms", "ggml ms", "moerun GF", "ggml GF", "ggml/m", "max rel");
    std::mt19937 rng(42);
    std::normal_distribution<float> gauss;
    for (const std::string& name : types) {
        const peer_type* pt = nullptr;
        for (const peer_type& p : k_types) pt = name == p.name ? &p : pt;
        const auto ggml_dot = pt ? reinterpret_cast<ggml_dot_fn>(dlsym(h, pt->ggml_symbol)) : nullptr;
        if (!ggml_dot) {
            std::fprintf(stderr, "unknown type %s, or %s lacks its kernel\n", name.c_str(), lib.c_str());
            return 2;
        }
        const cpu_kernels& kt = cpu_kernels_of(pt->type);
        const tensor_type act = kt.vec_dot_type;
        const std::vector<uint8_t> w = random_weights(pt->type, n, k, rng);
        const size_t wrow = row_size(pt->type, k);
        for (int64_t m : ms) {
            // Activation rows: moerun's layout (Q8_0 rows carry float scales after the blocks on
            // the SIMD paths; ggml reads only the blocks, the same bytes).
            const size_t arow = act_row_size(act, k);
            std::vector<uint8_t> a(arow * size_t(m));
            std::vector<float> xf(static_cast<size_t>(k));
            for (int64_t j = 0; j < m; ++j) {
                for (float& v : xf) v = gauss(rng);
                act_from_float(act)(xf.data(), a.data() + size_t(j) * arow, k);
            }
            std::vector<float> ours(size_t(n * m)), theirs(size_t(n * m));
            auto run_moerun = [&] {
                for (int64_t r = 0; r < n; ++r) {
                    const uint8_t* wr = w.data() + size_t(r) * wrow;
                    if (m == 1 || !kt.vec_dot_n) {
                        for (int64_t j = 0; j < m; ++j) kt.vec_dot(k, &ours[size_t(j * n + r)], wr, a.data() + size_t(j) * arow);
                    } else {
                        kt.vec_dot_n(k, &ours[size_t(r)], n, wr, a.data(), arow, m);
                    }
                }
            };
            auto run_ggml = [&] {  // ggml's loop order for a matmul of these types: columns within rows
                for (int64_t r = 0; r < n; ++r) {
                    const uint8_t* wr = w.data() + size_t(r) * wrow;
                    for (int64_t j = 0; j < m; ++j) ggml_dot(int(k), &theirs[size_t(j * n + r)], 0, wr, 0, a.data() + size_t(j) * arow, 0, 1);
                }
            };
            if (!only.empty()) {
                for (int rep = 0; rep < std::max(reps, 1); ++rep) {
                    if (only == "moerun") run_moerun();
                    else run_ggml();
                }
                std::printf("%-8s %4lld ran %s %d time(s)\n", name.c_str(), (long long)m, only.c_str(), std::max(reps, 1));
                continue;
            }
            run_moerun();
            run_ggml();
            double best_m = 1e30, best_g = 1e30, spent = 0;
            for (int rep = 0; rep < 3 || (spent < 2 * budget && rep < 2000); ++rep) {
                double t0 = now_s();
                run_moerun();
                const double tm = now_s() - t0;
                t0 = now_s();
                run_ggml();
                const double tg = now_s() - t0;
                best_m = std::min(best_m, tm), best_g = std::min(best_g, tg);
                spent += tm + tg;
            }
            double max_rel = 0, scale = 0;
            for (float v : theirs) scale = std::max(scale, double(std::fabs(v)));
            for (size_t i = 0; i < ours.size(); ++i) max_rel = std::max(max_rel, std::fabs(double(ours[i]) - theirs[i]) / std::max(scale, 1e-30));
            const double flops = 2.0 * double(m) * double(n) * double(k);
            std::printf("%-8s %4lld %10.3f %10.3f %9.1f %9.1f %7.2f %9.1e\n", name.c_str(), (long long)m, best_m * 1e3, best_g * 1e3,
                        flops / best_m * 1e-9, flops / best_g * 1e-9, best_g / best_m, max_rel);
            std::fflush(stdout);
        }
    }
    return 0;
}
