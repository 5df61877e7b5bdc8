#include "quantize.h"

#include <strings.h>

#include "../base/thread_pool.h"
#include "../base/error.h"

namespace moerun {

tensor_type tensor_type_from_name(const char* name) {
    for (uint32_t id = 0; id < k_tensor_type_count; ++id) {
        const type_traits& t = type_traits_reference(tensor_type(id));
        if (t.name && strcasecmp(t.name, name) == 0) return tensor_type(id);
    }
    throw error(error_code::invalid_argument, format("unknown tensor type '%s'", name));
}

namespace {
const cpu_kernels& checked(tensor_type type, int64_t row_len, bool encode) {
    const cpu_kernels& t = cpu_kernels_of(type);
    if (!t.name || (encode ? !t.from_float : !t.to_float)) {
        throw error(error_code::unsupported, format("%s %s is not supported", encode ? "quantizing to" : "dequantizing", tensor_type_name(type)));
    }
    if (row_len <= 0 || row_len % t.block_size != 0) {
        throw error(error_code::invalid_argument, format("row length %lld is not a positive multiple of %s's block size %lld",
                                                         (long long)row_len, t.name, (long long)t.block_size));
    }
    return t;
}
}  // namespace

namespace {
// Types whose llama.cpp quantizer drops an importance matrix (ggml_quantize_chunk passes it, the
// type's quantize_* ignores it).
bool ignores_importance(tensor_type t) {
    using T = tensor_type;
    return t == T::F32 || t == T::F16 || t == T::BF16 || t == T::Q8_0 || t == T::TQ1_0 || t == T::TQ2_0 || t == T::MXFP4;
}
}  // namespace

std::vector<uint8_t> quantize_rows(tensor_type type, const float* src, int64_t n_rows, int64_t row_len, int n_threads,
                                   const row_importance* importance) {
    const type_traits& ref = type_traits_reference(type);
    const bool weighted = importance && importance->values && !ignores_importance(type);
    const cpu_kernels* t = nullptr;
    if (weighted) {
        if (!ref.from_float_imatrix) {
            throw error(error_code::unsupported, format("quantizing to %s with an importance matrix is not supported yet", tensor_type_name(type)));
        }
        if (row_len <= 0 || row_len % ref.block_size != 0) {
            throw error(error_code::invalid_argument, format("row length %lld is not a positive multiple of %s's block size %lld",
                                                             (long long)row_len, ref.name, (long long)ref.block_size));
        }
        const int64_t last_matrix = importance->rows_per_matrix > 0 ? (importance->first_row + n_rows - 1) / importance->rows_per_matrix : -1;
        if (importance->rows_per_matrix <= 0 || importance->first_row < 0 || (last_matrix + 1) * row_len > importance->n_values) {
            throw error(error_code::invalid_argument, format("importance matrix of %lld values does not cover rows %lld..%lld at %lld rows of %lld per matrix",
                                                             (long long)importance->n_values, (long long)importance->first_row,
                                                             (long long)(importance->first_row + n_rows), (long long)importance->rows_per_matrix, (long long)row_len));
        }
    } else if (!cpu_kernels_of(type).from_float && ref.from_float_imatrix) {
        throw error(error_code::invalid_argument, format("quantizing to %s needs an importance matrix (as in llama.cpp)", tensor_type_name(type)));
    } else {
        t = &checked(type, row_len, true);
    }
    const size_t row_bytes = row_size(type, row_len);
    std::vector<uint8_t> out(row_bytes * size_t(n_rows));
    thread_pool pool(n_threads > 0 ? n_threads : physical_core_count());
    pool.parallel_for(n_rows, 1, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            uint8_t* dst = out.data() + size_t(r) * row_bytes;
            if (weighted) {
                const int64_t matrix = (importance->first_row + r) / importance->rows_per_matrix;
                ref.from_float_imatrix(src + r * row_len, dst, row_len, importance->values + matrix * row_len);
            } else {
                t->from_float(src + r * row_len, dst, row_len);
            }
        }
    });
    return out;
}

std::vector<float> dequantize_rows(tensor_type type, const uint8_t* src, size_t src_bytes, int64_t n_rows, int64_t row_len, int n_threads) {
    const cpu_kernels& t = checked(type, row_len, false);
    const size_t row_bytes = row_size(type, row_len);
    if (row_bytes * size_t(n_rows) != src_bytes) {
        throw error(error_code::invalid_argument, format("%zu bytes is not %lld rows of %lld %s elements (%zu bytes)", src_bytes,
                                                         (long long)n_rows, (long long)row_len, t.name, row_bytes * size_t(n_rows)));
    }
    std::vector<float> out(size_t(n_rows) * size_t(row_len));
    thread_pool pool(n_threads > 0 ? n_threads : physical_core_count());
    pool.parallel_for(n_rows, 1, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) t.to_float(src + size_t(r) * row_bytes, out.data() + r * row_len, row_len);
    });
    return out;
}

}  // namespace moerun
