// Prefill matmul benchmark: y (m x n) = x (m x k) . w^T on the active CPU path (MOERUN_CPU picks
// it), for weights of random valid blocks in a few types and FFN-like shapes.
//
//   cmake --build build-core -j2 --target bench_matmul
//   MOERUN_CPU=avx512 ./build-core/bench_matmul [--threads N] [--types Q4_K,Q8_0,F16] [--m 1,8,64,512]
//                                               [--n 2048,5632] [--k 2048] [--budget S] [--clock wall|cpu]
//                                               [--experts E:K [--prefetch-rows R1,R2,...]] [--interleave 0|1]
//
// --experts E:K times decode through an MoE layer's experts instead: for each n, two (k, n, E)
// weights (gate and up), and calls of matmul_experts with one token routed to K experts drawn at
// random, so that the weights come from DRAM as in a model (one matrix read over and over stays
// in the cache). GB/s is the K experts' bytes over the mean time of a call, back to back for the
// budget. --prefetch-rows alternates the decode tiles' prefetch distance call by call (0: this
// CPU's default, cpu/tile_prefetch.h; -1: none) and prints a row for each, so the machine's noise hits all
// alike.
//
// --interleave 1 rewrites the weights into the CPU's interleaved layout where the path has a tile
// for it (cpu/interleave.h; n a multiple of 16), as the loader does; 0 (default) leaves the rows in
// place.
//
// Each point is the minimum over repetitions (this machine is shared and noisy) of one matmul()
// call, activation conversion included. GFLOP/s counts 2*m*n*k; GB/s is the weight bytes read
// once per call (what bounds decode, m = 1). --clock cpu times the process's CPU time instead of
// the wall clock: on a VM whose host takes its vCPUs away (steal time, 30-50% on a busy day) that
// stays within a few percent from run to run where the wall clock swung 2x. It sums every thread,
// so it compares kernels at --threads 1.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <time.h>
#include <vector>

#include "../cpu/interleave.h"
#include "../cpu/dispatch.h"
#include "../cpu/matmul.h"
#include "../cpu/tile_prefetch.h"
#include "../base/thread_pool.h"
#include "../quant/types.h"
#include "../base/tensor.h"

using namespace moerun;

namespace {

std::vector<int64_t> parse_list(const char* s) {
    std::vector<int64_t> v;
    for (const char* p = s; *p;) {
        v.push_back(std::strtoll(p, const_cast<char**>(&p), 10));
        if (*p == ',') ++p;
    }
    return v;
}

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

bool type_by_name(const std::string& name, tensor_type& out) {
    for (uint32_t i = 0; i < k_tensor_type_count; ++i) {
        const type_traits& t = type_traits_reference(tensor_type(i));
        if (t.name && name == t.name && t.vec_dot) {
            out = tensor_type(i);
            return true;
        }
    }
    return false;
}

double now_s(bool cpu_clock) {
    if (cpu_clock) {
        timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// --experts: w holds 2 * n_expert matrices of (k, n), the gate weight's experts then the up's.
void time_experts(thread_pool& pool, const tensor& w, int n_expert, int n_used, const std::vector<int64_t>& prefetch_rows, double budget,
                  const std::string& name, std::mt19937& rng) {
    const int64_t k = w.ne[0], n = w.ne[1];
    tensor gate = w, up = w;
    gate.ne[2] = up.ne[2] = n_expert;
    up.data = w.row(n * n_expert);
    std::vector<float> x(size_t(n_used) * size_t(k)), yg(size_t(n_used) * size_t(n)), yu(yg.size());
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    for (float& v : x) v = gauss(rng);
    std::vector<uint8_t> scratch;
    std::vector<int> ids(static_cast<size_t>(n_expert));
    for (int e = 0; e < n_expert; ++e) ids[size_t(e)] = e;
    std::vector<expert_batch> batches(static_cast<size_t>(n_used));
    const size_t variants = prefetch_rows.size();
    std::vector<double> spent(variants, 0.0);
    std::vector<int64_t> calls(variants, 0);
    thread_pool::burst b(pool);
    for (int64_t call = 0; call < 10 * int64_t(variants) || spent[call % variants] < budget; ++call) {
        const size_t v = size_t(call) % variants;
        set_decode_prefetch_rows(int(prefetch_rows[v]));
        std::shuffle(ids.begin(), ids.end(), rng);
        std::sort(ids.begin(), ids.begin() + n_used);  // in expert order, as ffn_moe_experts batches them
        for (int i = 0; i < n_used; ++i) batches[size_t(i)] = {ids[size_t(i)], i, 1};  // token i of x
        const double t0 = now_s(false);
        matmul_experts(pool, {{&gate, yg.data()}, {&up, yu.data()}}, batches, x.data(), n_used, scratch);
        spent[v] += now_s(false) - t0;
        ++calls[v];
    }
    set_decode_prefetch_rows(0);
    const double bytes = 2.0 * double(n_used) * double(n) * double(w.row_bytes()), flops = 4.0 * double(n_used) * double(n) * double(k);
    for (size_t v = 0; v < variants; ++v) {
        const double per_call = spent[v] / double(calls[v]);
        char label[48] = "";
        if (variants > 1 || prefetch_rows[v] != 0) {
            if (prefetch_rows[v] == 0) std::snprintf(label, sizeof(label), ", prefetch default");
            else if (prefetch_rows[v] < 0) std::snprintf(label, sizeof(label), ", no prefetch");
            else std::snprintf(label, sizeof(label), ", prefetch %lld rows", (long long)prefetch_rows[v]);
        }
        std::printf("%-6s %6lld %5s %10.3f %9.1f %8.1f   (%d of %d experts, gate+up%s; %lld calls)\n", name.c_str(), (long long)n, "1/E",
                    per_call * 1e3, flops / per_call * 1e-9, bytes / per_call * 1e-9, n_used, n_expert, label, (long long)calls[v]);
    }
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    int threads = 1;
    std::vector<std::string> types = {"Q4_K", "Q8_0", "F16"};
    std::vector<int64_t> ms = {1, 8, 64, 512};
    std::vector<int64_t> ns = {2048, 5632};
    int64_t k = 2048;  // the reduction length: a row's elements
    double budget = 0.4;  // seconds of repetitions per point
    bool cpu_clock = false;
    int n_expert = 0, n_expert_used = 0;  // --experts E:K
    std::vector<int64_t> prefetch_rows = {0};
    bool interleave = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--types")) types = split(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--m")) ms = parse_list(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--n")) ns = parse_list(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--k")) k = std::atoll(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--budget")) budget = std::atof(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--experts")) {
            if (std::sscanf(argv[i + 1], "%d:%d", &n_expert, &n_expert_used) != 2 || n_expert_used < 1 || n_expert_used > n_expert) {
                std::fprintf(stderr, "--experts takes E:K, 1 <= K <= E\n");
                return 2;
            }
        }
        else if (!std::strcmp(argv[i], "--prefetch-rows")) prefetch_rows = parse_list(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--interleave")) interleave = std::atoi(argv[i + 1]) != 0;
        else if (!std::strcmp(argv[i], "--clock") && (!std::strcmp(argv[i + 1], "wall") || !std::strcmp(argv[i + 1], "cpu"))) cpu_clock = argv[i + 1][0] == 'c';
        else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (prefetch_rows.empty() || *std::min_element(prefetch_rows.begin(), prefetch_rows.end()) < -1) {
        std::fprintf(stderr, "--prefetch-rows takes a list of row counts, 0 for the default, -1 for none\n");
        return 2;
    }
    if (k <= 0 || k % 256) {
        std::fprintf(stderr, "--k must be a positive multiple of 256 (every block size divides it)\n");
        return 2;
    }
    thread_pool pool(threads);
    std::printf("path %s, %d thread(s), k = %lld, %s time%s\n", cpu_path_name(cpu_active_path()), threads, (long long)k, cpu_clock ? "CPU" : "wall",
                interleave ? ", weights interleaved where the path can" : "");
    std::printf("%-6s %6s %5s %10s %9s %8s\n", "type", "n", "m", "ms", "GFLOP/s", "GB/s");
    std::mt19937 rng(42);
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    for (const std::string& name : types) {
        tensor_type type;
        if (!type_by_name(name, type)) {
            std::fprintf(stderr, "unknown or non-matmul type %s\n", name.c_str());
            return 2;
        }
        const type_traits& ref = type_traits_reference(type);
        for (int64_t n : ns) {
            // Valid blocks: quantize Gaussian rows with the reference quantizer, or for the types
            // without one (the lattice formats), random bytes with a block scale of 1/64.
            std::vector<float> wf(static_cast<size_t>(k));
            const size_t wrow = row_size(type, k);
            const int64_t n_matrices = n_expert > 0 ? 2 * int64_t(n_expert) : 1;
            std::vector<uint8_t> wq(wrow * size_t(n) * size_t(n_matrices));
            for (int64_t r = 0; r < n * n_matrices; ++r) {
                for (float& v : wf) v = gauss(rng);
                if (ref.from_float) {
                    ref.from_float(wf.data(), wq.data() + size_t(r) * wrow, k);
                    continue;
                }
                uint8_t* row = wq.data() + size_t(r) * wrow;
                for (size_t i = 0; i < wrow; ++i) row[i] = uint8_t(rng());
                const uint16_t d = fp32_to_fp16(1.0f / 64);
                for (uint8_t* b = row; b < row + wrow; b += ref.type_size) {
                    if (type == tensor_type::IQ1_M) {  // d in the top nibbles of its 4 scale words
                        for (int w = 0; w < 4; ++w) b[48 + 2 * w + 1] = uint8_t((b[48 + 2 * w + 1] & 0x0f) | (((d >> (4 * w)) & 0xf) << 4));
                    } else {
                        std::memcpy(b, &d, 2);  // d first
                    }
                }
            }
            tensor w;
            w.data = wq.data();
            w.type = type;
            w.ne[0] = k;
            w.ne[1] = n;
            w.row_stride = row_size(w.type, k);
            if (interleave && can_interleave(w)) {
                std::vector<uint8_t> group(wrow * k_interleave_rows);
                for (size_t at = 0; at < wq.size(); at += group.size()) {
                    interleave_group(wq.data() + at, wrow, ref.type_size, group.data());
                    std::memcpy(wq.data() + at, group.data(), group.size());
                }
                w.interleaved = true;
            }
            if (n_expert > 0) {
                time_experts(pool, w, n_expert, n_expert_used, prefetch_rows, budget, name, rng);
                continue;
            }
            for (int64_t m : ms) {
                std::vector<float> x(size_t(m * k)), y(size_t(m * n));
                for (float& v : x) v = gauss(rng);
                std::vector<uint8_t> scratch;
                thread_pool::burst b(pool);
                matmul(pool, w, x.data(), m, y.data(), scratch);  // warm up
                double best = 1e30, spent = 0;
                for (int rep = 0; rep < 3 || (spent < budget && rep < 1000); ++rep) {
                    const double t0 = now_s(cpu_clock);
                    matmul(pool, w, x.data(), m, y.data(), scratch);
                    const double dt = now_s(cpu_clock) - t0;
                    best = std::min(best, dt);
                    spent += dt;
                }
                const double flops = 2.0 * double(m) * double(n) * double(k);
                std::printf("%-6s %6lld %5lld %10.3f %9.1f %8.1f\n", name.c_str(), (long long)n, (long long)m, best * 1e3,
                            flops / best * 1e-9, double(wq.size()) / best * 1e-9);
                std::fflush(stdout);
            }
        }
    }
    return 0;
}
