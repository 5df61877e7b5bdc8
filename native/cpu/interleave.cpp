#include "interleave.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "kernels.h"

namespace moerun {

namespace {
// Where byte `at` of block b of row r goes in its group (at < block_bytes): the block's dwords
// first, 16 rows per dword, then its last block_bytes % 4 bytes row by row.
size_t interleaved_offset(size_t block_bytes, size_t b, int r, size_t at) {
    const size_t dwords = block_bytes / 4, group_block = b * block_bytes * k_interleave_rows;
    if (at < 4 * dwords) return group_block + 4 * ((at / 4) * k_interleave_rows + size_t(r)) + at % 4;
    return group_block + 4 * dwords * k_interleave_rows + size_t(r) * (block_bytes - 4 * dwords) + (at - 4 * dwords);
}
}  // namespace

void interleave_group(const uint8_t* rows, size_t row_bytes, size_t block_bytes, uint8_t* out) {
    // interleaved_offset, unrolled: the block's dwords 16 rows at a time, then the rows' tails.
    const size_t dwords = block_bytes / 4, tail = block_bytes % 4;
    for (size_t b = 0; b < row_bytes / block_bytes; ++b) {
        uint8_t* o = out + b * block_bytes * k_interleave_rows;
        const uint8_t* blk = rows + b * block_bytes;
        for (size_t i = 0; i < dwords; ++i) {
            for (int r = 0; r < k_interleave_rows; ++r, o += 4) std::memcpy(o, blk + size_t(r) * row_bytes + 4 * i, 4);
        }
        for (int r = 0; tail && r < k_interleave_rows; ++r, o += tail) std::memcpy(o, blk + size_t(r) * row_bytes + 4 * dwords, tail);
    }
}

void deinterleave_row(const uint8_t* group, size_t row_bytes, size_t block_bytes, int r, uint8_t* out) {
    const size_t tail = block_bytes % 4;
    for (size_t b = 0; b < row_bytes / block_bytes; ++b) {
        uint8_t* blk = out + b * block_bytes;
        for (size_t at = 0; at + 4 <= block_bytes; at += 4) std::memcpy(blk + at, group + interleaved_offset(block_bytes, b, r, at), 4);
        if (tail) std::memcpy(blk + block_bytes - tail, group + interleaved_offset(block_bytes, b, r, block_bytes - tail), tail);
    }
}

bool can_interleave(const tensor& t) {
    if (!t || t.location != memory_location::host || t.ne[1] % k_interleave_rows != 0) return false;
    const cpu_kernels& k = cpu_kernels_of(t.type);
    return k.int8_tile_interleaved != nullptr && t.row_bytes() % k.type_size == 0;
}

uint64_t interleave_weights(model_weights& w, thread_pool& pool, const std::function<uint8_t*(const void*)>& dst, const weight_reader& read,
                            const load_step_fn& step) {
    const bool relocate = bool(read);
    const char* env = std::getenv("MOERUN_INTERLEAVE");
    if (env && std::strcmp(env, "0") == 0) return 0;
    std::map<const void*, const void*> done;  // the weights to rewrite: old bytes -> new; once each
    std::vector<tensor*> todo;                 // one tensor per distinct weight bytes
    uint64_t total = 0;
    for_each_tensor(w, [&](tensor& t, bool matmul_weight) {
        if (!matmul_weight || !can_interleave(t) || t.data == w.token_embd.data || !done.emplace(t.data, nullptr).second) return;
        todo.push_back(&t);
        total += uint64_t(t.rows()) * t.row_bytes();
    });
    // Pieces of about this many bytes between the steps: a fraction of a second each, so that a
    // load of a large model reports progress and stops soon after an abort.
    constexpr size_t k_step_bytes = size_t(64) << 20;
    uint64_t bytes = 0;
    for (tensor* t : todo) {
        const size_t row = t->row_bytes(), block = cpu_kernels_of(t->type).type_size, group = row * k_interleave_rows;
        const uint8_t* const src = static_cast<const uint8_t*>(t->data);
        uint8_t* const out = dst(src);
        const int64_t n_groups = t->rows() / k_interleave_rows;
        const int64_t groups_per_step = std::max<int64_t>(1, int64_t(k_step_bytes / group));
        for (int64_t g0 = 0; g0 < n_groups; g0 += groups_per_step) {
            const int64_t g1 = std::min(n_groups, g0 + groups_per_step);
            // Group by group through a buffer: read (or taken in place), then interleaved into place.
            pool.parallel_for(g1 - g0, 1, [&](int64_t b, int64_t e) {
                thread_local std::vector<uint8_t> tmp;
                tmp.resize(group);
                for (int64_t g = g0 + b; g < g0 + e; ++g) {
                    uint8_t* at = out + size_t(g) * group;
                    if (relocate) {
                        read(src + size_t(g) * group, group, tmp.data());
                        interleave_group(tmp.data(), row, block, at);
                    } else {
                        interleave_group(at, row, block, tmp.data());
                        std::memcpy(at, tmp.data(), group);
                    }
                }
            });
            bytes += uint64_t(g1 - g0) * group;
            if (step) step(bytes, total);
        }
        done[t->data] = relocate ? out : t->data;
    }
    // Every slot on a rewritten weight's bytes (the eligible ones and any other that shares them:
    // it would read interleaved bytes as rows) is marked, and moved with them.
    for_each_tensor(w, [&](tensor& t, bool) {
        const auto it = t ? done.find(t.data) : done.end();
        if (it == done.end()) return;
        t.interleaved = true;
        t.data = it->second;
    });
    return bytes;
}

}  // namespace moerun
