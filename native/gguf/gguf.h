// GGUF reader: maps a file read-only and parses its header, metadata and tensor infos without
// touching the weights. Every count, offset and size is checked against the file size (with
// overflow checks) before use; a malformed file throws moerun::error(bad_format) naming the file,
// the field and its byte offset.
//
// Layout (little endian): magic "GGUF" | u32 version (2, 3) | u64 n_tensors | u64 n_kv |
//   n_kv x (string key, u32 value type, value) | n_tensors x (string name, u32 n_dims,
//   n_dims x i64 ne, u32 type, u64 offset) | padding to general.alignment | tensor data.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../quant/types.h"

namespace moerun {

enum class gguf_type : uint32_t {
    u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
    string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};
const char* gguf_type_name(gguf_type type);
size_t gguf_type_size(gguf_type type);  // bytes of a fixed-size scalar; 0 for string/array

struct gguf_value {
    gguf_type type = gguf_type::u8;
    // Scalars, widened: integers in `i` (u64 values above INT64_MAX keep their bits), floats in
    // `f`, booleans in `i` (0/1).
    int64_t i = 0;
    double f = 0;
    std::string_view str;  // string (points into the mapping)
    // Arrays: element type and count. Fixed-size elements stay in the mapping (`data`, little
    // endian, unaligned); strings and nested arrays are parsed into `strings` / `items`.
    gguf_type elem_type = gguf_type::u8;
    uint64_t count = 0;
    const uint8_t* data = nullptr;
    std::vector<std::string_view> strings;
    std::vector<gguf_value> items;

    bool is_integer() const;
    bool is_float() const { return type == gguf_type::f32 || type == gguf_type::f64; }
    bool is_number() const { return is_integer() || is_float(); }
};

struct gguf_tensor_info {
    std::string name;
    uint32_t n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
    tensor_type type = tensor_type::F32;
    uint64_t offset = 0;   // from the start of the data section
    uint64_t n_bytes = 0;
    const uint8_t* data = nullptr;  // into the mapping

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class gguf_file {
public:
    // Opens and validates `path`. Throws moerun::error (io or bad_format).
    static std::unique_ptr<gguf_file> open(const std::string& path);
    // Parses an in-memory copy of a file's bytes (fuzzing, tests); `name` stands in for the path
    // in messages.
    static std::unique_ptr<gguf_file> open_memory(const uint8_t* data, size_t size, const std::string& name);
    ~gguf_file();
    gguf_file(const gguf_file&) = delete;
    gguf_file& operator=(const gguf_file&) = delete;

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t file_size() const { return size_; }
    uint64_t data_offset() const { return data_offset_; }
    uint32_t alignment() const { return alignment_; }

    const std::vector<std::pair<std::string, gguf_value>>& metadata() const { return kv_; }
    const std::vector<gguf_tensor_info>& tensors() const { return tensors_; }

    const gguf_value* find(std::string_view key) const;
    const gguf_tensor_info* find_tensor(std::string_view name) const;

    // Typed lookups. A present key of the wrong type is a bad_format error naming the key.
    std::optional<int64_t> get_int(std::string_view key) const;
    std::optional<double> get_float(std::string_view key) const;  // accepts integers too
    std::optional<bool> get_bool(std::string_view key) const;
    std::optional<std::string> get_string(std::string_view key) const;

    // Advises the kernel to read all tensor data ahead (madvise WILLNEED).
    void prefetch() const;
    // Replaces the file's mapping by a private copy of its bytes at the same addresses, so every
    // pointer into it (tensor data, metadata) stays valid: the file is read (pread, 64 MiB chunks
    // by n_threads readers; step(done, total) from this thread every few ms, and may throw to
    // stop) into anonymous memory, which is then made read-only and moved over the mapping (mremap). A file truncated later no longer
    // matters. Throws error(io) on a read error or a file that ends early, error(out_of_memory)
    // when the memory cannot be had, error(unsupported) where mremap is missing (not Linux).
    // Nothing changes unless it succeeds. Does nothing for open_memory's copy.
    // edit(copy, base), if given, runs once the copy is filled and before it is sealed read-only:
    // file byte base[i] is then writable at copy[i].
    void copy_into_memory(int n_threads, const std::function<void(uint64_t done, uint64_t total)>& step,
                          const std::function<void(uint8_t* copy, const uint8_t* base)>& edit = nullptr);
    // Whether copy_into_memory works on this system (Linux; elsewhere it is error(unsupported)).
    static constexpr bool can_copy_into_memory() {
#if defined(__linux__)
        return true;
#else
        return false;
#endif
    }
    // True after copy_into_memory, and for open_memory's copy: no byte is read from the file.
    bool in_private_memory() const { return copied_ || fd_ < 0; }
    // Throws error(io) when the mapped file is now shorter than when it was mapped: its tail pages
    // would raise SIGBUS when read. A file replaced by rename keeps its old mapping and passes.
    // One fstat; a truncation racing a running evaluation is not caught (see README, "Faults").
    void check_not_truncated() const;

    // Reads n bytes of the file from `offset` into dst with pread (no page of the mapping touched);
    // thread-safe. Throws error(io) on a read error or a file now shorter.
    void read_range(uint64_t offset, uint64_t n, uint8_t* dst) const;
    // The first byte of the file as mapped (or copied): a tensor's data is mapping() + its offset
    // in the file.
    const uint8_t* mapping() const { return base_; }

private:
    gguf_file() = default;
    void parse();
    void read_into(uint8_t* dst, int n_threads, const std::function<void(uint64_t done, uint64_t total)>& step) const;

    std::string path_;
    int fd_ = -1;
    bool copied_ = false;         // copy_into_memory replaced the mapping
    std::vector<uint8_t> owned_;  // open_memory's copy (base_ points into it)
    const uint8_t* base_ = nullptr;

    uint64_t size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, gguf_value>> kv_;
    std::vector<gguf_tensor_info> tensors_;
};

}  // namespace moerun
