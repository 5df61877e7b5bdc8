// Fuzz target for the GGUF reader: any byte string must parse or throw moerun::error, never crash,
// read out of bounds or leak. Two builds:
//  - libFuzzer (clang): clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -DMOERUN_LIBFUZZER
//        native/fuzz/fuzz_gguf.cpp native/gguf/gguf.cpp native/quant/*.cpp native/runtime/error.cpp
//  - standalone (any compiler; what CI runs, see CMakeLists.txt option MOERUN_FUZZ): a seeded
//    mutation loop over seed files, under AddressSanitizer and UBSan:
//        fuzz_gguf ITERATIONS SEED.gguf...
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

#include "../gguf/gguf.h"
#include "../base/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto f = moerun::gguf_file::open_memory(data, size, "fuzz");
        // Touch what a loader would: every metadata value and tensor extent.
        size_t sink = 0;
        for (const auto& [key, value] : f->metadata()) sink += key.size() + value.strings.size() + value.items.size();
        for (const auto& t : f->tensors()) sink += t.n_bytes ? t.data[0] + t.data[t.n_bytes - 1] : 0;
        (void)sink;
    } catch (const moerun::error&) {
        // expected for malformed input
    }
    return 0;
}

#ifndef MOERUN_LIBFUZZER
int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s ITERATIONS SEED.gguf...\n", argv[0]);
        return 2;
    }
    const long iterations = std::atol(argv[1]);
    std::vector<std::vector<uint8_t>> seeds;
    for (int i = 2; i < argc; ++i) {
        std::ifstream in(argv[i], std::ios::binary);
        seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        // Large seeds: keep the header, metadata and tensor infos (where the parser works).
        if (seeds.back().size() > 65536) seeds.back().resize(65536);
    }
    std::mt19937_64 rng(1234);
    for (long it = 0; it < iterations; ++it) {
        std::vector<uint8_t> buf = seeds[rng() % seeds.size()];
        const int mutations = 1 + int(rng() % 8);
        for (int m = 0; m < mutations && !buf.empty(); ++m) {
            const size_t at = rng() % buf.size();
            switch (rng() % 6) {
                case 0: buf[at] = uint8_t(rng()); break;                                  // random byte
                case 1: buf[at] ^= uint8_t(1u << (rng() % 8)); break;                     // bit flip
                case 2: buf.resize(at); break;                                           // truncate
                case 3: buf.insert(buf.begin() + long(at), uint8_t(rng())); break;       // insert
                case 4: if (at + 8 <= buf.size()) for (int k = 0; k < 8; ++k) buf[at + size_t(k)] = 0xff; break;  // huge u64
                case 5: buf.erase(buf.begin() + long(at)); break;                        // delete
            }
        }
        LLVMFuzzerTestOneInput(buf.data(), buf.size());
    }
    std::printf("fuzz_gguf: %ld inputs, no crash\n", iterations);
    return 0;
}
#endif
