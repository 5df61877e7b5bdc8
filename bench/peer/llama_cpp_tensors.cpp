// llama.cpp's intermediate tensors for one prompt, for numerics work: every F32 tensor of the
// graph (attn_norm-0, Qcur-0, kq_soft_max-0, ffn_swiglu-0, ...) as llama.cpp computed it, through
// its eval callback, plus the logits of every position. Comparing them op by op with moerun's is
// how moerun's summation orders were matched to llama.cpp's (quant/types.h, cpu/vector_ops.h).
//   g++ -O2 -std=c++17 bench/peer/llama_cpp_tensors.cpp -I<llama.cpp>/include -I<llama.cpp>/ggml/include
//       -L<bins> -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -lggml-base -Wl,-rpath,<bins> -o llama_cpp_tensors
//   (one command; <llama.cpp> is a clone of node-llama-cpp's llama/gitRelease.bundle)
//   llama_cpp_tensors MODEL.gguf BINS_DIR OUT TOKEN...
// BINS_DIR holds node-llama-cpp's prebuilt libraries; a folder with only one libggml-cpu-<variant>.so
// (symlinks) picks that CPU variant (haswell for AVX2, zen4 or skylakex for AVX-512).
// OUT: records of name (64 bytes, NUL-padded), ne[4] (int64), then the floats; OUT.logits: the
// logits, n_tokens x n_vocab floats. Environment: KV_F16=1 for an F16 KV cache (default F32),
// NO_TENSORS=1 for logits only (the callback splits the graph, which does not change the numbers).
// Settings are the test oracle's: CPU, 1 thread, no flash attention, batch = context = 128.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

static FILE* g_out = nullptr;

static bool on_tensor(ggml_tensor* t, bool ask, void*) {
    if (ask) return true;  // every tensor
    if (t->type != GGML_TYPE_F32 || !ggml_is_contiguous(t)) return true;
    std::vector<float> data(size_t(ggml_nelements(t)));
    ggml_backend_tensor_get(t, data.data(), 0, ggml_nbytes(t));
    char name[64] = {0};
    std::memcpy(name, t->name, std::min(std::strlen(t->name), sizeof(name) - 1));
    const int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
    std::fwrite(name, 1, sizeof(name), g_out);
    std::fwrite(ne, sizeof(int64_t), 4, g_out);
    std::fwrite(data.data(), sizeof(float), data.size(), g_out);
    return true;
}

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s MODEL.gguf BINS_DIR OUT TOKEN...\n", argv[0]);
        return 2;
    }
    g_out = std::fopen(argv[3], "wb");
    if (!g_out) { std::fprintf(stderr, "cannot write %s\n", argv[3]); return 1; }
    llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
    llama_backend_init();
    ggml_backend_load_all_from_path(argv[2]);
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model* model = llama_model_load_from_file(argv[1], mp);
    if (!model) { std::fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    std::vector<llama_token> tokens;
    for (int i = 4; i < argc; ++i) tokens.push_back(std::atoi(argv[i]));

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = 128;
    cp.n_threads = cp.n_threads_batch = 1;
    cp.type_k = cp.type_v = std::getenv("KV_F16") ? GGML_TYPE_F16 : GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    if (!std::getenv("NO_TENSORS")) cp.cb_eval = on_tensor;
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx || tokens.size() > 128) { std::fprintf(stderr, "cannot create a context for %zu tokens\n", tokens.size()); return 1; }

    llama_batch batch = llama_batch_init(int32_t(tokens.size()), 0, 1);
    for (size_t i = 0; i < tokens.size(); ++i) {
        batch.token[i] = tokens[i];
        batch.pos[i] = llama_pos(i);
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    batch.n_tokens = int32_t(tokens.size());
    if (llama_decode(ctx, batch) != 0) { std::fprintf(stderr, "decode failed\n"); return 1; }

    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    FILE* logits = std::fopen((std::string(argv[3]) + ".logits").c_str(), "wb");
    for (size_t i = 0; i < tokens.size(); ++i) std::fwrite(llama_get_logits_ith(ctx, int32_t(i)), sizeof(float), size_t(n_vocab), logits);
    std::fclose(logits);
    std::fclose(g_out);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
