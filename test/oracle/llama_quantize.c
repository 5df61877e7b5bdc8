// llama.cpp's quantizer (llama_model_quantize in node-llama-cpp's prebuilt libllama), for writing
// test files in the types moerun reads but does not write yet (IQ1/IQ2/IQ3, TQ, MXFP4).
//
//   llama_quantize IN.gguf OUT.gguf FTYPE TOKEN_EMBD_TYPE OUTPUT_TYPE
//
// FTYPE is a llama_ftype value; every quantizable tensor gets its type ("pure": no mix), except
// token_embd and output, which get the given ggml types. An importance matrix of ones is passed for
// every tensor (IQ2_XXS, IQ2_XS and IQ1_S refuse to quantize without one): n_per_row * n_expert
// values each, as llama-imatrix writes them.
//
//   llama_quantize IN.gguf OUT.gguf FTYPE recipe|pure
//
// What `llama-quantize [--pure] IN OUT FTYPE` writes: llama.cpp's default parameters, no importance
// matrix; `recipe` applies FTYPE's per-tensor mix, `pure` gives every tensor FTYPE's type.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "llama.h"

// llama.cpp's log, errors only (it logs every tensor at info level).
static void log_errors(enum ggml_log_level level, const char * text, void * user) {
    (void) user;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char ** argv) {
    const bool plain = argc == 5 && (strcmp(argv[4], "recipe") == 0 || strcmp(argv[4], "pure") == 0);
    if (argc != 6 && !plain) {
        fprintf(stderr, "usage: %s IN.gguf OUT.gguf FTYPE TOKEN_EMBD_TYPE OUTPUT_TYPE\n"
                        "       %s IN.gguf OUT.gguf FTYPE recipe|pure\n", argv[0], argv[0]);
        return 2;
    }
    if (plain) {
        llama_log_set(log_errors, NULL);
        llama_backend_init();
        struct llama_model_quantize_params qp = llama_model_quantize_default_params();
        qp.nthread = 2;
        qp.ftype = (enum llama_ftype) atoi(argv[3]);
        qp.pure = strcmp(argv[4], "pure") == 0;
        const uint32_t rc = llama_model_quantize(argv[1], argv[2], &qp);
        if (rc != 0) fprintf(stderr, "llama_model_quantize failed (%u)\n", rc);
        return rc == 0 ? 0 : 1;
    }
    struct ggml_context * meta = NULL;
    struct gguf_init_params gp = { /*no_alloc*/ true, /*ctx*/ &meta };
    struct gguf_context * g = gguf_init_from_file(argv[1], gp);
    if (!g) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    const int64_t n_tensors = gguf_get_n_tensors(g);
    struct llama_model_imatrix_data * imatrix = calloc((size_t) n_tensors + 1, sizeof *imatrix);
    for (int64_t i = 0; i < n_tensors; ++i) {
        const struct ggml_tensor * t = ggml_get_tensor(meta, gguf_get_tensor_name(g, i));
        const size_t n = (size_t) (t->ne[0] * t->ne[2]);
        float * ones = malloc(n * sizeof(float));
        for (size_t j = 0; j < n; ++j) ones[j] = 1.0f;
        imatrix[i].name = t->name;
        imatrix[i].data = ones;
        imatrix[i].size = n;
    }

    llama_log_set(log_errors, NULL);
    llama_backend_init();
    struct llama_model_quantize_params qp = llama_model_quantize_default_params();
    qp.nthread = 2;  // CI has 2 cores
    qp.ftype = (enum llama_ftype) atoi(argv[3]);
    qp.token_embedding_type = (enum ggml_type) atoi(argv[4]);
    qp.output_tensor_type = (enum ggml_type) atoi(argv[5]);
    qp.pure = true;
    qp.imatrix = imatrix;
    const uint32_t rc = llama_model_quantize(argv[1], argv[2], &qp);
    if (rc != 0) fprintf(stderr, "llama_model_quantize failed (%u)\n", rc);
    return rc == 0 ? 0 : 1;
}
