#include "interleave.h"

#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

#include "kernels.h"

namespace moerun {

void interleave_group(const uint8_t* rows, size_t row_bytes, size_t block_bytes, uint8_t* out) {
    const size_t dwords = row_bytes / 4;  // per row: blocks * block_bytes / 4, in order
    (void)block_bytes;                     // dword i of block b is dword b * block_bytes / 4 + i of the row
    for (size_t d = 0; d < dwords; ++d) {
        for (int r = 0; r < k_interleave_rows; ++r) std::memcpy(out + 4 * (d * k_interleave_rows + size_t(r)), rows + size_t(r) * row_bytes + 4 * d, 4);
    }
}

void deinterleave_row(const uint8_t* group, size_t row_bytes, size_t block_bytes, int r, uint8_t* out) {
    (void)block_bytes;
    for (size_t d = 0; d < row_bytes / 4; ++d) std::memcpy(out + 4 * d, group + 4 * (d * k_interleave_rows + size_t(r)), 4);
}

bool can_interleave(const tensor& t) {
    if (!t || t.location != memory_location::host || t.ne[1] % k_interleave_rows != 0) return false;
    const cpu_kernels& k = cpu_kernels_of(t.type);
    return k.int8_tile_interleaved != nullptr && k.type_size % 4 == 0 && t.row_bytes() % k.type_size == 0;
}

uint64_t interleave_weights(model_weights& w, thread_pool& pool, const std::function<uint8_t*(const void*)>& writable) {
    const char* env = std::getenv("MOERUN_INTERLEAVE");
    if (env && std::strcmp(env, "0") == 0) return 0;
    std::set<const void*> done;  // a weight whose bytes another slot shares is rewritten once
    std::vector<tensor*> todo;
    for_each_tensor(w, [&](tensor& t, bool matmul_weight) {
        if (!matmul_weight || !can_interleave(t) || t.data == w.token_embd.data) return;
        todo.push_back(&t);
    });
    uint64_t bytes = 0;
    for (tensor* t : todo) {
        if (done.insert(t->data).second) {
            const size_t row = t->row_bytes(), block = cpu_kernels_of(t->type).type_size, group = row * k_interleave_rows;
            uint8_t* const base = writable(t->data);
            pool.parallel_for(t->rows() / k_interleave_rows, 1, [&](int64_t b, int64_t e) {
                thread_local std::vector<uint8_t> tmp;
                tmp.resize(group);
                for (int64_t g = b; g < e; ++g) {
                    uint8_t* at = base + size_t(g) * group;
                    interleave_group(at, row, block, tmp.data());
                    std::memcpy(at, tmp.data(), group);
                }
            });
            bytes += uint64_t(t->rows()) * row;
        }
        t->interleaved = true;
    }
    // A slot that shares a rewritten weight's bytes but was not eligible itself would now read
    // interleaved bytes as rows: mark it too (the same bytes, the same type and shape).
    for_each_tensor(w, [&](tensor& t, bool) {
        if (t && !t.interleaved && done.count(t.data)) t.interleaved = true;
    });
    return bytes;
}

}  // namespace moerun
