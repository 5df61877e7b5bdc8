// llama.cpp as the peer, without Node: prompt (pp) and decode (tg) tokens/s of a GGUF file through
// llama.cpp's public C API, linked against node-llama-cpp's prebuilt libraries. Used on machines
// that have no Node (the GPU host), next to moerun's native/test/run_model on the same file.
//   g++ -O2 -std=c++17 bench/peer/llama_cpp_bench.cpp -I<llama.cpp>/include -I<llama.cpp>/ggml/include \
//       -L<bins> -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -lggml-base -Wl,-rpath,<bins> -o llama_cpp_bench
//   llama_cpp_bench MODEL.gguf BINS_DIR THREADS N_PROMPT N_GEN [REPEATS]
// THREADS may be a list (1,2,4,8,16): the model is loaded once (llama.cpp repacks some types at
// load, which takes long) and each count runs in turn on one context, after an excluded warm-up.
// Each count prints one line per repeat.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ggml-backend.h"
#include "llama.h"

static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int main(int argc, char** argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: %s MODEL.gguf BINS_DIR THREADS[,THREADS...] N_PROMPT N_GEN [REPEATS]\n", argv[0]);
        return 2;
    }
    std::vector<int> thread_counts;
    for (const char* p = argv[3]; *p;) {
        char* end = nullptr;
        const long t = std::strtol(p, &end, 10);
        if (end == p || t < 1) { std::fprintf(stderr, "bad THREADS '%s'\n", argv[3]); return 2; }
        thread_counts.push_back(int(t));
        p = *end == ',' ? end + 1 : end;
    }
    if (thread_counts.empty()) { std::fprintf(stderr, "bad THREADS '%s'\n", argv[3]); return 2; }
    const int threads = *std::max_element(thread_counts.begin(), thread_counts.end());
    const int n_prompt = std::atoi(argv[4]), n_gen = std::atoi(argv[5]), repeats = argc > 6 ? std::max(1, std::atoi(argv[6])) : 1;
    llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
    llama_backend_init();
    ggml_backend_load_all_from_path(argv[2]);
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model* model = llama_model_load_from_file(argv[1], mp);
    if (!model) { std::fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_prompt + n_gen + 16;
    cp.n_batch = cp.n_ubatch = n_prompt > 0 ? n_prompt : 1;
    cp.n_threads = cp.n_threads_batch = threads;
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx) { std::fprintf(stderr, "cannot create a context\n"); return 1; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    std::vector<llama_token> prompt(static_cast<size_t>(n_prompt));
    for (int i = 0; i < n_prompt; ++i) prompt[size_t(i)] = 1 + (i * 37) % (n_vocab - 1);
    for (const int t : thread_counts) {
        llama_set_n_threads(ctx, t, t);
        // Warm-up (excluded): one token, then clear the cache.
        llama_token t0 = 1;
        llama_decode(ctx, llama_batch_get_one(&t0, 1));
        llama_memory_clear(llama_get_memory(ctx), true);
        for (int r = 0; r < repeats; ++r) {
            auto start = std::chrono::steady_clock::now();
            if (n_prompt > 0 && llama_decode(ctx, llama_batch_get_one(prompt.data(), n_prompt)) != 0) return 1;
            const double pp = n_prompt / seconds_since(start);
            start = std::chrono::steady_clock::now();
            llama_token tok = 5;
            for (int i = 0; i < n_gen; ++i) {
                if (llama_decode(ctx, llama_batch_get_one(&tok, 1)) != 0) return 1;
                tok = 1 + (tok * 7 + i) % (n_vocab - 1);
            }
            const double tg = n_gen / seconds_since(start);
            std::printf("llama.cpp: pp%d %.1f tok/s, tg%d %.1f tok/s (%d threads)\n", n_prompt, pp, n_gen, tg, t);
            std::fflush(stdout);
            llama_memory_clear(llama_get_memory(ctx), true);
        }
    }
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
