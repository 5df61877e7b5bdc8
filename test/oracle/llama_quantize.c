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
//   llama_quantize IN.gguf OUT.gguf FTYPE recipe|pure [OPTIONS]
//
// What `llama-quantize [--pure] [OPTIONS] IN OUT FTYPE` writes: llama.cpp's default parameters, no
// importance matrix; `recipe` applies FTYPE's per-tensor mix, `pure` gives every tensor FTYPE's type.
// OPTIONS, as llama-quantize's (types by ggml name, patterns lower-cased as it does):
//   --tensor-type PATTERN=TYPE (repeatable), --output-tensor-type TYPE, --token-embedding-type TYPE,
//   --imatrix-ones (an importance matrix of ones, as above: the mixes that need one),
//   --dry-run (llama-quantize's: no file; its per-tensor log, with each tensor's new type, on stdout).
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "llama.h"

// llama.cpp's log, errors only (it logs every tensor at info level); with --dry-run that per-tensor
// info goes to stdout.
static bool log_info = false;
static void log_errors(enum ggml_log_level level, const char * text, void * user) {
    (void) user;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
    else if (log_info && (level == GGML_LOG_LEVEL_INFO || level == GGML_LOG_LEVEL_CONT)) fputs(text, stdout);
}

// An importance matrix of ones for every tensor of the file (NULL-terminated), or NULL.
static struct llama_model_imatrix_data * imatrix_of_ones(const char * path) {
    struct ggml_context * meta = NULL;
    struct gguf_init_params gp = { /*no_alloc*/ true, /*ctx*/ &meta };
    struct gguf_context * g = gguf_init_from_file(path, gp);
    if (!g) {
        fprintf(stderr, "cannot read %s\n", path);
        return NULL;
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
    return imatrix;
}

// A ggml type by name, case-insensitive (llama-quantize's parse_ggml_type); GGML_TYPE_COUNT if unknown.
static enum ggml_type type_by_name(const char * name) {
    for (int i = 0; i < GGML_TYPE_COUNT; ++i) {
        const char * n = ggml_type_name((enum ggml_type) i);
        if (n && strcasecmp(n, name) == 0) return (enum ggml_type) i;
    }
    fprintf(stderr, "unknown ggml type '%s'\n", name);
    return GGML_TYPE_COUNT;
}

static int quantize_file(int argc, char ** argv) {
    struct llama_model_quantize_params qp = llama_model_quantize_default_params();
    qp.nthread = 2;  // CI has 2 cores
    qp.ftype = (enum llama_ftype) atoi(argv[3]);
    qp.pure = strcmp(argv[4], "pure") == 0;
    struct llama_model_tensor_override * overrides = calloc((size_t) argc, sizeof *overrides);
    int n_overrides = 0;
    for (int i = 5; i < argc; ++i) {
        const bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--dry-run") == 0) {
            qp.dry_run = true;
            log_info = true;
        } else if (strcmp(argv[i], "--imatrix-ones") == 0) {
            qp.imatrix = imatrix_of_ones(argv[1]);
            if (!qp.imatrix) return 1;
        } else if (strcmp(argv[i], "--tensor-type") == 0 && has_value) {
            char * spec = argv[++i];
            char * eq = strchr(spec, '=');
            if (!eq || eq == spec) {
                fprintf(stderr, "malformed --tensor-type '%s'\n", spec);
                return 2;
            }
            *eq = '\0';
            for (char * c = spec; *c; ++c) *c = (char) tolower((unsigned char) *c);
            overrides[n_overrides].pattern = spec;
            overrides[n_overrides].type = type_by_name(eq + 1);
            if (overrides[n_overrides++].type == GGML_TYPE_COUNT) return 2;
        } else if (strcmp(argv[i], "--output-tensor-type") == 0 && has_value) {
            qp.output_tensor_type = type_by_name(argv[++i]);
            if (qp.output_tensor_type == GGML_TYPE_COUNT) return 2;
        } else if (strcmp(argv[i], "--token-embedding-type") == 0 && has_value) {
            qp.token_embedding_type = type_by_name(argv[++i]);
            if (qp.token_embedding_type == GGML_TYPE_COUNT) return 2;
        } else {
            fprintf(stderr, "unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    overrides[n_overrides].pattern = NULL;  // terminator
    if (n_overrides > 0) qp.tt_overrides = overrides;
    const uint32_t rc = llama_model_quantize(argv[1], argv[2], &qp);
    if (rc != 0) fprintf(stderr, "llama_model_quantize failed (%u)\n", rc);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char ** argv) {
    const bool plain = argc >= 5 && (strcmp(argv[4], "recipe") == 0 || strcmp(argv[4], "pure") == 0);
    if (argc != 6 && !plain) {
        fprintf(stderr, "usage: %s IN.gguf OUT.gguf FTYPE TOKEN_EMBD_TYPE OUTPUT_TYPE\n"
                        "       %s IN.gguf OUT.gguf FTYPE recipe|pure [--tensor-type P=T]... [--output-tensor-type T]\n"
                        "                                  [--token-embedding-type T] [--imatrix-ones] [--dry-run]\n", argv[0], argv[0]);
        return 2;
    }
    llama_log_set(log_errors, NULL);
    llama_backend_init();
    if (plain) return quantize_file(argc, argv);

    struct llama_model_quantize_params qp = llama_model_quantize_default_params();
    qp.nthread = 2;  // CI has 2 cores
    qp.ftype = (enum llama_ftype) atoi(argv[3]);
    qp.token_embedding_type = (enum ggml_type) atoi(argv[4]);
    qp.output_tensor_type = (enum ggml_type) atoi(argv[5]);
    qp.pure = true;
    qp.imatrix = imatrix_of_ones(argv[1]);
    if (!qp.imatrix) return 1;
    const uint32_t rc = llama_model_quantize(argv[1], argv[2], &qp);
    if (rc != 0) fprintf(stderr, "llama_model_quantize failed (%u)\n", rc);
    return rc == 0 ? 0 : 1;
}
