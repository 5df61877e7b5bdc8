// The CUDA routing and RoPE arithmetic without a GPU: route.cuh's functions (the very code the
// moe_route and rope kernels run, compiled here for the host) against the semantics written out
// plainly in double precision: what cpu/ffn.cpp's route_token and cpu/ops.cpp's rope_apply compute.
//
//   test_cuda_ops        exits 0 when every check passes, 1 otherwise
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../route.cuh"

namespace {

int g_failures = 0;

void check(bool ok, const std::string& what, const std::string& detail) {
    if (!ok) ++g_failures;
    std::printf("%s %-66s %s\n", ok ? "ok  " : "FAIL", what.c_str(), detail.c_str());
}

// ---- routing ----

struct expected_route {
    std::vector<int32_t> ids;
    std::vector<double> weights;
};

expected_route route_plainly(const std::vector<float>& logits, const std::vector<float>* bias, const mc_moe& p) {
    const int n = p.n_expert;
    std::vector<double> probs(static_cast<size_t>(n)), score(static_cast<size_t>(n));
    if (p.sigmoid) {
        for (int e = 0; e < n; ++e) probs[size_t(e)] = 1.0 / (1.0 + std::exp(-double(logits[size_t(e)])));
    } else {
        const double mx = *std::max_element(logits.begin(), logits.end());
        double sum = 0;
        for (int e = 0; e < n; ++e) sum += probs[size_t(e)] = std::exp(double(logits[size_t(e)]) - mx);
        for (double& v : probs) v /= sum;
    }
    for (int e = 0; e < n; ++e) score[size_t(e)] = probs[size_t(e)] + (bias ? double((*bias)[size_t(e)]) : 0.0);
    if (p.n_groups > 1) {
        const int per = n / p.n_groups;
        std::vector<std::pair<double, int>> groups;
        for (int g = 0; g < p.n_groups; ++g) {
            std::vector<double> s(score.begin() + g * per, score.begin() + (g + 1) * per);
            std::sort(s.rbegin(), s.rend());
            groups.push_back({per > 1 ? s[0] + s[1] : s[0], g});
        }
        std::stable_sort(groups.begin(), groups.end(), [](auto& a, auto& b) { return a.first > b.first; });
        std::vector<bool> keep(static_cast<size_t>(p.n_groups), false);
        for (int i = 0; i < p.n_group_used; ++i) keep[size_t(groups[size_t(i)].second)] = true;
        for (int e = 0; e < n; ++e) {
            if (!keep[size_t(e / per)]) score[size_t(e)] = -INFINITY;
        }
    }
    std::vector<int32_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return score[size_t(a)] > score[size_t(b)]; });
    expected_route r;
    double sum = 0;
    for (int k = 0; k < p.n_expert_used; ++k) {
        r.ids.push_back(order[size_t(k)]);
        r.weights.push_back(probs[size_t(order[size_t(k)])]);
        sum += r.weights.back();
    }
    for (double& w : r.weights) {
        if (p.norm) w /= std::max(sum, 6.103515625e-5);
        if (p.scale != 0.0f && p.scale != 1.0f) w *= p.scale;
    }
    return r;
}

void test_route(const char* name, mc_moe p, bool with_bias, std::mt19937& rng, int tokens, bool all_equal = false) {
    std::normal_distribution<float> dist(0.0f, 2.0f);
    int id_mismatch = 0;
    double worst = 0;
    for (int t = 0; t < tokens; ++t) {
        std::vector<float> logits(static_cast<size_t>(p.n_expert)), bias(static_cast<size_t>(p.n_expert));
        for (float& v : logits) v = all_equal ? 0.5f : dist(rng);
        for (float& v : bias) v = all_equal ? 0.0f : dist(rng) * 0.05f;
        std::vector<float> probs(static_cast<size_t>(p.n_expert)), score(static_cast<size_t>(p.n_expert)), weights(static_cast<size_t>(p.n_expert_used));
        std::vector<unsigned char> taken(static_cast<size_t>(p.n_expert));
        std::vector<int32_t> ids(static_cast<size_t>(p.n_expert_used));
        mc::route_token(logits.data(), with_bias ? bias.data() : nullptr, p, probs.data(), score.data(), taken.data(), ids.data(), weights.data());
        const expected_route want = route_plainly(logits, with_bias ? &bias : nullptr, p);
        for (int k = 0; k < p.n_expert_used; ++k) {
            id_mismatch += ids[size_t(k)] != want.ids[size_t(k)];
            worst = std::max(worst, std::fabs(double(weights[size_t(k)]) - want.weights[size_t(k)]) / std::max(1e-30, std::fabs(want.weights[size_t(k)])));
        }
    }
    char detail[128];
    std::snprintf(detail, sizeof detail, "%d ids differ, weights worst rel. %.2e", id_mismatch, worst);
    check(id_mismatch == 0 && worst <= 1e-5, std::string("route ") + name, detail);
}

// ---- the moe_route kernel's block-wide routing against route_token ----

__global__ void route_block_kernel(const float* logits, const float* bias, mc_moe p, int32_t* ids, float* weights) {
    MC_DYNAMIC_SHARED(float, sh);
    const int64_t t = blockIdx.x;
    mc::route_token_block(logits + t * p.n_expert, bias, p, sh, ids + t * p.n_expert_used, weights + t * p.n_expert_used);
}

// route_token itself on the device, one thread per token (its expf is the device's, which may
// differ from the host's in the last bit).
__global__ void route_serial_kernel(const float* logits, const float* bias, mc_moe p, int32_t* ids, float* weights) {
    MC_DYNAMIC_SHARED(float, sh);
    const int64_t t = blockIdx.x;
    mc::route_token(logits + t * p.n_expert, bias, p, sh, sh + p.n_expert, reinterpret_cast<unsigned char*>(sh + 2 * p.n_expert),
                    ids + t * p.n_expert_used, weights + t * p.n_expert_used);
}

// Whether kernels can run here: the emulator always; the nvcc build where a GPU is.
bool g_device = false;

// route_token_block with `threads` threads per token must give route_token's ids and weights,
// bit for bit, route_token run on the same device (one thread per token).
void test_route_block(const char* name, mc_moe p, bool with_bias, std::mt19937& rng, int tokens, int threads, bool all_equal = false) {
    if (!g_device) return;
    std::normal_distribution<float> dist(0.0f, 2.0f);
    const size_t n = size_t(p.n_expert), used = size_t(p.n_expert_used);
    std::vector<float> logits(n * size_t(tokens)), bias(n);
    for (float& v : logits) v = all_equal ? 0.5f : dist(rng);
    for (float& v : bias) v = all_equal ? 0.0f : dist(rng) * 0.05f;
    std::vector<int32_t> want_ids(used * size_t(tokens)), got_ids(want_ids.size());
    std::vector<float> want_w(want_ids.size()), got_w(want_ids.size());
    cudaStream_t stream;
    cudaStreamCreate(&stream);
    void *d_logits, *d_bias, *d_ids, *d_w;
    cudaMalloc(&d_logits, logits.size() * sizeof(float));
    cudaMalloc(&d_bias, bias.size() * sizeof(float));
    cudaMalloc(&d_ids, want_ids.size() * sizeof(int32_t));
    cudaMalloc(&d_w, want_w.size() * sizeof(float));
    cudaMemcpyAsync(d_logits, logits.data(), logits.size() * sizeof(float), cudaMemcpyHostToDevice, stream);
    cudaMemcpyAsync(d_bias, bias.data(), bias.size() * sizeof(float), cudaMemcpyHostToDevice, stream);
    const size_t shared = 2 * n * sizeof(float) + n;
    const float* b = with_bias ? static_cast<const float*>(d_bias) : nullptr;
    mc::launch(route_serial_kernel, unsigned(tokens), 1u, shared, stream, static_cast<const float*>(d_logits), b, p,
               static_cast<int32_t*>(d_ids), static_cast<float*>(d_w));
    cudaMemcpyAsync(want_ids.data(), d_ids, want_ids.size() * sizeof(int32_t), cudaMemcpyDeviceToHost, stream);
    cudaMemcpyAsync(want_w.data(), d_w, want_w.size() * sizeof(float), cudaMemcpyDeviceToHost, stream);
    mc::launch(route_block_kernel, unsigned(tokens), unsigned(threads), shared, stream, static_cast<const float*>(d_logits), b, p,
               static_cast<int32_t*>(d_ids), static_cast<float*>(d_w));
    cudaMemcpyAsync(got_ids.data(), d_ids, got_ids.size() * sizeof(int32_t), cudaMemcpyDeviceToHost, stream);
    cudaMemcpyAsync(got_w.data(), d_w, got_w.size() * sizeof(float), cudaMemcpyDeviceToHost, stream);
    const cudaError_t e = cudaStreamSynchronize(stream);
    for (void* d : {d_logits, d_bias, d_ids, d_w}) cudaFree(d);
    cudaStreamDestroy(stream);
    int differ = 0;
    for (size_t i = 0; i < want_ids.size(); ++i) differ += got_ids[i] != want_ids[i] || std::memcmp(&got_w[i], &want_w[i], sizeof(float)) != 0;
    char detail[160];
    std::snprintf(detail, sizeof detail, "%d of %zu (id, weight) pairs differ in a bit; %s", differ, want_ids.size(), cudaGetErrorString(e));
    check(e == cudaSuccess && differ == 0, std::string("route kernel, ") + std::to_string(threads) + " threads: " + name, detail);
}

// ---- RoPE ----

void test_rope(const char* name, bool neox, int head_dim, int n_rot, float base, bool yarn, int pos) {
    mc_rope p{};
    p.neox = neox;
    p.theta_scale = std::pow(base, -2.0f / float(n_rot));  // as the backend computes it
    p.freq_scale = yarn ? 0.25f : 1.0f;
    p.ext_factor = yarn ? 1.0f : 0.0f;
    p.mscale = yarn ? 1.1f : 1.0f;
    p.corr_dims[0] = 4.0f;
    p.corr_dims[1] = 20.0f;
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(head_dim));
    for (float& v : x) v = dist(rng);
    std::vector<float> got = x;
    for (int pair = 0; pair < n_rot / 2; ++pair) mc::rope_pair(got.data(), pair, n_rot, pos, p);
    // Plainly: theta_i = pos * base^(-2i/n_rot); YaRN: mix by the ramp over i, cos/sin scaled.
    std::vector<double> want(x.begin(), x.end());
    for (int i = 0; i < n_rot / 2; ++i) {
        const double theta = pos * std::pow(double(base), -2.0 * i / n_rot);
        double angle = p.freq_scale * theta, mscale = p.mscale;
        if (yarn) {
            const double y = (i - p.corr_dims[0]) / std::max(0.001, double(p.corr_dims[1] - p.corr_dims[0]));
            const double ramp = (1.0 - std::min(1.0, std::max(0.0, y))) * p.ext_factor;
            angle = p.freq_scale * theta * (1.0 - ramp) + theta * ramp;
            mscale *= 1.0 + 0.1 * std::log(1.0 / p.freq_scale);
        }
        const int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
        const double x0 = x[size_t(a)], x1 = x[size_t(b)];
        want[size_t(a)] = (x0 * std::cos(angle) - x1 * std::sin(angle)) * mscale;
        want[size_t(b)] = (x0 * std::sin(angle) + x1 * std::cos(angle)) * mscale;
    }
    double err = 0, norm = 0;
    for (int i = 0; i < head_dim; ++i) {
        err += (got[size_t(i)] - want[size_t(i)]) * (got[size_t(i)] - want[size_t(i)]);
        norm += want[size_t(i)] * want[size_t(i)];
    }
    char detail[64];
    std::snprintf(detail, sizeof detail, "nmse %.2e (bound 1e-10)", err / norm);
    check(err / norm <= 1e-10, std::string("rope ") + name + " pos " + std::to_string(pos), detail);
}

}  // namespace

int main() {
    std::mt19937 rng(11);
    int n_devices = 0;
    g_device = cudaGetDeviceCount(&n_devices) == cudaSuccess && n_devices > 0;
    if (!g_device) {
        cudaGetLastError();
        std::printf("skip route kernel checks: no CUDA device (the emulated build runs them)\n");
    }
    // The kernel on the same shapes, with a block of one warp (several experts per thread) and of
    // 256 threads (DeepSeek V3's 256 experts, one each; 384 experts, some two).
    for (int threads : {32, 256}) {
        test_route_block("softmax top-2 of 8", {8, 2, 0, 0, 1.0f, 1, 1}, false, rng, 50, threads);
        test_route_block("softmax top-8 of 128, normalized", {128, 8, 0, 1, 1.0f, 1, 1}, false, rng, 50, threads);
        test_route_block("sigmoid + bias, 4 of 8 groups, top-8 of 256, norm, x2.5", {256, 8, 1, 1, 2.5f, 8, 4}, true, rng, 50, threads);
        test_route_block("sigmoid + bias, 2 of 4 groups, top-4 of 16, norm, x2.5", {16, 4, 1, 1, 2.5f, 4, 2}, true, rng, 50, threads);
        test_route_block("softmax top-8 of 384, normalized", {384, 8, 0, 1, 1.0f, 1, 1}, false, rng, 20, threads);
        test_route_block("all logits equal (ties: lowest index first)", {16, 4, 0, 1, 1.0f, 1, 1}, false, rng, 1, threads, true);
        test_route_block("all logits equal, groups (lowest group first)", {16, 4, 1, 1, 1.0f, 4, 2}, false, rng, 1, threads, true);
    }
    // Mixtral: softmax top-2 of 8, weights as they are.
    test_route("softmax top-2 of 8", {8, 2, 0, 0, 1.0f, 1, 1}, false, rng, 200);
    // Qwen3-MoE / OLMoE: softmax top-8 of 128, renormalized.
    test_route("softmax top-8 of 128, normalized", {128, 8, 0, 1, 1.0f, 1, 1}, false, rng, 200);
    // DeepSeek V3: sigmoid + selection bias, 8 groups of which 4, top-8 of 256, normalized, x2.5.
    test_route("sigmoid + bias, 4 of 8 groups, top-8 of 256, norm, x2.5", {256, 8, 1, 1, 2.5f, 8, 4}, true, rng, 200);
    // Ling 2.0 shape: sigmoid + bias, 2 of 4 groups, top-4 of 16 (the test model's), x2.5.
    test_route("sigmoid + bias, 2 of 4 groups, top-4 of 16, norm, x2.5", {16, 4, 1, 1, 2.5f, 4, 2}, true, rng, 200);
    // Ties: equal logits pick the lowest experts (and groups) first.
    test_route("all logits equal (ties: lowest index first)", {16, 4, 0, 1, 1.0f, 1, 1}, false, rng, 1, true);
    test_route("all logits equal, groups (lowest group first)", {16, 4, 1, 1, 1.0f, 4, 2}, false, rng, 1, true);

    for (int pos : {0, 5, 37}) {
        test_rope("normal, 64 of 64", false, 64, 64, 10000.0f, false, pos);
        test_rope("neox, 128 of 128", true, 128, 128, 1000000.0f, false, pos);
        test_rope("neox partial, 32 of 64", true, 64, 32, 10000.0f, false, pos);
        test_rope("normal YaRN (x4, ramp 4..20, mscale)", false, 64, 64, 10000.0f, true, pos);
    }
    std::printf("%d failed\n", g_failures);
    return g_failures ? 1 : 0;
}
