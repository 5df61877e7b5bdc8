// Kernel tests: every quant format and every CPU path this machine supports.
//
//   cmake -S . -B build-core -DCMAKE_BUILD_TYPE=Release && cmake --build build-core -j2 --target test_kernels
//   ./build-core/test_kernels [fixtures dir]      (default: <repo>/test/fixtures/quant)
//
// Checks, each printed with its measured value and bound; exit status 1 if any fails:
//   layout     traits row sizes equal the block structs of quant/blocks.h
//   roundtrip  reference from_float -> to_float on Gaussian data, NMSE per type within a bound
//   fixture    reference to_float of blocks written by llama.cpp equals llama.cpp's dequantization
//              bit for bit; reference from_float of the same source data gives llama.cpp's bytes
//              (types with a quantizer); for the lattice, ternary and FP4 formats also random blocks
//              that run through every grid point (<TYPE>-blocks.bin)
//   from_float each path's activation quantizers (Q8_0, Q8_1, Q8_K, F16, BF16) equal the reference
//              byte for byte
//   to_float   each path's dequantizers equal the reference bit for bit
//   vec_dot    each path's dot products against the reference, NMSE within a bound per type
//   vec_dot_n  each path's multi-row dots equal its vec_dot bit for bit, and the reference within
//              the vec_dot bound
//   gemm_tile  every tile shape of each path's gemm_tile equals its vec_dot bit for bit
//   layout     the interleaved layout (cpu/interleave.h) of every block format gives every row back
//   interleave each path's interleaved tiles equal its int8_tile on the same rows in place bit for
//              bit
//   int8_tile  each path's int8 GEMM tiles (cpu/kernels.h) equal its vec_dot bit for bit, and the
//              reference within the vec_dot bound
//   orders     F32/F16 vec_dot, vec_dot_n and vec_dot_unrolled of each SIMD path equal a scalar
//              emulation of llama.cpp's summation order for that path bit for bit (cpu/kernels.h),
//              and the reference within the vec_dot bound
//   unrolled   each path's F32 unrolled_tile (keys x queries, attention scores) equals its
//              vec_dot_unrolled bit for bit, for key counts across its blocks and every query count
//   vector_ops each path's softmax and SwiGLU against the scalar reference (its exp is within
//              1.5 ulp of expf); softmax's cutoff gives exact zeros and no subnormal output;
//              weighted_rows against a double-precision sum, and the same split over two calls;
//              transpose_u16 equal to the reference
//   matmul     matmul() on the active path against a naive double-precision loop
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../cpu/dispatch.h"
#include "../cpu/interleave.h"
#include "../cpu/matmul.h"
#include "../base/thread_pool.h"
#include "../cpu/vector_ops.h"
#include "../quant/blocks.h"
#include "../quant/types.h"
#include "../base/error.h"
#include "../base/tensor.h"

using namespace moerun;
using T = tensor_type;

namespace {

int g_failures = 0;

void report(bool ok, const char* what, const std::string& detail) {
    std::printf("%-4s %-10s %s\n", ok ? "ok" : "FAIL", what, detail.c_str());
    if (!ok) ++g_failures;
}

double nmse(const float* ref, const float* got, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        const double d = double(got[i]) - double(ref[i]);
        num += d * d;
        den += double(ref[i]) * double(ref[i]);
    }
    return den > 0 ? num / den : num;
}

std::vector<float> gaussian(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// Weight-like data: Gaussian with a few large outliers, and some all-zero / tiny blocks, which
// exercise the quantizers' edge cases (zero scale, one dominant value).
std::vector<float> weights_like(size_t n, uint32_t seed) {
    std::vector<float> v = gaussian(n, seed);
    std::mt19937 rng(seed ^ 0x9e3779b9u);
    for (size_t i = 0; i < n; i += 97) v[i] *= 8.0f;
    if (n >= 1024) {
        for (size_t i = 256; i < 288; ++i) v[i] = 0.0f;
        for (size_t i = 512; i < 544; ++i) v[i] *= 1e-6f;
    }
    return v;
}

struct type_case {
    T type;
    size_t block_bytes;   // sizeof the block struct (0: plain float type)
    double roundtrip_max; // NMSE bound of from_float -> to_float on N(0,1) data
    double dot_max;       // NMSE bound of a SIMD vec_dot against the reference
};

// Round-trip bounds: measured reference NMSE on N(0,1) data (printed by this test) with about 25%
// headroom; they match llama.cpp's own quantizers, which give the same bytes (fixture check).
// Dot bounds: float types are exact products summed in float with different association, so their
// error is pure float rounding (≤ 1e-12). Integer-dot types take exact integer sums per block in
// both the reference and the SIMD kernels; only the order of the float scaling and accumulation
// across blocks differs, so the NMSE is float rounding over n/32 or n/256 terms: ≤ 1e-11.
const type_case k_cases[] = {
    {T::F32, 0, 1e-30, 1e-12},
    {T::F16, 0, 1e-7, 1e-12},
    {T::BF16, 0, 1e-5, 1e-12},
    {T::Q4_0, sizeof(block_q4_0), 1.2e-2, 1e-11},
    {T::Q4_1, sizeof(block_q4_1), 1.0e-2, 1e-11},
    {T::Q5_0, sizeof(block_q5_0), 3.0e-3, 1e-11},
    {T::Q5_1, sizeof(block_q5_1), 2.5e-3, 1e-11},
    {T::Q8_0, sizeof(block_q8_0), 4.0e-5, 1e-11},
    {T::Q8_1, sizeof(block_q8_1), 4.0e-5, 0},
    {T::Q2_K, sizeof(block_q2_K), 1.2e-1, 1e-11},
    {T::Q3_K, sizeof(block_q3_K), 4.0e-2, 1e-11},
    {T::Q4_K, sizeof(block_q4_K), 1.0e-2, 1e-11},
    {T::Q5_K, sizeof(block_q5_K), 2.5e-3, 1e-11},
    {T::Q6_K, sizeof(block_q6_K), 7.0e-4, 1e-11},
    {T::Q8_K, sizeof(block_q8_K), 6.5e-5, 0},
    {T::IQ4_NL, sizeof(block_iq4_nl), 1.0e-2, 1e-11},
    {T::IQ4_XS, sizeof(block_iq4_xs), 1.0e-2, 1e-11},
    // Lattice formats. IQ2_XXS, IQ2_XS and IQ1_S have no from_float, only from_float_imatrix (llama.cpp
    // quantizes them only with an importance matrix; their fixtures check it): round trip skipped,
    // weight rows are random valid blocks (random_blocks). These and the ternary and FP4 formats: their SIMD dots reduce each block's integer sum and scale it in the reference's float order,
    // so they must equal it exactly (bound 0).
    {T::IQ2_XXS, sizeof(block_iq2_xxs), 0, 0},
    {T::IQ2_XS, sizeof(block_iq2_xs), 0, 0},
    {T::IQ2_S, sizeof(block_iq2_s), 8.9e-2, 0},
    {T::IQ3_XXS, sizeof(block_iq3_xxs), 5.6e-2, 0},
    {T::IQ3_S, sizeof(block_iq3_s), 3.4e-2, 0},
    {T::IQ1_S, sizeof(block_iq1_s), 0, 0},
    {T::IQ1_M, sizeof(block_iq1_m), 4.2e-1, 0},
    // Ternary formats round Gaussian data to {-max, 0, max} (they are for ternary-trained weights).
    {T::TQ1_0, sizeof(block_tq1_0), 8.0e-1, 0},
    {T::TQ2_0, sizeof(block_tq2_0), 8.0e-1, 0},
    {T::MXFP4, sizeof(block_mxfp4), 1.6e-2, 0},
};

// Seeded random blocks of a type: random bytes (every grid index, sign and sub-block scale is
// valid) with the block scale set to a finite value around `scale`, so dots stay in range.
std::vector<uint8_t> random_blocks(T type, size_t n, uint32_t seed, float scale = 0.01f) {
    const type_traits& r = type_traits_reference(type);
    const size_t nb = n / size_t(r.block_size);
    std::vector<uint8_t> q(nb * r.type_size);
    std::mt19937 rng(seed);
    for (uint8_t& b : q) b = uint8_t(rng());
    std::uniform_real_distribution<float> mant(0.5f, 2.0f);
    for (size_t i = 0; i < nb; ++i) {
        uint8_t* blk = q.data() + i * r.type_size;
        const uint16_t d = fp32_to_fp16(scale * mant(rng));
        switch (type) {
            case T::IQ1_M: {  // d's 16 bits in the top nibbles of the four scale words
                uint16_t sc[4];
                std::memcpy(sc, blk + 48, 8);
                for (int w = 0; w < 4; ++w) sc[w] = uint16_t((sc[w] & 0x0fff) | (((d >> (4 * w)) & 0xf) << 12));
                std::memcpy(blk + 48, sc, 8);
                break;
            }
            case T::TQ1_0: case T::TQ2_0: std::memcpy(blk + r.type_size - 2, &d, 2); break;  // d last
            case T::MXFP4: blk[0] = uint8_t(127 + int(rng() % 5) - 8); break;  // 2^(e-128): 2^-9..2^-5
            default: std::memcpy(blk, &d, 2); break;  // d first
        }
    }
    return q;
}

// A weight row for kernel tests: the reference quantization of weight-like data, or random blocks
// for the types without a quantizer.
std::vector<uint8_t> weight_row(T type, size_t n, uint32_t seed);

std::vector<uint8_t> quantize(const type_traits& t, T type, const std::vector<float>& x) {
    std::vector<uint8_t> q(row_size(type, int64_t(x.size())));
    t.from_float(x.data(), q.data(), int64_t(x.size()));
    return q;
}

std::vector<float> dequantize(const type_traits& t, const std::vector<uint8_t>& q, size_t n) {
    std::vector<float> y(n);
    t.to_float(q.data(), y.data(), int64_t(n));
    return y;
}

std::vector<uint8_t> weight_row(T type, size_t n, uint32_t seed) {
    const type_traits& r = type_traits_reference(type);
    return r.from_float ? quantize(r, type, weights_like(n, seed)) : random_blocks(type, n, seed);
}

// ---- layout and round trip (reference) ----

void check_reference(const type_case& c) {
    const type_traits& r = type_traits_reference(c.type);
    if (c.block_bytes) {
        report(r.type_size == c.block_bytes, "layout", format("%-6s %zu bytes per block of %lld", r.name, r.type_size, (long long)r.block_size));
    }
    const size_t n = 256 * 64;
    const std::vector<float> x = gaussian(n, 1234 + uint32_t(c.type));
    if (!r.to_float) {
        report(false, "roundtrip", format("%-6s has no reference to_float", r.name));
        return;
    }
    if (!r.from_float) {
        // IQ2_XXS, IQ2_XS, IQ1_S: quantized only with an importance matrix, as in llama.cpp; their
        // from_float_imatrix is checked against llama.cpp's bytes by the fixtures (check_fixture).
        std::printf("skip %-10s %-6s quantized only with an importance matrix (see its fixture)\n", "roundtrip", r.name);
        return;
    }
    const std::vector<float> y = dequantize(r, quantize(r, c.type, x), n);
    const double e = nmse(x.data(), y.data(), n);
    report(e <= c.roundtrip_max, "roundtrip", format("%-6s nmse %.3e (bound %.1e)", r.name, e, c.roundtrip_max));
}

// ---- llama.cpp fixtures ----
// File layouts (little endian; scripts/make-quant-fixtures.py), after "MQFX", u32 version, u32
// type id, u32 n:
//   1: f32 src[n], u8 blocks[row_size(type, n)] = llama.cpp's quantization of src, f32 deq[n] =
//      llama.cpp's dequantization of those blocks (all zero bits when llama.cpp has none)
//   2: as 1 with f32 imatrix[n] after src (<TYPE>.bin of the types llama.cpp quantizes only with an
//      imatrix; <TYPE>-imatrix.bin of those that take one optionally)
//   3: u8 blocks[row_size(type, n)], f32 deq[n]: random blocks covering every grid point

bool read_file(const std::string& path, std::vector<uint8_t>& out) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    std::fseek(f, 0, SEEK_END);
    out.resize(size_t(std::ftell(f)));
    std::fseek(f, 0, SEEK_SET);
    const bool ok = std::fread(out.data(), 1, out.size(), f) == out.size();
    std::fclose(f);
    return ok;
}

// Reference to_float of llama.cpp's blocks against llama.cpp's floats, bit for bit.
void check_fixture_deq(const type_case& c, const char* what, const std::vector<uint8_t>& blocks, const std::vector<float>& deq) {
    const type_traits& r = type_traits_reference(c.type);
    const std::vector<float> ours = dequantize(r, blocks, deq.size());
    size_t diff = 0;
    for (size_t i = 0; i < deq.size(); ++i) diff += std::memcmp(&ours[i], &deq[i], 4) != 0;
    report(diff == 0, "fixture", format("%-6s to_float of llama.cpp %s: %zu of %zu values differ", r.name, what, diff, deq.size()));
}

void check_fixture_file(const std::string& path, const type_case& c, uint32_t want_version) {
    const type_traits& r = type_traits_reference(c.type);
    std::vector<uint8_t> file;
    if (!read_file(path, file)) {
        report(false, "fixture", format("%-6s cannot read %s", r.name, path.c_str()));
        return;
    }
    uint32_t hdr[4] = {};
    if (file.size() >= 16) std::memcpy(hdr, file.data(), 16);
    const uint32_t version = hdr[1];
    const size_t n = hdr[3];
    const size_t qbytes = n % size_t(r.block_size) == 0 ? row_size(c.type, int64_t(n)) : 0;
    const size_t src_bytes = version == 3 ? 0 : version == 2 ? 2 * n * 4 : n * 4;  // src (+ imatrix)
    const bool version_ok = want_version == 1 ? version == 1 || version == 2 : version == want_version;
    if (std::memcmp(file.data(), "MQFX", 4) != 0 || !version_ok || hdr[2] != uint32_t(c.type) || !qbytes ||
        file.size() != 16 + src_bytes + qbytes + n * 4) {
        report(false, "fixture", format("%-6s %s is malformed", r.name, path.c_str()));
        return;
    }
    std::vector<float> src(n), deq(n);
    std::vector<uint8_t> blocks(qbytes);
    if (version != 3) std::memcpy(src.data(), file.data() + 16, n * 4);
    std::memcpy(blocks.data(), file.data() + 16 + src_bytes, qbytes);
    std::memcpy(deq.data(), file.data() + 16 + src_bytes + qbytes, n * 4);

    bool have_deq = false;
    for (float v : deq) have_deq |= v != 0.0f;
    if (have_deq) check_fixture_deq(c, version == 3 ? "blocks over every grid point" : "blocks", blocks, deq);
    if (version == 3) return;
    if (version == 2 ? !r.from_float_imatrix : !r.from_float) {
        std::printf("skip %-10s %-6s from_float vs llama.cpp: no quantizer%s yet\n", "fixture", r.name, version == 2 ? " with an importance matrix" : "");
        return;
    }
    std::vector<uint8_t> ours(qbytes);
    if (version == 2) {
        std::vector<float> imatrix(n);
        std::memcpy(imatrix.data(), file.data() + 16 + n * 4, n * 4);
        r.from_float_imatrix(src.data(), ours.data(), int64_t(n), imatrix.data());
    } else {
        ours = quantize(r, c.type, src);
    }
    size_t diff = 0;
    for (size_t i = 0; i < qbytes; ++i) diff += ours[i] != blocks[i];
    report(diff == 0, "fixture", format("%-6s from_float%s vs llama.cpp: %zu of %zu bytes differ", r.name, version == 2 ? "_imatrix" : "", diff, qbytes));
}

// The types with random-block fixtures over their whole grid (make-quant-fixtures.py, BLOCK_FIXTURES).
bool has_blocks_fixture(T type) {
    switch (type) {
        case T::IQ2_XXS: case T::IQ2_XS: case T::IQ2_S: case T::IQ3_XXS: case T::IQ3_S: case T::IQ1_S: case T::IQ1_M:
        case T::TQ1_0: case T::TQ2_0: case T::MXFP4: return true;
        default: return false;
    }
}

void check_fixture(const std::string& dir, const type_case& c) {
    if (!c.block_bytes) return;
    const type_traits& r = type_traits_reference(c.type);
    check_fixture_file(dir + "/" + r.name + ".bin", c, 1);
    if (has_blocks_fixture(c.type)) check_fixture_file(dir + "/" + r.name + "-blocks.bin", c, 3);
    const bool optional_imatrix = c.type == T::IQ3_XXS || c.type == T::IQ3_S || c.type == T::IQ2_S || c.type == T::IQ1_M;
    if (optional_imatrix) check_fixture_file(dir + "/" + r.name + "-imatrix.bin", c, 2);
}

// ---- SIMD paths against the reference ----

// An activation row as `path`'s kernels take it: the blocks (the reference's bytes; checked by
// from_float), then the path's extra bytes and aligned quants (cpu/kernels.h). Reference kernels
// ignore what follows the blocks.
size_t act_row_bytes(cpu_path path, T type, size_t n) { return act_row_size(cpu_kernels_for_path(path, type), int64_t(n)); }
std::vector<uint8_t> act_quantize(cpu_path path, T type, const std::vector<float>& x) {
    const cpu_kernels& t = cpu_kernels_for_path(path, type);
    std::vector<uint8_t> out(act_row_bytes(path, type, x.size()));
    (t.from_float_act ? t.from_float_act : t.from_float)(x.data(), out.data(), int64_t(x.size()));
    return out;
}

// vec_dot_n: one weight row against ny activation rows, for several ny (groups of 8 and 4, and tails).
// Each result must equal the same path's vec_dot bit for bit (the kernels keep its summation
// order, which keeps matmul's results independent of the batch size), and the reference within
// the vec_dot bound.
void check_dot_n(cpu_path path, const type_case& c, size_t n, int rows) {
    if (!c.block_bytes) n += 21;  // float types: also the vector tails (masked or scalar)
    const type_traits& r = type_traits_reference(c.type);
    const cpu_kernels& p = cpu_kernels_for_path(path, c.type);
    const char* pn = cpu_path_name(path);
    if (!p.vec_dot_n) {
        // Allowed (matmul then loops over vec_dot), but only for rows whose vec_dot is not the reference's.
        report(p.vec_dot != r.vec_dot, "vec_dot_n", format("%-6s %-6s none: matmul loops over vec_dot", pn, r.name));
        return;
    }
    const int max_ny = 17;
    const size_t arow = act_row_bytes(path, r.vec_dot_type, n);
    std::vector<uint8_t> act(arow * max_ny);
    for (int j = 0; j < max_ny; ++j) {
        const std::vector<uint8_t> a = act_quantize(path, r.vec_dot_type, gaussian(n, 5000 + uint32_t(j)));
        std::copy(a.begin(), a.end(), act.begin() + std::ptrdiff_t(size_t(j) * arow));
    }
    std::vector<float> want, got, same;  // reference vec_dot, vec_dot_n, this path's vec_dot
    size_t mismatches = 0;
    for (int ny : {1, 2, 3, 4, 5, 8, 9, 12, 13, 16, 17}) {
        for (int i = 0; i < rows; i += 7) {
            const std::vector<uint8_t> wq = weight_row(c.type, n, 3000 + uint32_t(i));
            const int64_t stride = 3;  // s[j * stride]: the stride is honoured and nothing else written
            std::vector<float> s(size_t(ny * stride), -1.0f);
            p.vec_dot_n(int64_t(n), s.data(), stride, wq.data(), act.data(), arow, ny);
            for (int j = 0; j < ny; ++j) {
                float w = 0, v = 0;
                r.vec_dot(int64_t(n), &w, wq.data(), act.data() + size_t(j) * arow);
                p.vec_dot(int64_t(n), &v, wq.data(), act.data() + size_t(j) * arow);
                const float g = s[size_t(j * stride)];
                mismatches += std::memcmp(&g, &v, 4) != 0;
                mismatches += s[size_t(j * stride + 1)] != -1.0f || s[size_t(j * stride + 2)] != -1.0f;
                want.push_back(w);
                got.push_back(g);
            }
        }
    }
    const double e = nmse(want.data(), got.data(), want.size());
    const bool is_override = p.vec_dot_n != cpu_kernels_for_path(cpu_path::scalar, c.type).vec_dot_n;
    report(e <= c.dot_max && mismatches == 0, "vec_dot_n",
           format("%-6s %-6s nmse %.3e (bound %.0e), %zu of %zu differ from vec_dot%s", pn, r.name, e, c.dot_max, mismatches,
               want.size(), is_override ? "" : "  [reference kernel]"));
}

// gemm_tile (float weights' register tiles, the i8mm path's SMMLA tiles of quantized ones): every
// nw x nx shape, each output equal to the same path's vec_dot bit for bit, and nothing written
// outside the tile.
void check_tile(cpu_path path, const type_case& c, size_t n) {
    const cpu_kernels& p = cpu_kernels_for_path(path, c.type);
    if (!p.gemm_tile) return;
    const type_traits& r = type_traits_reference(c.type);
    n += c.block_bytes ? 3 * 32 : 16 * 3;  // a last group of 3 blocks; whole vectors for the GEMM order
    const size_t wrow = row_size(c.type, int64_t(n)), arow = act_row_bytes(path, r.vec_dot_type, n);
    std::vector<uint8_t> w(4 * wrow), act(size_t(p.gemm_tile_x) * arow);
    for (int i = 0; i < 4; ++i) {
        const std::vector<uint8_t> q = weight_row(c.type, n, 7000 + uint32_t(i));
        std::copy(q.begin(), q.end(), w.begin() + std::ptrdiff_t(size_t(i) * wrow));
    }
    for (int j = 0; j < p.gemm_tile_x; ++j) {
        const std::vector<uint8_t> a = act_quantize(path, r.vec_dot_type, gaussian(n, 7100 + uint32_t(j)));
        std::copy(a.begin(), a.end(), act.begin() + std::ptrdiff_t(size_t(j) * arow));
    }
    size_t mismatches = 0, total = 0;
    const int64_t ys = 6;  // y[j * ys + r]: rows 4 and 5 of each stride must stay untouched
    for (int64_t nw = 1; nw <= 4; ++nw) {
        for (int64_t nx = 1; nx <= p.gemm_tile_x; ++nx) {
            std::vector<float> y(size_t(nx * ys), -1.0f);
            p.gemm_tile(int64_t(n), w.data(), wrow, nw, act.data(), arow, nx, y.data(), ys);
            for (int64_t j = 0; j < nx; ++j) {
                for (int64_t i = 0; i < ys; ++i) {
                    float want = -1.0f;
                    if (i < nw) p.vec_dot(int64_t(n), &want, w.data() + size_t(i) * wrow, act.data() + size_t(j) * arow);
                    mismatches += std::memcmp(&want, &y[size_t(j * ys + i)], 4) != 0;
                    ++total;
                }
            }
        }
    }
    report(mismatches == 0, "gemm_tile", format("%-6s %-6s every tile up to 4 x %d: %zu of %zu outputs differ from vec_dot", cpu_path_name(path),
                                                r.name, p.gemm_tile_x, mismatches, total));
}

// int8_tile: nw weight rows against nx activation rows in one call, for tile shapes that take
// every branch (full and partial tiles; the few-row and packed activation paths). Each output must
// equal the same path's vec_dot bit for bit (so matmul's results stay independent of the batch
// size and the row split), outputs outside the tile stay untouched, and the NMSE against the
// reference is reported within the vec_dot bound.
void check_int8_tile(cpu_path path, const type_case& c, size_t n) {
    const type_traits& r = type_traits_reference(c.type);
    const cpu_kernels& p = cpu_kernels_for_path(path, c.type);
    if (!p.int8_tile) return;
    const char* pn = cpu_path_name(path);
    const int max_rows = p.int8_tile_rows, max_nx = 83;
    const size_t wrow = row_size(c.type, int64_t(n)), arow = act_row_bytes(path, r.vec_dot_type, n);
    std::vector<uint8_t> w(wrow * size_t(max_rows)), act(arow * max_nx);
    for (int i = 0; i < max_rows; ++i) {
        const std::vector<uint8_t> q = weight_row(c.type, n, 7000 + uint32_t(i));
        std::copy(q.begin(), q.end(), w.begin() + std::ptrdiff_t(size_t(i) * wrow));
    }
    for (int j = 0; j < max_nx; ++j) {
        const std::vector<uint8_t> a = act_quantize(path, r.vec_dot_type, gaussian(n, 8000 + uint32_t(j)));
        std::copy(a.begin(), a.end(), act.begin() + std::ptrdiff_t(size_t(j) * arow));
    }
    std::vector<float> want, got;
    size_t mismatches = 0, outputs = 0;
    for (int nw : {1, 3, max_rows - 1, max_rows}) {
        // every pass length of 1..8 rows; AMX passes of 16, short ones, a rest, each side of the
        // AMX thresholds, and many passes
        for (int nx : {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17, 19, 24, 27, 32, 33, 37, 64, 70, max_nx}) {
            const int64_t stride = max_rows + 2;  // y[i * stride + row]; the rest must stay -1
            std::vector<float> y(size_t(nx * stride), -1.0f);
            p.int8_tile(int64_t(n), w.data(), wrow, nw, act.data(), arow, nx, y.data(), stride);
            for (int i = 0; i < nx; ++i) {
                for (int64_t row = 0; row < stride; ++row) {
                    const float g = y[size_t(i * stride + row)];
                    if (row >= nw) {
                        mismatches += g != -1.0f;
                        continue;
                    }
                    float v = 0, ref = 0;
                    p.vec_dot(int64_t(n), &v, w.data() + size_t(row) * wrow, act.data() + size_t(i) * arow);
                    r.vec_dot(int64_t(n), &ref, w.data() + size_t(row) * wrow, act.data() + size_t(i) * arow);
                    mismatches += std::memcmp(&g, &v, 4) != 0;
                    want.push_back(ref);
                    got.push_back(g);
                    ++outputs;
                }
            }
        }
    }
    const double e = nmse(want.data(), got.data(), want.size());
    report(e <= c.dot_max && mismatches == 0, "int8_tile",
           format("%-6s %-6s nmse %.3e (bound %.0e), %zu of %zu differ from vec_dot or wrote outside the tile", pn, r.name, e,
                  c.dot_max, mismatches, outputs));
}

// layout: the interleaved layout (cpu/interleave.h) of every block format, whole dwords and the
// tails of blocks that are not (Q6_K's 210 bytes, Q8_0's 34), gives back each row, and moves every
// byte (distinct bytes in, a permutation out).
void check_interleave_layout(const type_case& c) {
    if (!c.block_bytes) return;
    const size_t row = c.block_bytes * 3;
    std::vector<uint8_t> rows(row * k_interleave_rows), inter(rows.size()), back(row);
    std::mt19937 rng(uint32_t(c.type));
    for (uint8_t& b : rows) b = uint8_t(rng());
    interleave_group(rows.data(), row, c.block_bytes, inter.data());
    size_t wrong = 0;
    for (int r = 0; r < k_interleave_rows; ++r) {
        deinterleave_row(inter.data(), row, c.block_bytes, r, back.data());
        wrong += std::memcmp(back.data(), rows.data() + size_t(r) * row, row) != 0;
    }
    std::vector<uint8_t> a = rows, b = inter;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    report(wrong == 0 && a == b && inter != rows, "layout",
           format("%-6s interleaved 16 rows of 3 blocks: %zu rows not given back%s", type_traits_reference(c.type).name, wrong,
                  a == b ? "" : ", bytes lost or duplicated"));
}

// interleave: the path's interleaved tile over 32 interleaved rows equals its int8_tile over the same rows in
// place, bit for bit, for every activation row count across its direct and packed passes.
void check_interleaved_tile(cpu_path path, const type_case& c, size_t n) {
    const type_traits& r = type_traits_reference(c.type);
    const cpu_kernels& p = cpu_kernels_for_path(path, c.type);
    if (!p.int8_tile_interleaved) return;
    const int rows = 2 * k_interleave_rows, max_nx = 19;
    const size_t wrow = row_size(c.type, int64_t(n)), arow = act_row_bytes(path, r.vec_dot_type, n);
    std::vector<uint8_t> w(wrow * rows), inter(w.size()), act(arow * max_nx);
    for (int i = 0; i < rows; ++i) {
        const std::vector<uint8_t> q = weight_row(c.type, n, 9000 + uint32_t(i));
        std::copy(q.begin(), q.end(), w.begin() + std::ptrdiff_t(size_t(i) * wrow));
    }
    for (int j = 0; j < max_nx; ++j) {
        const std::vector<uint8_t> a = act_quantize(path, r.vec_dot_type, gaussian(n, 9500 + uint32_t(j)));
        std::copy(a.begin(), a.end(), act.begin() + std::ptrdiff_t(size_t(j) * arow));
    }
    size_t round_trip = 0;
    for (int g = 0; g < rows / k_interleave_rows; ++g) {
        const size_t at = size_t(g) * k_interleave_rows * wrow;
        interleave_group(w.data() + at, wrow, r.type_size, inter.data() + at);
        std::vector<uint8_t> back(wrow);
        for (int i = 0; i < k_interleave_rows; ++i) {
            deinterleave_row(inter.data() + at, wrow, r.type_size, i, back.data());
            round_trip += std::memcmp(back.data(), w.data() + at + size_t(i) * wrow, wrow) != 0;
        }
    }
    // tensor_get_row of an interleaved tensor gives each row's reference floats
    tensor t;
    t.data = inter.data();
    t.type = c.type;
    t.ne[0] = int64_t(n);
    t.ne[1] = rows;
    t.row_stride = wrow;
    t.interleaved = true;
    std::vector<float> got_row(n), want_row(n);
    for (int i = 0; i < rows; ++i) {
        tensor_get_row(t, i, got_row.data());
        r.to_float(w.data() + size_t(i) * wrow, want_row.data(), int64_t(n));
        round_trip += std::memcmp(got_row.data(), want_row.data(), n * sizeof(float)) != 0;
    }
    size_t mismatches = 0, outputs = 0;
    for (int nx = 1; nx <= max_nx; ++nx) {
        const int64_t stride = rows + 1;
        std::vector<float> want(size_t(nx * stride), -1.0f), got(want.size(), -1.0f);
        for (int r0 = 0; r0 < rows; r0 += p.int8_tile_rows) {
            p.int8_tile(int64_t(n), w.data() + size_t(r0) * wrow, wrow, std::min(p.int8_tile_rows, rows - r0), act.data(), arow, nx,
                        want.data() + r0, stride);
        }
        p.int8_tile_interleaved(int64_t(n), inter.data(), wrow, rows, act.data(), arow, nx, got.data(), stride);
        for (size_t i = 0; i < want.size(); ++i) mismatches += std::memcmp(&want[i], &got[i], 4) != 0;
        outputs += want.size();
    }
    report(round_trip == 0 && mismatches == 0, "interleave",
           format("%-6s %-6s %zu rows not given back (deinterleave_row, tensor_get_row); %zu of %zu outputs differ from int8_tile on the rows in place", cpu_path_name(path),
                  r.name, round_trip, mismatches, outputs));
}

void check_path(cpu_path path, const type_case& c) {
    const type_traits& r = type_traits_reference(c.type);
    const cpu_kernels& p = cpu_kernels_for_path(path, c.type);
    const char* pn = cpu_path_name(path);
    const size_t n = 256 * 12;  // 3072: several blocks of every size, not a power of two
    const std::vector<float> x = weights_like(n, 77 + uint32_t(c.type));

    if (p.from_float != r.from_float && r.from_float) {
        const std::vector<uint8_t> a = quantize(r, c.type, x), b = quantize(p, c.type, x);
        report(a == b, "from_float", format("%-6s %-6s %s", pn, r.name, a == b ? "identical bytes" : "bytes differ"));
    }
    if (p.to_float != r.to_float) {
        const std::vector<uint8_t> q = weight_row(c.type, n, 77 + uint32_t(c.type));
        const std::vector<float> a = dequantize(r, q, n), b = dequantize(p, q, n);
        const bool same = std::memcmp(a.data(), b.data(), n * 4) == 0;
        report(same, "to_float", format("%-6s %-6s %s", pn, r.name, same ? "identical" : "differs"));
    }
    if (!r.vec_dot) return;
    if (!p.vec_dot) {
        report(false, "vec_dot", format("%-6s %-6s missing", pn, r.name));
        return;
    }
    // 48 weight rows against one activation row; compare the 48 results as a vector.
    const int rows = 48;
    const std::vector<uint8_t> aq = act_quantize(path, r.vec_dot_type, gaussian(n, 4242));
    std::vector<float> want(rows), got(rows);
    const size_t wrow = row_size(c.type, int64_t(n));
    for (int i = 0; i < rows; ++i) {
        const std::vector<uint8_t> wq = weight_row(c.type, n, 1000 + uint32_t(i));
        r.vec_dot(int64_t(n), &want[size_t(i)], wq.data(), aq.data());
        p.vec_dot(int64_t(n), &got[size_t(i)], wq.data(), aq.data());
        (void)wrow;
    }
    const double e = nmse(want.data(), got.data(), size_t(rows));
    const bool is_override = p.vec_dot != r.vec_dot;
    report(e <= c.dot_max, "vec_dot",
           format("%-6s %-6s nmse %.3e (bound %.0e)%s", pn, r.name, e, c.dot_max, is_override ? "" : "  [reference kernel]"));
    check_dot_n(path, c, n, rows);
    check_tile(path, c, n);
    check_int8_tile(path, c, n);
    check_int8_tile(path, c, n + 2 * size_t(r.block_size));  // rows whose block count is not a multiple of 4
    check_interleaved_tile(path, c, n);
    check_interleaved_tile(path, c, n + size_t(r.block_size));  // an odd block count
}

// ---- llama.cpp's summation orders, emulated in scalar code ----
//
// These pin the orders the F32/F16 kernels promise (cpu/kernels.h): the SIMD kernels must equal
// them bit for bit. (This file is built with -ffp-contract=off, so a*b + c rounds twice here.)

// Lanes added pairwise down to 4 (l + l + width/2), then (0 + 2) + (1 + 3).
float tree_sum(std::vector<float> lanes) {
    for (size_t w = lanes.size() / 2; w >= 4; w /= 2)
        for (size_t l = 0; l < w; ++l) lanes[l] += lanes[l + w];
    return (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
}

// GEMM order: one L-lane accumulator (element i in lane i % L), fused multiply-adds, tree_sum.
float gemm_order_dot(const float* a, const float* b, int64_t n, int lanes) {
    std::vector<float> acc(size_t(lanes), 0.0f);
    for (int64_t i = 0; i < n; ++i) acc[size_t(i % lanes)] = std::fma(a[i], b[i], acc[size_t(i % lanes)]);
    return tree_sum(acc);
}

// Vector-dot order: 4 accumulators of L lanes over steps of 4L, added (0 + 2) + (1 + 3), then the
// path's reduce: tree_sum (AVX-512), or halves then two horizontal adds (AVX2); then the rest
// element by element, in float (F32; the last rest mod L/2 fused) or double (F16).
float unrolled_order_dot(const float* a, const float* b, int64_t n, int lanes, bool rest_in_double) {
    const int64_t step = 4 * int64_t(lanes), body = n / step * step;
    std::vector<std::vector<float>> acc(4, std::vector<float>(size_t(lanes), 0.0f));
    for (int64_t i = 0; i < body; ++i) {
        float& s = acc[size_t(i % step / lanes)][size_t(i % lanes)];
        s = std::fma(a[i], b[i], s);
    }
    std::vector<float> v(static_cast<size_t>(lanes));
    for (int l = 0; l < lanes; ++l) v[size_t(l)] = (acc[0][size_t(l)] + acc[2][size_t(l)]) + (acc[1][size_t(l)] + acc[3][size_t(l)]);
    float sum;
    if (lanes == 16) {
        sum = tree_sum(v);
    } else {  // AVX2: 8 -> 4 lanes, then hadd twice: (t0 + t1) + (t2 + t3)
        float t[4];
        for (int l = 0; l < 4; ++l) t[l] = v[size_t(l)] + v[size_t(l) + 4];
        sum = (t[0] + t[1]) + (t[2] + t[3]);
    }
    if (!rest_in_double) {  // separate multiply and add, but fused for the last (rest mod L/2)
        const int64_t fused = body + (n - body) / (lanes / 2) * (lanes / 2);
        for (int64_t i = body; i < fused; ++i) sum += a[i] * b[i];
        for (int64_t i = fused; i < n; ++i) sum = std::fma(a[i], b[i], sum);
        return sum;
    }
    double d = sum;
    for (int64_t i = body; i < n; ++i) d += double(a[i] * b[i]);
    return float(d);
}

void check_orders(cpu_path path, T type) {
    const cpu_kernels& p = cpu_kernels_for_path(path, type);
    const type_traits& r = type_traits_reference(type);
    const char* pn = cpu_path_name(path);
    if (p.gemm_lanes == 0) {
        report(p.vec_dot == r.vec_dot && !p.vec_dot_unrolled, "orders", format("%-6s %-6s plain-C order (the reference)", pn, r.name));
        return;
    }
    const int L = p.gemm_lanes;
    size_t mismatches = 0, total = 0;
    std::vector<float> want, got;
    for (int64_t n : {int64_t(L), int64_t(4 * L), int64_t(256), int64_t(288), int64_t(4096 + 48), int64_t(37), int64_t(100), int64_t(172), int64_t(190)}) {
        // Values the type represents exactly, so the emulation sees the kernel's inputs.
        std::vector<float> a = weights_like(size_t(n), 9000 + uint32_t(n)), b = gaussian(size_t(n), 9100 + uint32_t(n));
        std::vector<uint8_t> qa(row_size(type, n)), qb(row_size(type, n));
        r.from_float(a.data(), qa.data(), n);
        r.from_float(b.data(), qb.data(), n);
        r.to_float(qa.data(), a.data(), n);
        r.to_float(qb.data(), b.data(), n);
        const float ref_unrolled = unrolled_order_dot(a.data(), b.data(), n, L, type == T::F16);
        float u = 0;
        p.vec_dot_unrolled(n, &u, qa.data(), qb.data());
        mismatches += std::memcmp(&u, &ref_unrolled, 4) != 0;
        ++total;
        want.push_back(ref_unrolled);
        got.push_back(u);
        if (n % L == 0) {  // the GEMM order is defined for whole vectors
            const float ref_gemm = gemm_order_dot(a.data(), b.data(), n, L);
            float g = 0, gn[3] = {0, 0, 0};
            p.vec_dot(n, &g, qa.data(), qb.data());
            p.vec_dot_n(n, gn, 1, qa.data(), qb.data(), 0, 3);  // the same row three times
            for (float x : {g, gn[0], gn[1], gn[2]}) mismatches += std::memcmp(&x, &ref_gemm, 4) != 0;
            total += 4;
            float plain = 0;
            r.vec_dot(n, &plain, qa.data(), qb.data());
            want.push_back(plain);
            got.push_back(g);
        }
    }
    const double e = nmse(want.data(), got.data(), want.size());
    report(mismatches == 0 && e <= 1e-12, "orders",
           format("%-6s %-6s L %d: %zu of %zu differ from the emulated orders; nmse vs plain %.1e", pn, r.name, L, mismatches, total, e));
}

// unrolled_tile (F32): nw keys against nx queries in one call, each output bit for bit the same
// path's vec_dot_unrolled, outputs outside the tile untouched. Head sizes with and without a
// remainder past the 4L-element steps; key counts across the kernels' 32-row blocks.
void check_unrolled_tile(cpu_path path) {
    const cpu_kernels& p = cpu_kernels_for_path(path, T::F32);
    const char* pn = cpu_path_name(path);
    if (!p.unrolled_tile) {
        // Every SIMD path must have one (a lost registration would slow attention silently).
        const bool required = path != cpu_path::scalar && p.gemm_lanes != 0 && p.vec_dot_unrolled;
        report(!required, "unrolled", format("%-6s none: attention loops over vec_dot_unrolled", pn));
        return;
    }
    size_t mismatches = 0, total = 0;
    for (int64_t n : {int64_t(128), int64_t(64), int64_t(72), int64_t(100), int64_t(192 + 13)}) {
        const int64_t n_keys = 70, max_q = 9, ys = n_keys + 3;  // y[i * ys + r]: 3 cells per row stay -1
        const std::vector<float> keys = gaussian(size_t(n_keys * n), 7300 + uint32_t(n)), queries = gaussian(size_t(max_q * n), 7400 + uint32_t(n));
        for (int64_t nw : {int64_t(1), int64_t(5), int64_t(33), n_keys}) {
            for (int64_t nx = 1; nx <= max_q; ++nx) {
                std::vector<float> y(size_t(nx * ys), -1.0f);
                p.unrolled_tile(n, keys.data(), size_t(n) * 4, nw, queries.data(), size_t(n) * 4, nx, y.data(), ys);
                for (int64_t i = 0; i < nx; ++i) {
                    for (int64_t r = 0; r < ys; ++r) {
                        float want = -1.0f;
                        if (r < nw) p.vec_dot_unrolled(n, &want, keys.data() + r * n, queries.data() + i * n);
                        mismatches += std::memcmp(&want, &y[size_t(i * ys + r)], 4) != 0;
                        ++total;
                    }
                }
            }
        }
    }
    report(mismatches == 0, "unrolled", format("%-6s F32 unrolled_tile: %zu of %zu outputs differ from vec_dot_unrolled", pn, mismatches, total));
}

// ---- row operations (cpu/vector_ops.h) ----

void check_vector_ops(cpu_path path) {
    if (!cpu_path_supported(path)) return;
    const vector_ops ops = vector_ops_for_path(path);
    const vector_ops ref = vector_ops_reference();
    const char* pn = cpu_path_name(path);
    if (ops.lanes == 0) {
        report(ops.softmax == ref.softmax, "vector_ops", format("%-6s plain-C (the reference)", pn));
        return;
    }
    // softmax: scores of a long row with -inf padding (masked cells) and a short one with a tail;
    // then, with attention's cutoff, a row spread so wide that most of its exps would be subnormal
    // or zero: the cells below the cutoff must be exactly 0 and no output subnormal.
    for (int64_t n : {int64_t(256), int64_t(13)}) {
        std::vector<float> x = gaussian(size_t(n), 71, 4.0f);
        for (int64_t i = n * 3 / 4; i < n && n > 16; ++i) x[size_t(i)] = -INFINITY;
        std::vector<float> a = x, b = x;
        ref.softmax(a.data(), n, -INFINITY);
        ops.softmax(b.data(), n, -INFINITY);
        bool zeros = true;
        for (int64_t i = n * 3 / 4; i < n && n > 16; ++i) zeros = zeros && b[size_t(i)] == 0.0f;
        const double e = nmse(a.data(), b.data(), size_t(n));
        report(e <= 1e-12 && zeros, "vector_ops", format("%-6s softmax n %lld nmse %.1e (bound 1e-12), masked cells 0: %s", pn, (long long)n, e, zeros ? "yes" : "no"));
    }
    for (int64_t n : {int64_t(512), int64_t(45)}) {
        const float cutoff = -69.0f;
        std::vector<float> x = gaussian(size_t(n), 78, 20.0f);
        std::vector<float> a = x, b = x;
        ref.softmax(a.data(), n, cutoff);
        ops.softmax(b.data(), n, cutoff);
        const float max = *std::max_element(x.begin(), x.end());
        size_t cut = 0, wrong = 0, subnormal = 0;
        for (int64_t i = 0; i < n; ++i) {
            const bool below = x[size_t(i)] - max < cutoff;
            cut += below;
            wrong += below && b[size_t(i)] != 0.0f;
            subnormal += std::fpclassify(b[size_t(i)]) == FP_SUBNORMAL;
        }
        const double e = nmse(a.data(), b.data(), size_t(n));
        report(e <= 1e-12 && cut > 0 && wrong == 0 && subnormal == 0, "vector_ops",
               format("%-6s softmax cutoff %.0f, n %lld: nmse %.1e (bound 1e-12), %zu cells cut, %zu of them not 0, %zu subnormal outputs", pn,
                      double(cutoff), (long long)n, e, cut, wrong, subnormal));
    }
    // SwiGLU over a range that reaches exp's limits (|x| > 88: exp flushes to 0 or inf).
    {
        const int64_t n = 4096 + 5;
        std::vector<float> g = gaussian(size_t(n), 72, 6.0f), u = gaussian(size_t(n), 73);
        g[0] = -120.0f, g[1] = 120.0f, g[2] = 0.0f, g[3] = -88.5f, g[4] = 95.0f;
        std::vector<float> a = g, b = g;
        ref.swiglu(a.data(), u.data(), n);
        ops.swiglu(b.data(), u.data(), n);
        const double e = nmse(a.data(), b.data(), size_t(n));
        report(e <= 1e-12, "vector_ops", format("%-6s swiglu nmse %.1e (bound 1e-12)", pn, e));
    }
    // weighted_rows: 45 value rows of 128 (attention's head size) and of 77 (a masked tail) into a
    // nonzero y, against the same sum in double; then the rows split over two calls at a point
    // that is not a block boundary must give the same bytes as one call.
    for (int64_t n : {int64_t(128), int64_t(77)}) {
        const int64_t rows = 45, stride = n + 3;
        const std::vector<float> v = gaussian(size_t(rows * stride), 74), p = gaussian(size_t(rows), 75), y0 = gaussian(size_t(n), 76);
        std::vector<double> want(y0.begin(), y0.end());
        for (int64_t j = 0; j < rows; ++j)
            for (int64_t e = 0; e < n; ++e) want[size_t(e)] += double(p[size_t(j)]) * double(v[size_t(j * stride + e)]);
        std::vector<float> one = y0, two = y0, want_f(want.begin(), want.end());
        ops.weighted_rows(one.data(), v.data(), stride, p.data(), rows, n);
        ops.weighted_rows(two.data(), v.data(), stride, p.data(), 19, n);
        ops.weighted_rows(two.data(), v.data() + 19 * stride, stride, p.data() + 19, rows - 19, n);
        const double e = nmse(want_f.data(), one.data(), size_t(n));
        const bool split_same = std::memcmp(one.data(), two.data(), size_t(n) * sizeof(float)) == 0;
        report(e <= 1e-12 && split_same, "vector_ops",
               format("%-6s weighted_rows n %lld: nmse %.1e vs double (bound 1e-12), split over two calls identical: %s", pn, (long long)n, e,
                      split_same ? "yes" : "no"));
    }
    // transpose_u16: whole 8 x 8 blocks and ragged edges, between strided rows, equal to the
    // reference element for element (and nothing written outside the destination rows' span).
    for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{64, 40}, {21, 13}, {8, 3}}) {
        const size_t src_stride = size_t(cols + 5) * 2, dst_stride = size_t(rows + 7) * 2;
        std::vector<uint8_t> src(size_t(rows) * src_stride);
        for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 131 + 7);
        std::vector<uint8_t> want(size_t(cols) * dst_stride, 0xEE), got = want;
        ref.transpose_u16(src.data(), src_stride, want.data(), dst_stride, rows, cols);
        ops.transpose_u16(src.data(), src_stride, got.data(), dst_stride, rows, cols);
        report(want == got, "vector_ops", format("%-6s transpose_u16 %lld x %lld: %s the reference", pn, (long long)rows, (long long)cols,
                                                 want == got ? "equals" : "differs from"));
    }
}

// ---- matmul on the active path ----

void check_matmul(thread_pool& pool, const type_case& c, int64_t m);

void check_matmul(thread_pool& pool, const type_case& c) {
    const cpu_kernels& t = cpu_kernels_of(c.type);
    if (!t.vec_dot) return;
    for (int64_t m : {int64_t(1), int64_t(3), int64_t(7)}) check_matmul(pool, c, m);
}

void check_matmul(thread_pool& pool, const type_case& c, int64_t m) {
    const cpu_kernels& t = cpu_kernels_of(c.type);
    const int64_t k = 512, n = 40;
    const std::vector<uint8_t> wq = weight_row(c.type, size_t(k * n), 555 + uint32_t(c.type));
    const std::vector<float> x = gaussian(size_t(k * m), 31337);
    tensor w;
    w.data = wq.data();
    w.type = c.type;
    w.ne[0] = k;
    w.ne[1] = n;
    w.row_stride = row_size(w.type, k);
    std::vector<float> y(size_t(m * n));
    std::vector<uint8_t> scratch;
    matmul(pool, w, x.data(), m, y.data(), scratch);

    // Naive: dequantized weights times the activations rounded through the dot type, in double.
    const std::vector<float> wd = dequantize(type_traits_reference(c.type), wq, size_t(k * n));
    const type_traits& at = type_traits_reference(t.vec_dot_type);
    std::vector<float> xr(x.size());
    for (int64_t i = 0; i < m; ++i) {
        std::vector<uint8_t> q(row_size(t.vec_dot_type, k));
        at.from_float(x.data() + i * k, q.data(), k);
        at.to_float(q.data(), xr.data() + i * k, k);
    }
    std::vector<float> want(y.size());
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t r = 0; r < n; ++r) {
            double s = 0;
            for (int64_t j = 0; j < k; ++j) s += double(wd[size_t(r * k + j)]) * double(xr[size_t(i * k + j)]);
            want[size_t(i * n + r)] = float(s);
        }
    }
    const double e = nmse(want.data(), y.data(), y.size());
    // Only float rounding of the dot separates the two, except for Q8_1 activations (Q4_1, Q5_1):
    // their block sum s = d*sum(q) is stored in fp16, so the min term carries a relative error of
    // up to 2^-11, which the naive loop (using the exact dequantized activations) does not have.
    const double bound = t.vec_dot_type == T::Q8_1 ? 2e-6 : 1e-10;
    report(e <= bound, "matmul", format("%-6s %-6s m %lld nmse %.3e (bound %.0e)", cpu_path_name(cpu_active_path()), t.name, (long long)m, e, bound));
}

std::string default_fixture_dir() {
    std::string f = __FILE__;  // <repo>/native/test/test_kernels.cpp
    for (int i = 0; i < 3; ++i) {
        const size_t s = f.find_last_of('/');
        f = s == std::string::npos ? "." : f.substr(0, s);
    }
    return f + "/test/fixtures/quant";
}

}  // namespace

int main(int argc, char** argv) {
    const std::string fixtures = argc > 1 ? argv[1] : default_fixture_dir();
    const cpu_features& f = cpu_detect();
    std::printf("cpu: avx2 %d fma %d f16c %d avx512f %d bw %d vl %d dq %d vnni %d bf16 %d amx tile %d int8 %d neon %d dotprod %d i8mm %d; "
                "active path %s\n",
                f.avx2, f.fma, f.f16c, f.avx512f, f.avx512bw, f.avx512vl, f.avx512dq, f.avx512vnni, f.avx512bf16, f.amx_tile, f.amx_int8,
                f.neon, f.dotprod, f.i8mm, cpu_path_name(cpu_active_path()));

    for (const type_case& c : k_cases) check_reference(c);
    for (const type_case& c : k_cases) check_fixture(fixtures, c);
    for (const type_case& c : k_cases) check_interleave_layout(c);
    for (cpu_path path : k_cpu_paths) {
        if (!cpu_path_supported(path)) {
            std::printf("skip %-10s %s: not supported by this CPU\n", "path", cpu_path_name(path));
            continue;
        }
        for (const type_case& c : k_cases) check_path(path, c);
        for (T type : {T::F32, T::F16}) check_orders(path, type);
        check_unrolled_tile(path);
        check_vector_ops(path);
    }
    thread_pool pool(2);
    for (const type_case& c : k_cases) check_matmul(pool, c);

    std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "passed", g_failures);
    return g_failures ? 1 : 0;
}
