// Decode attention benchmark: one token's attention (backend::attention, n = 1) over a CPU KV cache
// of a given length, on the active CPU path (MOERUN_CPU picks it).
//
//   cmake --build build-core -j2 --target bench_attention
//   ./build-core/bench_attention [--threads N] [--ctx 512,2048,8192] [--kv f16,q8_0,f32,bf16]
//                                [--heads 16:4] [--head-dim 128] [--mla RANK:ROPE] [--layers 20] [--budget S]
//
// The cache holds --layers layers of random keys and values (default 20, Ling-mini's depth) and
// the calls cycle through them, so that, as in a model, the cache comes from DRAM and not from
// the last call's L2/L3 (--layers 1 times the in-cache case). --heads Q:KV sets the query and kv
// head counts (Ling-mini 16:4, Qwen3-30B-A3B 32:4). --mla 512:64 makes it deepseek2's absorbed
// latent attention instead (DeepSeek-V2-Lite: --heads 16:1 --mla 512:64): one latent row of
// RANK + ROPE per position, whose first RANK elements are the values. Each row: the mean and the best time of a
// call over the budget (default 1 s), and GB/s of the keys and values of one layer at the mean.
// The hash is of the last call's output bytes: two builds that compute the same attention print
// the same hash.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../backend/backend.h"
#include "../backend/model_desc.h"
#include "../backend/registry.h"
#include "../base/error.h"
#include "../quant/types.h"

using namespace moerun;

namespace {

std::vector<std::string> split(const char* s) {
    std::vector<std::string> out;
    std::string cur;
    for (const char* p = s;; ++p) {
        if (*p == ',' || *p == '\0') {
            if (!cur.empty()) out.push_back(cur);
            cur.clear();
            if (*p == '\0') break;
        } else {
            cur += *p;
        }
    }
    return out;
}

bool parse_kv(const std::string& name, tensor_type& t) {
    if (name == "f32") t = tensor_type::F32;
    else if (name == "f16") t = tensor_type::F16;
    else if (name == "bf16") t = tensor_type::BF16;
    else if (name == "q8_0") t = tensor_type::Q8_0;
    else return false;
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    int threads = 2, n_head = 16, n_head_kv = 4, head_dim = 128, layers = 20, mla_rank = 0, mla_rope = 0;
    double budget = 1.0;
    std::vector<int> contexts = {512, 2048, 8192};
    std::vector<std::string> kv_names = {"f16", "q8_0"};
    for (int i = 1; i < argc; ++i) {
        const bool has = i + 1 < argc;
        if (!std::strcmp(argv[i], "--threads") && has) threads = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--ctx") && has) {
            contexts.clear();
            for (const std::string& c : split(argv[++i])) contexts.push_back(std::atoi(c.c_str()));
        } else if (!std::strcmp(argv[i], "--kv") && has) kv_names = split(argv[++i]);
        else if (!std::strcmp(argv[i], "--heads") && has) {
            if (std::sscanf(argv[++i], "%d:%d", &n_head, &n_head_kv) != 2) n_head = 0;
        } else if (!std::strcmp(argv[i], "--head-dim") && has) head_dim = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--layers") && has) layers = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--mla") && has) {
            if (std::sscanf(argv[++i], "%d:%d", &mla_rank, &mla_rope) != 2 || mla_rank < 32 || mla_rank % 32 != 0 || mla_rope < 0 || mla_rope % 32 != 0) {
                std::fprintf(stderr, "bench_attention: --mla takes RANK:ROPE, multiples of 32\n");
                return 2;
            }
            n_head_kv = 1;
        }
        else if (!std::strcmp(argv[i], "--budget") && has) budget = std::atof(argv[++i]);
        else {
            std::fprintf(stderr, "bench_attention: unknown or incomplete option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (threads < 1 || n_head < 1 || n_head_kv < 1 || n_head % n_head_kv != 0 || head_dim < 32 || head_dim % 32 != 0 || layers < 1 ||
        budget <= 0) {
        std::fprintf(stderr, "bench_attention: --heads Q:KV needs Q a multiple of KV; --head-dim a multiple of 32; threads, layers, budget > 0\n");
        return 2;
    }
    for (int c : contexts) {
        if (c < 1) {
            std::fprintf(stderr, "bench_attention: --ctx takes positive lengths\n");
            return 2;
        }
    }
    try {
        backend_params bp;
        bp.n_threads = threads;
        const std::unique_ptr<backend> be = backend_create_cpu(bp);
        if (mla_rank > 0) {
            std::printf("%s, %d threads, %d heads over a latent of %d + %d, %d layers cycled\n", be->name().c_str(), be->threads(), n_head, mla_rank,
                        mla_rope, layers);
        } else {
            std::printf("%s, %d threads, %d:%d heads of %d, %d layers cycled\n", be->name().c_str(), be->threads(), n_head, n_head_kv, head_dim,
                        layers);
        }
        std::printf("%-5s %7s %10s %10s %8s   %s\n", "kv", "ctx", "mean us", "best us", "GB/s", "output hash");
        for (const std::string& kv_name : kv_names) {
            tensor_type type;
            if (!parse_kv(kv_name, type)) {
                std::fprintf(stderr, "bench_attention: --kv takes f32, f16, bf16, q8_0, not '%s'\n", kv_name.c_str());
                return 2;
            }
            for (int ctx : contexts) {
                model_config c;
                c.n_layer = layers;
                c.n_head = n_head;
                c.n_head_kv = n_head_kv;
                c.head_dim_k = c.head_dim_v = head_dim;
                if (mla_rank > 0) {
                    c.mla = true;
                    c.kv_lora_rank = mla_rank;
                    c.head_dim_k = mla_rank + mla_rope;
                    c.head_dim_v = mla_rank;
                }
                c.n_embd = n_head * head_dim;
                const std::unique_ptr<kv_cache> kv = be->new_kv_cache(c, ctx + 1, type);
                std::mt19937 rng(1);
                std::normal_distribution<float> gauss(0.0f, 1.0f);
                const size_t k_dim = size_t(n_head_kv) * size_t(c.head_dim_k), v_dim = size_t(n_head_kv) * size_t(c.head_dim_v);
                std::vector<float> k(k_dim * size_t(ctx + 1)), v(v_dim * size_t(ctx + 1)), q(size_t(n_head) * size_t(c.head_dim_k)),
                    out(size_t(n_head) * size_t(c.head_dim_v));
                for (float& x : k) x = gauss(rng);
                for (float& x : v) x = gauss(rng);
                for (float& x : q) x = 0.3f * gauss(rng);
                be->begin();
                // positions 0..ctx: the keys and values before the token, and its own
                for (int l = 0; l < layers; ++l) be->kv_store(*kv, l, k.data(), mla_rank > 0 ? nullptr : v.data(), 0, ctx + 1);
                double spent = 0, best = 1e30;
                int64_t calls = 0;
                while (calls < 2 * layers || spent < budget) {
                    const auto t0 = std::chrono::steady_clock::now();
                    be->attention(*kv, int(calls % layers), q.data(), 1, ctx, out.data());
                    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                    spent += s;
                    best = std::min(best, s);
                    ++calls;
                }
                be->end();
                uint64_t hash = 1469598103934665603ull;  // FNV-1a of the output bytes
                for (float f : out) {
                    uint32_t b;
                    std::memcpy(&b, &f, 4);
                    hash = (hash ^ b) * 1099511628211ull;
                }
                const double mean = spent / double(calls);
                // Bytes of one layer's keys and values (MLA: the latent rows, read for both).
                const double per_elem = double(row_size(type, 32)) / 32.0;
                const double bytes = double(ctx + 1) * per_elem * double(mla_rank > 0 ? k_dim : k_dim + v_dim);
                std::printf("%-5s %7d %10.1f %10.1f %8.1f   %016llx\n", kv_name.c_str(), ctx, mean * 1e6, best * 1e6, bytes / mean * 1e-9,
                            (unsigned long long)hash);
                std::fflush(stdout);
            }
        }
    } catch (const error& e) {
        std::fprintf(stderr, "bench_attention: %s\n", e.what());
        return 1;
    }
    return 0;
}
