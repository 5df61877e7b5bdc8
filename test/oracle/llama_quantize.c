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
//   --imatrix FILE (an imatrix GGUF, as llama-quantize --imatrix loads it: each tensor's sums divided
//     by its per-matrix counts, 1 where a count is 0; and the quantize.imatrix.* keys it records),
//   --dry-run (llama-quantize's: no file; its per-tensor log, with each tensor's new type, on stdout).
#include <ctype.h>
#include <math.h>
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

// The importance matrix in an imatrix GGUF file (NULL-terminated), as llama-quantize's load_imatrix
// computes it from common_imatrix_load's entries; NULL if the file cannot be read. Sets *n_entries
// and *n_chunks (imatrix.chunk_count) and *dataset (the first of imatrix.datasets, or NULL).
static struct llama_model_imatrix_data * imatrix_from_file(const char * path, int * n_entries, int * n_chunks, const char ** dataset) {
    struct ggml_context * ctx = NULL;
    struct gguf_init_params gp = { /*no_alloc*/ false, /*ctx*/ &ctx };
    struct gguf_context * g = gguf_init_from_file(path, gp);
    if (!g) {
        fprintf(stderr, "cannot read imatrix %s\n", path);
        return NULL;
    }
    const int64_t ck = gguf_find_key(g, "imatrix.chunk_count");
    const int64_t dk = gguf_find_key(g, "imatrix.datasets");
    *n_chunks = ck >= 0 ? (int) gguf_get_val_u32(g, ck) : 0;
    *dataset = dk >= 0 && gguf_get_arr_n(g, dk) > 0 ? strdup(gguf_get_arr_str(g, dk, 0)) : NULL;
    const int64_t n_tensors = gguf_get_n_tensors(g);
    struct llama_model_imatrix_data * imatrix = calloc((size_t) n_tensors + 1, sizeof *imatrix);
    int n = 0;
    const char * suffix = ".in_sum2";
    for (int64_t i = 0; i < n_tensors; ++i) {
        const char * tname = gguf_get_tensor_name(g, i);
        const size_t len = strlen(tname), sl = strlen(suffix);
        if (len <= sl || strcmp(tname + len - sl, suffix) != 0) continue;
        char * name = strndup(tname, len - sl);
        char counts_name[GGML_MAX_NAME + 16];
        snprintf(counts_name, sizeof counts_name, "%s.counts", name);
        const struct ggml_tensor * sums = ggml_get_tensor(ctx, tname);
        const struct ggml_tensor * counts = ggml_get_tensor(ctx, counts_name);
        if (!counts) {
            fprintf(stderr, "imatrix %s: no %s\n", path, counts_name);
            return NULL;
        }
        const int64_t nval = ggml_nelements(sums), ncounts = ggml_nelements(counts), ne0 = nval / ncounts;
        float * values = malloc((size_t) nval * sizeof(float));
        for (int64_t j = 0; j < ncounts; ++j) {
            const float count = (float) lroundf(((const float *) counts->data)[j]);
            for (int64_t k = 0; k < ne0; ++k) {
                values[j * ne0 + k] = count > 0.0f ? ((const float *) sums->data)[j * ne0 + k] / count : 1.0f;
            }
        }
        imatrix[n].name = name;
        imatrix[n].data = values;
        imatrix[n].size = (size_t) nval;
        ++n;
    }
    *n_entries = n;
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
    struct llama_model_kv_override kv[5];
    memset(kv, 0, sizeof kv);
    int n_kv = 0;
    for (int i = 5; i < argc; ++i) {
        const bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--dry-run") == 0) {
            qp.dry_run = true;
            log_info = true;
        } else if (strcmp(argv[i], "--imatrix-ones") == 0) {
            qp.imatrix = imatrix_of_ones(argv[1]);
            if (!qp.imatrix) return 1;
        } else if (strcmp(argv[i], "--imatrix") == 0 && has_value) {
            // as llama-quantize: the matrix, and the keys it records about it
            const char * file = argv[++i];
            int n_entries = 0, n_chunks = 0;
            const char * dataset = NULL;
            qp.imatrix = imatrix_from_file(file, &n_entries, &n_chunks, &dataset);
            if (!qp.imatrix) return 1;
            strcpy(kv[n_kv].key, "quantize.imatrix.file");
            kv[n_kv].tag = LLAMA_KV_OVERRIDE_TYPE_STR;
            strncpy(kv[n_kv++].val_str, file, 127);
            if (dataset) {
                strcpy(kv[n_kv].key, "quantize.imatrix.dataset");
                kv[n_kv].tag = LLAMA_KV_OVERRIDE_TYPE_STR;
                strncpy(kv[n_kv++].val_str, dataset, 127);
            }
            strcpy(kv[n_kv].key, "quantize.imatrix.entries_count");
            kv[n_kv].tag = LLAMA_KV_OVERRIDE_TYPE_INT;
            kv[n_kv++].val_i64 = n_entries;
            if (n_chunks > 0) {
                strcpy(kv[n_kv].key, "quantize.imatrix.chunks_count");
                kv[n_kv].tag = LLAMA_KV_OVERRIDE_TYPE_INT;
                kv[n_kv++].val_i64 = n_chunks;
            }
            qp.kv_overrides = kv;  // terminated by the zeroed entry after the last
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
                        "                                  [--token-embedding-type T] [--imatrix-ones | --imatrix FILE] [--dry-run]\n", argv[0], argv[0]);
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
