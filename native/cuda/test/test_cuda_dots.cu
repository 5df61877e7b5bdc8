// The CUDA matmul's arithmetic without a GPU: dot.cuh's functions (the very code the kernels run,
// compiled here for the host) against the CPU's scalar reference (quant/reference.h), for every
// weight type the CUDA backend computes with.
//
//   test_cuda_dots       exits 0 when every check passes, 1 otherwise
//
// For each type: activations quantized as dot.cuh quantizes them must be the reference's blocks
// bit for bit (int8 values, scales, Q8_1 sums, Q8_K sums of 16), and the sum of unit_dot over a
// row must be the reference's vec_dot of the same blocks up to the order floats are added
// (relative error <= 1e-5 per dot product, NMSE over all <= 1e-10). Float weights: activations
// rounded to F16/BF16 as the reference rounds them. The bit tricks dot.cuh uses in place of
// quant/'s tables (IQ sign bytes, MXFP4 scales, TQ1_0 trits) are checked over all their inputs.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "../../quant/types.h"
#include "../dot.cuh"

namespace {

using moerun::tensor_type;

int g_failures = 0;

void check(bool ok, const char* type, const char* what, double value) {
    if (!ok) ++g_failures;
    std::printf("%s %-7s %-44s %.3e\n", ok ? "ok  " : "FAIL", type, what, value);
}

template <tensor_type T>
void test_type(std::mt19937& rng) {
    const char* name = moerun::tensor_type_name(T);
    const int64_t k = 1024, n_rows = 6, n_act = 4;
    const moerun::type_traits& wt = moerun::type_traits_reference(T);
    const moerun::type_traits& at = moerun::type_traits_reference(wt.vec_dot_type);
    std::normal_distribution<float> dist(0.0f, 1.0f);

    // Weights: random rows through the reference quantizer (IQ2_XXS, IQ2_XS and IQ1_S are written
    // only with an importance matrix: a random positive one).
    const size_t w_row = moerun::row_size(T, k);
    std::vector<uint8_t> w(w_row * n_rows);
    std::vector<float> tmp(static_cast<size_t>(k)), imatrix(static_cast<size_t>(k));
    for (int64_t r = 0; r < n_rows; ++r) {
        for (float& v : tmp) v = dist(rng) * 0.1f;
        if (wt.from_float) {
            wt.from_float(tmp.data(), w.data() + size_t(r) * w_row, k);
        } else {
            for (float& v : imatrix) v = 0.5f + std::fabs(dist(rng));
            wt.from_float_imatrix(tmp.data(), w.data() + size_t(r) * w_row, k, imatrix.data());
        }
    }
    // Activations, with a few exact zeros and a large value, as real rows have.
    std::vector<float> x(static_cast<size_t>(k * n_act));
    for (float& v : x) v = dist(rng);
    x[5] = 0.0f;
    x[size_t(k) + 7] = 40.0f;

    mc::act_kind kind;
    if (!mc::act_kind_of(uint32_t(T), &kind)) {
        check(false, name, "has no dot type in dot.cuh", 0);
        return;
    }
    std::vector<uint8_t> act(mc::act_row_bytes(kind, k) * size_t(n_act));
    // Reference activation rows (the vec_dot_type's blocks).
    const size_t a_row = moerun::row_size(wt.vec_dot_type, k);
    std::vector<uint8_t> ref_act(a_row * size_t(n_act));
    for (int64_t r = 0; r < n_act; ++r) at.from_float(x.data() + r * k, ref_act.data() + size_t(r) * a_row, k);

    // ---- the activation blocks ----
    if (mc::act_is_float(kind)) {
        float* f = reinterpret_cast<float*>(act.data());
        for (size_t i = 0; i < x.size(); ++i) f[i] = mc::round_act(x[i], kind);
        if (kind != mc::act_kind::f32) {
            std::vector<float> back(x.size());
            at.to_float(ref_act.data(), back.data(), k * n_act);
            int differ = 0;
            for (size_t i = 0; i < x.size(); ++i) differ += back[i] != f[i];
            check(differ == 0, name, "activations rounded as the reference (differ)", differ);
        }
    } else {
        int differ = 0;
        for (int64_t r = 0; r < n_act; ++r) {
            const mc::act_row_out o = mc::act_row_out_at(act.data(), k, r);
            const uint8_t* ref = ref_act.data() + size_t(r) * a_row;
            if (kind == mc::act_kind::q8_k) {
                for (int64_t sb = 0; sb < k / 256; ++sb) {
                    mc::quantize_super_q8_k(x.data() + r * k + sb * 256, o.q + sb * 256, o.d + sb * 8, o.bsum + sb * 16);
                    const auto* b = reinterpret_cast<const moerun::block_q8_K*>(ref) + sb;
                    for (int j = 0; j < 256; ++j) differ += b->qs[j] != o.q[sb * 256 + j];
                    for (int j = 0; j < 16; ++j) differ += b->bsums[j] != o.bsum[sb * 16 + j];
                    for (int j = 0; j < 8; ++j) differ += b->d != o.d[sb * 8 + j];
                }
            } else {
                const bool q8_1 = kind == mc::act_kind::q8_1;
                for (int64_t u = 0; u < k / 32; ++u) {
                    mc::quantize_unit_q8(x.data() + r * k + u * 32, o.q + u * 32, o.d + u, o.s + u, q8_1);
                    const int8_t* qs;
                    float d, s = 0;
                    if (q8_1) {
                        const auto* b = reinterpret_cast<const moerun::block_q8_1*>(ref) + u;
                        qs = b->qs;
                        d = moerun::fp16_to_fp32(b->d);
                        s = moerun::fp16_to_fp32(b->s);
                    } else {
                        const auto* b = reinterpret_cast<const moerun::block_q8_0*>(ref) + u;
                        qs = b->qs;
                        d = moerun::fp16_to_fp32(b->d);
                    }
                    for (int j = 0; j < 32; ++j) differ += qs[j] != o.q[u * 32 + j];
                    differ += d != o.d[u];
                    if (q8_1) differ += s != o.s[u];
                }
            }
        }
        check(differ == 0, name, "activation blocks as the reference's (differ)", differ);
    }

    // ---- the dot products ----
    double err = 0, norm = 0, worst = 0;
    for (int64_t r = 0; r < n_rows; ++r) {
        for (int64_t a = 0; a < n_act; ++a) {
            float ref;
            wt.vec_dot(k, &ref, w.data() + size_t(r) * w_row, ref_act.data() + size_t(a) * a_row);
            const mc::act_row row = mc::act_row_at(act.data(), k, kind, a);
            double got = 0, mag = 0;
            for (int64_t u = 0; u < (k + 31) / 32; ++u) {
                const float part = mc::unit_dot<T>(w.data() + size_t(r) * w_row, row, u);
                got += part;
                mag += std::fabs(part);
            }
            err += (got - ref) * (got - ref);
            norm += double(ref) * ref;
            worst = std::max(worst, std::fabs(got - ref) / std::max(mag, 1e-30));
        }
    }
    check(worst <= 1e-5, name, "unit_dot sums vs reference vec_dot (worst rel.)", worst);
    check(err / norm <= 1e-10, name, "unit_dot sums vs reference vec_dot (NMSE)", err / norm);

    // ---- the tensor-core form: quads and scales (integer sums of 16, as mma takes them) ----
    if constexpr (mc::has_weight_quads(T)) {
        double qerr = 0, qnorm = 0;
        for (int64_t r = 0; r < n_rows; ++r) {
            const uint8_t* wr = w.data() + size_t(r) * w_row;
            for (int64_t a = 0; a < n_act; ++a) {
                const mc::act_row row = mc::act_row_at(act.data(), k, kind, a);
                for (int64_t u = 0; u < k / 32; ++u) {
                    int half[2] = {0, 0};
                    for (int e = 0; e < 32; e += 4) {
                        half[e / 16] = mc::dp4a(mc::weight_quad<T>(wr, u, e), *reinterpret_cast<const int*>(row.q + u * 32 + e), half[e / 16]);
                    }
                    const mc::unit_scales sc = mc::weight_scales<T>(wr, u);
                    const double got = (double(sc.w0) * half[0] + double(sc.w1) * half[1]) * mc::act_unit_scale(row, u) -
                                       double(sc.m) * mc::act_unit_sum(row, kind, u);
                    const double want = mc::unit_dot<T>(wr, row, u);
                    qerr += (got - want) * (got - want);
                    qnorm += want * want;
                }
            }
        }
        check(qerr / qnorm <= 1e-12, name, "quads and scales vs unit_dot per unit (NMSE)", qerr / qnorm);
    }
}

// The helpers dot.cuh derives instead of reading quant/'s tables, over all their inputs.
void test_helpers() {
    int differ = 0;
    for (uint32_t bits = 0; bits < 128; ++bits) differ += mc::iq_signs8(bits) != moerun::k_iq_signs[bits];
    check(differ == 0, "IQ", "sign bytes as k_iq_signs (differ)", differ);
    differ = 0;
    for (uint32_t e = 0; e < 256; ++e) differ += mc::bits_of(mc::e8m0_half(uint8_t(e))) != mc::bits_of(moerun::e8m0_to_fp32_half(uint8_t(e)));
    check(differ == 0, "MXFP4", "E8M0 scales as e8m0_to_fp32_half (differ)", differ);
    // TQ1_0 trits of every byte value, against the digits of the base-3 fraction it rounds up.
    differ = 0;
    for (uint32_t q = 0; q < 256; ++q) {
        for (int k = 0, pow3 = 1; k < 5; ++k, pow3 *= 3) {
            const uint32_t got = uint32_t(mc::tq1_trits4(q * 0x01010101u, uint32_t(pow3)));
            const int want = int(uint8_t(q * pow3)) * 3 >> 8;
            for (int i = 0; i < 4; ++i) differ += int((got >> (8 * i)) & 0xff) != want;
        }
    }
    check(differ == 0, "TQ1_0", "trits of all 256 bytes (differ)", differ);
    // Sign application: every 4-bit mask on values of both signs.
    differ = 0;
    const int8_t values[4] = {62, -127, 0, 43};
    uint32_t packed = 0;
    for (int i = 0; i < 4; ++i) packed |= uint32_t(uint8_t(values[i])) << (8 * i);
    for (uint32_t s = 0; s < 16; ++s) {
        const uint32_t got = uint32_t(mc::negate_where(packed, s));
        for (int i = 0; i < 4; ++i) differ += int8_t(got >> (8 * i)) != (s >> i & 1 ? -values[i] : values[i]);
    }
    check(differ == 0, "IQ", "signs applied to 4 packed bytes (differ)", differ);
}

}  // namespace

int main() {
    std::mt19937 rng(42);
    test_type<tensor_type::F32>(rng);
    test_type<tensor_type::F16>(rng);
    test_type<tensor_type::BF16>(rng);
    test_type<tensor_type::Q8_0>(rng);
    test_type<tensor_type::Q4_0>(rng);
    test_type<tensor_type::Q4_1>(rng);
    test_type<tensor_type::Q5_0>(rng);
    test_type<tensor_type::Q5_1>(rng);
    test_type<tensor_type::IQ4_NL>(rng);
    test_type<tensor_type::Q2_K>(rng);
    test_type<tensor_type::Q3_K>(rng);
    test_type<tensor_type::Q4_K>(rng);
    test_type<tensor_type::Q5_K>(rng);
    test_type<tensor_type::Q6_K>(rng);
    test_type<tensor_type::IQ4_XS>(rng);
    test_helpers();
    test_type<tensor_type::IQ2_XXS>(rng);
    test_type<tensor_type::IQ2_XS>(rng);
    test_type<tensor_type::IQ2_S>(rng);
    test_type<tensor_type::IQ3_XXS>(rng);
    test_type<tensor_type::IQ3_S>(rng);
    test_type<tensor_type::IQ1_S>(rng);
    test_type<tensor_type::IQ1_M>(rng);
    test_type<tensor_type::TQ1_0>(rng);
    test_type<tensor_type::TQ2_0>(rng);
    test_type<tensor_type::MXFP4>(rng);
    std::printf("%d failed\n", g_failures);
    return g_failures ? 1 : 0;
}
