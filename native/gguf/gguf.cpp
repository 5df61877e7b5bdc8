#include "gguf.h"

#include <algorithm>
#include <fcntl.h>
#include <sys/stat.h>
#ifdef _WIN32
#include <io.h>
#else
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "../base/error.h"
#include "../base/memory.h"
#include "../base/win32.h"

#ifdef _WIN32
// The POSIX calls below over Win32, for the win32-x64 (MinGW) build: a read-only view of a whole
// file (the file stays open for check_not_truncated). Build with -D_FILE_OFFSET_BITS=64 so stat's
// size is 64-bit. Paths are opened as UTF-16 (open_read_only).
namespace {
constexpr int PROT_READ = 1, MAP_PRIVATE = 2, MADV_WILLNEED = 3;
void* const MAP_FAILED = reinterpret_cast<void*>(-1);

void* mmap(void*, size_t size, int, int, int fd, long long) {
    HANDLE mapping = CreateFileMappingW(reinterpret_cast<HANDLE>(_get_osfhandle(fd)), nullptr, PAGE_READONLY, 0, 0, nullptr);
    if (!mapping) {
        errno = EACCES;
        return MAP_FAILED;
    }
    void* view = MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, size);
    CloseHandle(mapping);  // the view keeps the mapping alive
    if (!view) errno = ENOMEM;
    return view ? view : MAP_FAILED;
}
int munmap(void* p, size_t) { return UnmapViewOfFile(p) ? 0 : -1; }
int madvise(void*, size_t, int) { return 0; }  // no read-ahead hint on Windows
}  // namespace
#endif

namespace moerun {

const char* gguf_type_name(gguf_type type) {
    switch (type) {
        case gguf_type::u8: return "u8";
        case gguf_type::i8: return "i8";
        case gguf_type::u16: return "u16";
        case gguf_type::i16: return "i16";
        case gguf_type::u32: return "u32";
        case gguf_type::i32: return "i32";
        case gguf_type::f32: return "f32";
        case gguf_type::boolean: return "bool";
        case gguf_type::string: return "string";
        case gguf_type::array: return "array";
        case gguf_type::u64: return "u64";
        case gguf_type::i64: return "i64";
        case gguf_type::f64: return "f64";
    }
    return "?";
}

size_t gguf_type_size(gguf_type type) {
    switch (type) {
        case gguf_type::u8: case gguf_type::i8: case gguf_type::boolean: return 1;
        case gguf_type::u16: case gguf_type::i16: return 2;
        case gguf_type::u32: case gguf_type::i32: case gguf_type::f32: return 4;
        case gguf_type::u64: case gguf_type::i64: case gguf_type::f64: return 8;
        default: return 0;
    }
}

bool gguf_value::is_integer() const {
    switch (type) {
        case gguf_type::u8: case gguf_type::i8: case gguf_type::u16: case gguf_type::i16:
        case gguf_type::u32: case gguf_type::i32: case gguf_type::u64: case gguf_type::i64: return true;
        default: return false;
    }
}

namespace {

constexpr int k_max_array_depth = 8;      // nested arrays deeper than this are rejected
constexpr uint32_t k_max_dims = 4;

// Sequential reader over the mapping; every read is bounds-checked and errors carry the offset.
struct cursor {
    const std::string& path;
    const uint8_t* base;
    uint64_t size;
    uint64_t pos = 0;

    [[noreturn]] void fail(const std::string& what) const {
        throw error(error_code::bad_format, format("gguf: %s: %s", path.c_str(), what.c_str()));
    }
    void need(uint64_t n, const char* field) const {
        if (n > size - pos) {
            fail(format("%s at offset %llu needs %llu bytes but the file ends at %llu", field,
                        (unsigned long long)pos, (unsigned long long)n, (unsigned long long)size));
        }
    }
    template <typename T>
    T read(const char* field) {
        need(sizeof(T), field);
        T v;
        std::memcpy(&v, base + pos, sizeof(T));
        pos += sizeof(T);
        return v;
    }
    std::string_view read_string(const char* field) {
        const uint64_t at = pos;
        const uint64_t len = read<uint64_t>(field);
        if (len > size - pos) {
            fail(format("%s at offset %llu has length %llu, past the end of the file (%llu bytes)", field,
                        (unsigned long long)at, (unsigned long long)len, (unsigned long long)size));
        }
        std::string_view s(reinterpret_cast<const char*>(base + pos), size_t(len));
        pos += len;
        return s;
    }
};

bool valid_value_type(uint32_t t) { return t <= uint32_t(gguf_type::f64); }

void read_value(cursor& c, gguf_type type, gguf_value& out, const std::string& key, int depth) {
    out.type = type;
    switch (type) {
        case gguf_type::u8: out.i = c.read<uint8_t>(key.c_str()); break;
        case gguf_type::i8: out.i = c.read<int8_t>(key.c_str()); break;
        case gguf_type::u16: out.i = c.read<uint16_t>(key.c_str()); break;
        case gguf_type::i16: out.i = c.read<int16_t>(key.c_str()); break;
        case gguf_type::u32: out.i = c.read<uint32_t>(key.c_str()); break;
        case gguf_type::i32: out.i = c.read<int32_t>(key.c_str()); break;
        case gguf_type::u64: out.i = int64_t(c.read<uint64_t>(key.c_str())); break;
        case gguf_type::i64: out.i = c.read<int64_t>(key.c_str()); break;
        case gguf_type::f32: out.f = c.read<float>(key.c_str()); break;
        case gguf_type::f64: out.f = c.read<double>(key.c_str()); break;
        case gguf_type::boolean: {
            const uint64_t at = c.pos;
            const uint8_t b = c.read<uint8_t>(key.c_str());
            if (b > 1) c.fail(format("key '%s' bool at offset %llu has value %u", key.c_str(), (unsigned long long)at, b));
            out.i = b;
            break;
        }
        case gguf_type::string: out.str = c.read_string(key.c_str()); break;
        case gguf_type::array: {
            if (depth >= k_max_array_depth) {
                c.fail(format("key '%s' at offset %llu nests arrays deeper than %d", key.c_str(),
                              (unsigned long long)c.pos, k_max_array_depth));
            }
            const uint64_t at = c.pos;
            const uint32_t et = c.read<uint32_t>(key.c_str());
            if (!valid_value_type(et)) {
                c.fail(format("key '%s' array at offset %llu has unknown element type %u", key.c_str(), (unsigned long long)at, et));
            }
            out.elem_type = gguf_type(et);
            out.count = c.read<uint64_t>(key.c_str());
            const size_t esize = gguf_type_size(out.elem_type);
            if (esize) {
                if (out.count > (c.size - c.pos) / esize) {
                    c.fail(format("key '%s' array at offset %llu has %llu elements of %zu bytes, past the end of the file",
                                  key.c_str(), (unsigned long long)at, (unsigned long long)out.count, esize));
                }
                out.data = c.base + c.pos;
                c.pos += out.count * esize;
            } else if (out.elem_type == gguf_type::string) {
                // Each string takes at least its 8-byte length: bound the count before reserving.
                if (out.count > (c.size - c.pos) / 8) {
                    c.fail(format("key '%s' array at offset %llu has %llu strings, more than the file can hold",
                                  key.c_str(), (unsigned long long)at, (unsigned long long)out.count));
                }
                out.strings.reserve(size_t(out.count));
                for (uint64_t k = 0; k < out.count; ++k) out.strings.push_back(c.read_string(key.c_str()));
            } else {
                // Nested arrays: each takes at least 12 bytes (type + count).
                if (out.count > (c.size - c.pos) / 12) {
                    c.fail(format("key '%s' array at offset %llu has %llu nested arrays, more than the file can hold",
                                  key.c_str(), (unsigned long long)at, (unsigned long long)out.count));
                }
                out.items.resize(size_t(out.count));
                for (auto& item : out.items) read_value(c, gguf_type::array, item, key, depth + 1);
            }
            break;
        }
    }
}

// A file descriptor of `path` (UTF-8, as JS strings reach the addon), read-only; -1 and errno on
// failure. Windows opens it as UTF-16, so that any name opens, not only those the ANSI code page
// can spell (a user folder named "José" or "张伟"); EILSEQ where the path is not valid UTF-8.
int open_read_only(const std::string& path) {
#ifdef _WIN32
    const int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path.c_str(), -1, nullptr, 0);
    if (n <= 0) {
        errno = EILSEQ;
        return -1;
    }
    std::wstring wide(size_t(n), L'\0');
    MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path.c_str(), -1, wide.data(), n);
    return _wopen(wide.c_str(), O_RDONLY | O_BINARY);
#else
    return ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
#endif
}

}  // namespace

std::unique_ptr<gguf_file> gguf_file::open(const std::string& path) {
    std::unique_ptr<gguf_file> f(new gguf_file());
    f->path_ = path;
    f->fd_ = open_read_only(path);
    if (f->fd_ < 0) {
        throw error(error_code::io, format("gguf: cannot open '%s': %s", path.c_str(), std::strerror(errno)));
    }
    struct stat st;
    if (fstat(f->fd_, &st) != 0) {
        throw error(error_code::io, format("gguf: cannot stat '%s': %s", path.c_str(), std::strerror(errno)));
    }
    if (!S_ISREG(st.st_mode)) throw error(error_code::io, format("gguf: '%s' is not a regular file", path.c_str()));
    f->size_ = uint64_t(st.st_size);
    if (f->size_ < 24) {
        throw error(error_code::bad_format,
                    format("gguf: %s: file is %llu bytes, shorter than a GGUF header (24 bytes)", path.c_str(),
                           (unsigned long long)f->size_));
    }
    void* p = mmap(nullptr, size_t(f->size_), PROT_READ, MAP_PRIVATE, f->fd_, 0);
    if (p == MAP_FAILED) {
        // ENOMEM: no address space for it (ulimit -v below the file size, or a 32-bit host).
        throw error(errno == ENOMEM ? error_code::out_of_memory : error_code::io,
                    format("gguf: cannot map '%s' (%s): %s", path.c_str(), format_bytes(f->size_).c_str(), std::strerror(errno)));
    }
    f->base_ = static_cast<const uint8_t*>(p);
    f->parse();
    return f;
}

std::unique_ptr<gguf_file> gguf_file::open_memory(const uint8_t* data, size_t size, const std::string& name) {
    std::unique_ptr<gguf_file> f(new gguf_file());
    f->path_ = name;
    // Exactly `size` bytes, so reads past the end are caught by sanitizers as they would fault on a mapping.
    f->owned_.assign(data, data + size);
    f->size_ = size;
    if (f->size_ < 24) {
        throw error(error_code::bad_format, format("gguf: %s: file is %zu bytes, shorter than a GGUF header (24 bytes)", name.c_str(), size));
    }
    f->base_ = f->owned_.data();
    f->parse();
    return f;
}

gguf_file::~gguf_file() {
    if (base_ && fd_ >= 0) munmap(const_cast<uint8_t*>(base_), size_t(size_));
    if (fd_ >= 0) ::close(fd_);
}

void gguf_file::parse() {
    cursor c{path_, base_, size_};
    if (std::memcmp(base_, "GGUF", 4) != 0) {
        c.fail(format("bad magic %02x %02x %02x %02x at offset 0 (expected 'GGUF')", base_[0], base_[1], base_[2], base_[3]));
    }
    c.pos = 4;
    version_ = c.read<uint32_t>("version");
    if (version_ != 2 && version_ != 3) c.fail(format("unsupported version %u at offset 4 (expected 2 or 3)", version_));
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("metadata count");
    // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info 8 + 4 + 8 + 4 + 8.
    if (n_kv > (size_ - c.pos) / 13) c.fail(format("metadata count %llu at offset 16 is more than the file can hold", (unsigned long long)n_kv));
    if (n_tensors > (size_ - c.pos) / 32) c.fail(format("tensor count %llu at offset 8 is more than the file can hold", (unsigned long long)n_tensors));

    kv_.reserve(size_t(n_kv));
    std::unordered_set<std::string> keys;
    for (uint64_t k = 0; k < n_kv; ++k) {
        const uint64_t at = c.pos;
        const std::string key(c.read_string("metadata key"));
        const uint32_t type = c.read<uint32_t>(key.c_str());
        if (!valid_value_type(type)) c.fail(format("key '%s' at offset %llu has unknown value type %u", key.c_str(), (unsigned long long)at, type));
        gguf_value v;
        read_value(c, gguf_type(type), v, key, 0);
        kv_.emplace_back(key, std::move(v));
        if (!keys.insert(kv_.back().first).second) c.fail(format("duplicate key '%s' at offset %llu", key.c_str(), (unsigned long long)at));
    }

    if (const gguf_value* a = find("general.alignment")) {
        // At least 8 (GGUF requires a multiple of 8): with less, an F32 tensor could start 2 bytes
        // off its element alignment and every kernel reading it would read misaligned floats
        // (undefined behaviour; found by the model fuzzer under UBSan).
        if (a->type != gguf_type::u32 || a->i < 8 || (a->i & (a->i - 1)) != 0) {
            c.fail(format("general.alignment must be a power-of-two u32 of at least 8, got %s %lld", gguf_type_name(a->type), (long long)a->i));
        }
        alignment_ = uint32_t(a->i);
    }

    tensors_.reserve(size_t(n_tensors));
    std::unordered_set<std::string> names;
    for (uint64_t t = 0; t < n_tensors; ++t) {
        const uint64_t at = c.pos;
        gguf_tensor_info info;
        info.name = std::string(c.read_string("tensor name"));
        const char* field = info.name.c_str();
        info.n_dims = c.read<uint32_t>(field);
        if (info.n_dims == 0 || info.n_dims > k_max_dims) {
            c.fail(format("tensor '%s' at offset %llu has %u dimensions (1..%u allowed)", field, (unsigned long long)at, info.n_dims, k_max_dims));
        }
        for (uint32_t d = 0; d < info.n_dims; ++d) {
            info.ne[d] = c.read<int64_t>(field);
            if (info.ne[d] < 0) c.fail(format("tensor '%s' dimension %u is negative (%lld)", field, d, (long long)info.ne[d]));
        }
        // The element count must fit in int64 (ggml's limit).
        int64_t n = 1;
        for (uint32_t d = 0; d < info.n_dims; ++d) {
            if (info.ne[d] != 0 && n > INT64_MAX / info.ne[d]) {
                c.fail(format("tensor '%s' at offset %llu: element count %lld x %lld x %lld x %lld overflows 64 bits", field,
                              (unsigned long long)at, (long long)info.ne[0], (long long)info.ne[1], (long long)info.ne[2], (long long)info.ne[3]));
            }
            n *= info.ne[d];
        }
        const uint32_t type = c.read<uint32_t>(field);
        if (!tensor_type_known(type)) c.fail(format("tensor '%s' at offset %llu has unknown type %u", field, (unsigned long long)at, type));
        info.type = tensor_type(type);
        info.offset = c.read<uint64_t>(field);
        const type_traits& tt = type_traits_reference(info.type);
        if (info.ne[0] % tt.block_size != 0) {
            c.fail(format("tensor '%s' row length %lld is not a multiple of %s's block size %lld", field,
                          (long long)info.ne[0], tt.name, (long long)tt.block_size));
        }
        // Bytes = blocks * type_size; blocks <= n so only the multiplication can overflow.
        const uint64_t blocks = uint64_t(n / tt.block_size);
        if (blocks != 0 && tt.type_size > UINT64_MAX / blocks) c.fail(format("tensor '%s' byte size overflows", field));
        info.n_bytes = blocks * tt.type_size;
        if (info.offset % alignment_ != 0) {
            c.fail(format("tensor '%s' data offset %llu is not a multiple of the alignment %u", field,
                          (unsigned long long)info.offset, alignment_));
        }
        if (!names.insert(info.name).second) c.fail(format("duplicate tensor name '%s' at offset %llu", field, (unsigned long long)at));
        tensors_.push_back(std::move(info));
    }

    // The data section starts at the next multiple of the alignment.
    const uint64_t pad = (alignment_ - c.pos % alignment_) % alignment_;
    if (n_tensors > 0 && pad > size_ - c.pos) c.fail(format("padding before tensor data at offset %llu runs past the end of the file", (unsigned long long)c.pos));
    data_offset_ = c.pos + std::min<uint64_t>(pad, size_ - c.pos);
    const uint64_t data_size = size_ - data_offset_;
    for (auto& info : tensors_) {
        if (info.offset > data_size || info.n_bytes > data_size - info.offset) {
            c.fail(format("tensor '%s' data [offset %llu, size %llu] ends past the data section's end (%llu bytes from offset %llu, file size %llu)",
                          info.name.c_str(), (unsigned long long)info.offset, (unsigned long long)info.n_bytes,
                          (unsigned long long)data_size, (unsigned long long)data_offset_, (unsigned long long)size_));
        }
        info.data = base_ + data_offset_ + info.offset;
    }
    // No two tensors may share bytes: a weight written through one name would change another
    // (llama.cpp requires its offsets in order, each after the last; overlap is what matters).
    std::vector<const gguf_tensor_info*> by_offset;
    by_offset.reserve(tensors_.size());
    for (const auto& info : tensors_) by_offset.push_back(&info);
    std::sort(by_offset.begin(), by_offset.end(), [](const gguf_tensor_info* a, const gguf_tensor_info* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        const gguf_tensor_info& prev = *by_offset[i - 1];
        const gguf_tensor_info& next = *by_offset[i];
        if (prev.n_bytes > 0 && next.n_bytes > 0 && next.offset < prev.offset + prev.n_bytes) {
            c.fail(format("tensor '%s' data [offset %llu, size %llu] overlaps tensor '%s' data [offset %llu, size %llu]", next.name.c_str(),
                          (unsigned long long)next.offset, (unsigned long long)next.n_bytes, prev.name.c_str(),
                          (unsigned long long)prev.offset, (unsigned long long)prev.n_bytes));
        }
    }
}

const gguf_value* gguf_file::find(std::string_view key) const {
    for (const auto& [k, v] : kv_) {
        if (k == key) return &v;
    }
    return nullptr;
}

const gguf_tensor_info* gguf_file::find_tensor(std::string_view name) const {
    for (const auto& t : tensors_) {
        if (t.name == name) return &t;
    }
    return nullptr;
}

namespace {
[[noreturn]] void wrong_type(const std::string& path, std::string_view key, const gguf_value& v, const char* want) {
    throw error(error_code::bad_format, format("gguf: %s: key '%.*s' is %s, expected %s", path.c_str(), int(key.size()),
                                               key.data(), gguf_type_name(v.type), want));
}
}  // namespace

std::optional<int64_t> gguf_file::get_int(std::string_view key) const {
    const gguf_value* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_integer()) wrong_type(path_, key, *v, "an integer");
    return v->i;
}

std::optional<double> gguf_file::get_float(std::string_view key) const {
    const gguf_value* v = find(key);
    if (!v) return std::nullopt;
    if (v->is_float()) return v->f;
    if (v->is_integer()) return double(v->i);
    wrong_type(path_, key, *v, "a number");
}

std::optional<bool> gguf_file::get_bool(std::string_view key) const {
    const gguf_value* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != gguf_type::boolean) wrong_type(path_, key, *v, "a bool");
    return v->i != 0;
}

std::optional<std::string> gguf_file::get_string(std::string_view key) const {
    const gguf_value* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != gguf_type::string) wrong_type(path_, key, *v, "a string");
    return std::string(v->str);
}

void gguf_file::check_not_truncated() const {
    if (in_private_memory()) return;  // nothing is read from the file any more
    struct stat st;
    if (fstat(fd_, &st) == 0 && uint64_t(st.st_size) < size_) {
        throw error(error_code::io, format("gguf: %s was truncated while loaded (%llu of %llu bytes left): load it again",
                                           path_.c_str(), (unsigned long long)st.st_size, (unsigned long long)size_));
    }
}

// Reads the whole file into dst (size_ bytes) with n_threads readers taking 64 MiB chunks in
// turn (pread), while this thread calls step(done, total) every few milliseconds and once at the
// end; a throwing step stops the readers and its exception propagates, as does a reader's error.
void gguf_file::read_range(uint64_t offset, uint64_t n, uint8_t* dst) const {
#if defined(__linux__)
    for (uint64_t at = 0; at < n;) {
        const ssize_t got = pread(fd_, dst + at, size_t(n - at), off_t(offset + at));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw error(error_code::io, format("gguf: reading '%s' at byte %llu: %s", path_.c_str(), (unsigned long long)(offset + at), std::strerror(errno)));
        if (got == 0) throw error(error_code::io, format("gguf: %s ended at byte %llu while it was read (truncated?)", path_.c_str(), (unsigned long long)(offset + at)));
        at += uint64_t(got);
    }
#else
    (void)offset, (void)n, (void)dst;
    throw error(error_code::unsupported, "gguf: read_range needs Linux");
#endif
}

void gguf_file::read_into(uint8_t* dst, int n_threads, const std::function<void(uint64_t done, uint64_t total)>& step) const {
#if defined(__linux__)
    constexpr uint64_t k_chunk = uint64_t(64) << 20;
    const uint64_t chunks = (size_ + k_chunk - 1) / k_chunk;
    std::atomic<uint64_t> next{0}, done{0};
    std::atomic<bool> stop{false};
    std::mutex failed_mutex;
    std::exception_ptr failed;
    auto reader = [&] {
        try {
            for (uint64_t c; !stop.load(std::memory_order_relaxed) && (c = next.fetch_add(1)) < chunks;) {
                for (uint64_t at = c * k_chunk, end = std::min(size_, at + k_chunk); at < end;) {
                    const ssize_t got = pread(fd_, dst + at, size_t(end - at), off_t(at));
                    if (got < 0 && errno == EINTR) continue;
                    if (got < 0) throw error(error_code::io, format("gguf: reading '%s' at byte %llu: %s", path_.c_str(), (unsigned long long)at, std::strerror(errno)));
                    if (got == 0) {
                        throw error(error_code::io, format("gguf: %s ended at byte %llu of %llu while it was copied into memory (truncated?): load it again",
                                                           path_.c_str(), (unsigned long long)at, (unsigned long long)size_));
                    }
                    at += uint64_t(got);
                    done.fetch_add(uint64_t(got), std::memory_order_relaxed);
                }
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(failed_mutex);
            if (!failed) failed = std::current_exception();
            stop.store(true);
        }
    };
    std::vector<std::thread> readers;
    auto join = [&] {
        for (std::thread& t : readers) t.join();
        readers.clear();
    };
    try {
        for (int i = 0; i < std::max(1, n_threads); ++i) readers.emplace_back(reader);  // may throw: join those started
        while (done.load(std::memory_order_relaxed) < size_ && !stop.load()) {
            step(done.load(std::memory_order_relaxed), size_);
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    } catch (...) {
        stop.store(true);
        join();
        throw;
    }
    join();
    if (failed) std::rethrow_exception(failed);
    step(size_, size_);
#else
    (void)dst, (void)n_threads, (void)step;
#endif
}

void gguf_file::copy_into_memory(int n_threads, const std::function<void(uint64_t done, uint64_t total)>& step,
                                 const std::function<void(uint8_t* copy, const uint8_t* base)>& edit) {
    if (in_private_memory()) return;
#if defined(__linux__)
    const size_t size = size_t(size_);
    // The copy sits at the mapping's offset within a 2 MiB huge page, so that its transparent
    // huge pages (fewer page faults while filling it: 0.41-0.47 against 0.62-0.68 s per GiB here)
    // survive the move.
    const size_t page = size_t(sysconf(_SC_PAGESIZE)), span = (size + page - 1) / page * page, huge = size_t(2) << 20;
    void* p = mmap(nullptr, span + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        throw error(error_code::out_of_memory, format("gguf: cannot allocate %s to copy '%s' into memory: %s", format_bytes(size_).c_str(),
                                                      path_.c_str(), std::strerror(errno)));
    }
    const uintptr_t raw = reinterpret_cast<uintptr_t>(p), phase = reinterpret_cast<uintptr_t>(base_) % huge;
    const uintptr_t at = raw + (phase + huge - raw % huge) % huge;
    if (at > raw) munmap(p, at - raw);
    if (raw + span + huge > at + span) munmap(reinterpret_cast<void*>(at + span), raw + span + huge - (at + span));
    uint8_t* const copy = reinterpret_cast<uint8_t*>(at);
    madvise(copy, span, MADV_HUGEPAGE);
    try {
        read_into(copy, n_threads, step);
        if (edit) edit(copy, base_);
        if (mprotect(copy, span, PROT_READ) != 0) throw error(error_code::io, format("gguf: mprotect: %s", std::strerror(errno)));
        // Over the mapping, atomically: its pages are unmapped and the copy's take their addresses.
        if (mremap(copy, span, span, MREMAP_MAYMOVE | MREMAP_FIXED, const_cast<uint8_t*>(base_)) == MAP_FAILED) {
            throw error(error_code::out_of_memory, format("gguf: cannot move the copy of '%s' in place: %s", path_.c_str(), std::strerror(errno)));
        }
    } catch (...) {
        munmap(copy, span);
        throw;
    }
    copied_ = true;
#else
    (void)n_threads, (void)step, (void)edit;
    throw error(error_code::unsupported, format("gguf: copying '%s' into memory needs Linux (mremap); map it instead", path_.c_str()));
#endif
}

void gguf_file::prefetch() const {
    if (base_ && fd_ >= 0 && size_ > data_offset_) {
        madvise(const_cast<uint8_t*>(base_), size_t(size_), MADV_WILLNEED);
    }
}

}  // namespace moerun
