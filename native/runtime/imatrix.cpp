#include "imatrix.h"

#include <cmath>

#include "../base/error.h"

namespace moerun {

namespace {

// llama-imatrix ignores products over fewer rows than this ("small batches").
constexpr int64_t k_min_rows = 16;

bool collected(const tensor& w) { return w.name && w.name->compare(0, 4, "blk.") == 0; }

void check_finite(const std::string& name, const float* v, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(v[i])) {
            throw error(error_code::invalid_argument, format("imatrix: non-finite activations reach '%s'", name.c_str()));
        }
    }
}

}  // namespace

imatrix_entry& imatrix_collector::entry(const std::string& name, int64_t ne0, int64_t n_mat, int64_t n_counts) {
    imatrix_entry& e = entries_[name];
    if (e.sums.empty()) {
        e.sums.assign(size_t(ne0 * n_mat), 0.0f);
        e.counts.assign(size_t(n_counts), 0);
    } else if (e.sums.size() != size_t(ne0 * n_mat) || e.counts.size() != size_t(n_counts)) {
        throw error(error_code::internal, format("imatrix: '%s' seen with %lld x %lld values and %lld counts, then %zu and %zu", name.c_str(),
                                                 (long long)n_mat, (long long)ne0, (long long)n_counts, e.sums.size(), e.counts.size()));
    }
    return e;
}

void imatrix_collector::on_matmul(const tensor& w, const float* x, int64_t m, int64_t stride) {
    if (!collected(w) || m < k_min_rows) return;
    const int64_t ne0 = w.ne[0];
    int64_t n_mat = 1, mat = 0;
    if (w.slice >= 0) {  // one slice of a 3-D weight: the file has the whole shape
        const gguf_tensor_info* info = file_.find_tensor(*w.name);
        n_mat = info ? info->ne[2] * info->ne[3] : w.slice + 1;
        mat = w.slice;
    }
    imatrix_entry& e = entry(*w.name, ne0, n_mat, 1);
    float* acc = e.sums.data() + mat * ne0;
    for (int64_t r = 0; r < m; ++r) {
        const float* xr = x + r * stride;
        for (int64_t j = 0; j < ne0; ++j) acc[j] += xr[j] * xr[j];
    }
    // A weight multiplied slice by slice is one product over the tokens in llama.cpp: its rows are
    // counted once, with the first slice.
    if (mat == 0) e.counts[0] += m;
    check_finite(*w.name, acc, ne0);
}

void imatrix_collector::on_experts(const tensor& w, const int32_t* selected, const int32_t* row_of, int n_tokens, int n_used,
                                   const float* x) {
    if (!collected(w)) return;
    const int64_t ne0 = w.ne[0], n_expert = w.ne[2];
    imatrix_entry& e = entry(*w.name, ne0, n_expert, n_expert);
    std::vector<uint8_t> touched(size_t(n_expert), 0);
    for (int k = 0; k < n_used; ++k) {
        for (int t = 0; t < n_tokens; ++t) {
            const size_t pair = size_t(t) * size_t(n_used) + size_t(k);
            const int32_t ex = selected[pair];
            const float* xr = x + int64_t(row_of[pair]) * ne0;
            float* acc = e.sums.data() + int64_t(ex) * ne0;
            e.counts[size_t(ex)]++;
            touched[size_t(ex)] = 1;
            for (int64_t j = 0; j < ne0; ++j) acc[j] += xr[j] * xr[j];
        }
    }
    for (int64_t ex = 0; ex < n_expert; ++ex) {
        if (touched[size_t(ex)]) check_finite(*w.name, e.sums.data() + ex * ne0, ne0);
    }
}

}  // namespace moerun
