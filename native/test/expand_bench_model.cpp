// Writes a benchmark model from its recipe, where there is no Node to run
// scripts/make-bench-model.ts (the GPU host): the recipe and header that
// `make-bench-model.ts SHAPE --recipe DIR` writes (a few MB) become the multi-GB GGUF, at disk speed.
//
//   expand_bench_model DIR/NAME.recipe [OUT_DIR]     # writes OUT_DIR/NAME.gguf (default: DIR), prints its path
//
// The header (metadata, vocabulary, tensor infos) is copied as it is; each tensor's data is made as
// the recipe says (its format: writeBenchRecipe in scripts/make-bench-model.ts):
//   blocks   a run through a 16 MiB pool of random blocks of its type, every block's fp16 scale
//            fields set to the recipe's values (weights of σ ≈ 0.02), starting at a block chosen
//            by the tensor's seed, as make-bench-model.ts cuts its pools;
//   f32      MEAN + STD × N(0, 1) values (norms ≈ 1; routers and biases N(0, σ)).
// The random numbers are this program's own (splitmix64), not make-bench-model.ts's: the same
// shapes, types and value distributions, so the same speed, but not the same bytes.
// Exit status: 0 written, 1 an I/O error, 2 a bad recipe (each with a message naming the line).
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct failure {
    int status;
    std::string message;
};

[[noreturn]] void fail(int status, const std::string& message) { throw failure{status, message}; }

// splitmix64: a fast, well-mixed sequence from any seed.
struct random_source {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    double normal() {                                              // Box-Muller
        const double u = 1.0 - uniform(), v = uniform();
        return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
    }
};

struct block_recipe {
    size_t bytes = 0;
    std::vector<std::pair<size_t, uint16_t>> scales;  // (offset in the block, fp16 bits)
    std::vector<uint8_t> pool;                        // made on first use
};

struct tensor_recipe {
    std::string name, type, fill;
    uint64_t offset = 0, bytes = 0, padding = 0, seed = 0;
    double mean = 0, std = 0;
    int line = 0;
};

constexpr size_t k_pool_bytes = size_t(16) << 20;

const std::vector<uint8_t>& pool_of(block_recipe& b, const std::string& type) {
    if (!b.pool.empty()) return b.pool;
    random_source rng{0x6D6F6572756E0000ull ^ std::hash<std::string>{}(type)};
    b.pool.resize(k_pool_bytes / b.bytes * b.bytes);
    for (size_t i = 0; i + 8 <= b.pool.size(); i += 8) {
        const uint64_t r = rng.next();
        std::memcpy(&b.pool[i], &r, 8);
    }
    for (size_t at = 0; at < b.pool.size(); at += b.bytes) {
        for (const auto& [off, bits] : b.scales) std::memcpy(&b.pool[at + off], &bits, 2);
    }
    return b.pool;
}

class output {
public:
    explicit output(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "wb")) {
        if (!f_) fail(1, "cannot create " + path + ": " + std::strerror(errno));
    }
    ~output() {
        if (f_) std::fclose(f_);
    }
    void write(const void* data, size_t n) {
        if (n && std::fwrite(data, 1, n, f_) != n) fail(1, "writing " + path_ + ": " + std::strerror(errno));
        written_ += n;
    }
    void zeros(size_t n) {
        static const std::vector<uint8_t> z(4096, 0);
        for (; n > 0;) {
            const size_t k = n < z.size() ? n : z.size();
            write(z.data(), k);
            n -= k;
        }
    }
    void close() {
        if (std::fclose(f_) != 0) {
            f_ = nullptr;
            fail(1, "closing " + path_ + ": " + std::strerror(errno));
        }
        f_ = nullptr;
    }
    uint64_t written() const { return written_; }

private:
    std::string path_;
    FILE* f_;
    uint64_t written_ = 0;
};

int expand(const std::string& recipe_path, std::string out_dir) {
    const std::string dir = recipe_path.find('/') == std::string::npos ? "." : recipe_path.substr(0, recipe_path.rfind('/'));
    if (out_dir.empty()) out_dir = dir;
    std::ifstream in(recipe_path);
    if (!in) fail(1, "cannot open " + recipe_path);

    std::string file, header;
    uint64_t header_bytes = 0, total = 0;
    std::map<std::string, block_recipe> blocks;
    std::vector<tensor_recipe> tensors;
    std::string text;
    int line_no = 0;
    const auto bad = [&](const std::string& why) { fail(2, recipe_path + ":" + std::to_string(line_no) + ": " + why); };
    while (std::getline(in, text)) {
        ++line_no;
        if (text.empty()) continue;
        std::istringstream ls(text);
        std::string key;
        ls >> key;
        if (line_no == 1) {
            int version = 0;
            if (key != "moerun-bench-recipe" || !(ls >> version) || version != 1) bad("not a moerun bench recipe of version 1");
        } else if (key == "file") {
            if (!(ls >> file) || file.find('/') != std::string::npos) bad("expected: file NAME.gguf");
        } else if (key == "header") {
            if (!(ls >> header >> header_bytes) || header.find('/') != std::string::npos) bad("expected: header NAME.head BYTES");
        } else if (key == "size") {
            if (!(ls >> total)) bad("expected: size BYTES");
        } else if (key == "block") {
            std::string type, scale;
            block_recipe b;
            if (!(ls >> type >> b.bytes) || b.bytes == 0 || b.bytes > 4096) bad("expected: block TYPE BYTES OFFSET:F16BITS...");
            while (ls >> scale) {
                size_t off = 0;
                unsigned bits = 0;
                if (std::sscanf(scale.c_str(), "%zu:%u", &off, &bits) != 2 || off + 2 > b.bytes || bits > 0xFFFF) bad("bad scale field '" + scale + "'");
                b.scales.emplace_back(off, uint16_t(bits));
            }
            blocks[type] = std::move(b);
        } else if (key == "tensor") {
            tensor_recipe t;
            t.line = line_no;
            if (!(ls >> t.name >> t.type >> t.offset >> t.bytes >> t.padding >> t.fill >> t.seed >> t.mean >> t.std)) {
                bad("expected: tensor NAME TYPE OFFSET BYTES PADDING FILL SEED MEAN STD");
            }
            if (t.fill == "blocks") {
                if (!blocks.count(t.type)) bad("no block line for type " + t.type);
                if (t.bytes % blocks[t.type].bytes != 0) bad(t.name + ": " + std::to_string(t.bytes) + " bytes is not a whole number of blocks");
            } else if (t.fill == "f32") {
                if (t.bytes % 4 != 0) bad(t.name + ": bytes do not fit its element size");
            } else {
                bad("unknown fill '" + t.fill + "'");
            }
            const uint64_t expected = tensors.empty() ? 0 : tensors.back().offset + tensors.back().bytes + tensors.back().padding;
            if (t.offset != expected) bad(t.name + ": offset " + std::to_string(t.offset) + ", expected " + std::to_string(expected));
            tensors.push_back(t);
        } else {
            bad("unknown record '" + key + "'");
        }
    }
    if (file.empty() || header.empty() || total == 0) fail(2, recipe_path + ": needs file, header and size records");
    const uint64_t data_end = tensors.empty() ? 0 : tensors.back().offset + tensors.back().bytes + tensors.back().padding;
    if (header_bytes + data_end != total) fail(2, recipe_path + ": header and tensors make " + std::to_string(header_bytes + data_end) + " bytes, size says " + std::to_string(total));

    std::vector<uint8_t> head(header_bytes);
    {
        const std::string header_path = dir + "/" + header;
        FILE* h = std::fopen(header_path.c_str(), "rb");
        if (!h) fail(1, "cannot open " + header_path + ": " + std::strerror(errno));
        const size_t got = std::fread(head.data(), 1, head.size(), h);
        const bool longer = std::fgetc(h) != EOF;
        std::fclose(h);
        if (got != head.size() || longer) fail(2, header_path + " is not " + std::to_string(header_bytes) + " bytes");
        if (header_bytes < 4 || std::memcmp(head.data(), "GGUF", 4) != 0) fail(2, header_path + " does not start a GGUF file");
    }

    const std::string out_path = out_dir + "/" + file, tmp = out_path + ".tmp";
    try {
        output out(tmp);
        out.write(head.data(), head.size());
        std::vector<uint8_t> values;
        for (const tensor_recipe& t : tensors) {
            if (t.fill == "blocks") {
                block_recipe& b = blocks[t.type];
                const std::vector<uint8_t>& pool = pool_of(b, t.type);
                size_t at = size_t(t.seed % (pool.size() / b.bytes)) * b.bytes;
                for (uint64_t left = t.bytes; left > 0;) {
                    const size_t n = size_t(std::min<uint64_t>(left, pool.size() - at));
                    out.write(&pool[at], n);
                    left -= n;
                    at = 0;
                }
            } else {
                random_source rng{t.seed};
                values.resize(size_t(t.bytes));
                for (size_t i = 0, n = size_t(t.bytes) / 4; i < n; ++i) {
                    const float v = float(t.mean + t.std * rng.normal());
                    std::memcpy(&values[i * 4], &v, 4);
                }
                out.write(values.data(), values.size());
            }
            out.zeros(size_t(t.padding));
        }
        if (out.written() != total) fail(1, "wrote " + std::to_string(out.written()) + " bytes, expected " + std::to_string(total));
        out.close();
    } catch (...) {
        std::remove(tmp.c_str());
        throw;
    }
    if (std::rename(tmp.c_str(), out_path.c_str()) != 0) fail(1, "renaming " + tmp + ": " + std::strerror(errno));
    std::printf("%s\n", out_path.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: %s DIR/NAME.recipe [OUT_DIR]\n", argv[0]);
        return 2;
    }
    try {
        return expand(argv[1], argc > 2 ? argv[2] : "");
    } catch (const failure& f) {
        std::fprintf(stderr, "expand_bench_model: %s\n", f.message.c_str());
        return f.status;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "expand_bench_model: %s\n", e.what());
        return 1;
    }
}
