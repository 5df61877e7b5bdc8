// A MoE layer split between two devices (issue 14, the CPU's half): for every MoE layer of each
// model given, random activations go through ffn_moe whole, and through its steps apart
// (ffn_moe_route, then ffn_moe_experts over a random subset of the experts plus ffn_moe_experts
// over the rest, then ffn_moe_shared), as a GPU holding some experts and the CPU the others would
// compute them. The parts must add up to the whole up to summation order (NMSE <= 1e-12), the
// all-experts run must equal ffn_moe bit for bit, and a subset no token selected must give zeros.
//   moe_split MODEL.gguf...     (exit status 0: all passed)
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../cpu/ffn.h"
#include "../include/moerun.h"

using namespace moerun;

namespace {

double nmse(const std::vector<float>& ref, const std::vector<float>& got) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        num += (double(ref[i]) - got[i]) * (double(ref[i]) - got[i]);
        den += double(ref[i]) * ref[i];
    }
    return den > 0 ? num / den : num;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: moe_split MODEL.gguf...\n");
        return 2;
    }
    int failures = 0, checks = 0;
    thread_pool pool(2);
    std::mt19937 rng(42);
    for (int a = 1; a < argc; ++a) {
        model_load_params lp;
        lp.n_threads = 1;
        auto m = model_load(argv[a], lp);
        const model_config& c = m->config;
        for (size_t il = 0; il < m->weights.layers.size(); ++il) {
            const layer_weights& l = m->weights.layers[il];
            if (!l.is_moe()) continue;
            const int n = 7, d = c.n_embd;
            std::normal_distribution<float> normal(0.0f, 1.0f);
            std::vector<float> x(size_t(n) * size_t(d));
            for (float& v : x) v = normal(rng);

            ffn_scratch s;
            std::vector<float> whole(x.size()), all(x.size()), part_a(x.size()), part_b(x.size()), none(x.size(), 1.0f);
            ffn_moe(pool, c, l, x.data(), n, whole.data(), s, nullptr);

            ffn_moe_route(pool, c, l, x.data(), n, s, nullptr);
            const std::vector<int32_t> selected = s.selected;
            const std::vector<float> weights = s.weights;
            ffn_moe_experts(pool, c, l, x.data(), n, selected.data(), weights.data(), nullptr, all.data(), s, nullptr);
            ffn_moe_shared(pool, c, l, x.data(), n, all.data(), s, nullptr);

            // A random half of the experts on "the device", the rest on the host.
            std::vector<uint8_t> on_a(size_t(c.n_expert)), on_b(size_t(c.n_expert));
            for (int e = 0; e < c.n_expert; ++e) {
                on_a[size_t(e)] = uint8_t(rng() & 1);
                on_b[size_t(e)] = uint8_t(!on_a[size_t(e)]);
            }
            ffn_moe_experts(pool, c, l, x.data(), n, selected.data(), weights.data(), on_a.data(), part_a.data(), s, nullptr);
            ffn_moe_experts(pool, c, l, x.data(), n, selected.data(), weights.data(), on_b.data(), part_b.data(), s, nullptr);
            std::vector<float> sum(x.size());
            for (size_t i = 0; i < sum.size(); ++i) sum[i] = part_a[i] + part_b[i];
            ffn_moe_shared(pool, c, l, x.data(), n, sum.data(), s, nullptr);

            // Experts no token selected: zeros.
            std::vector<uint8_t> unused(size_t(c.n_expert), 1);
            for (int32_t e : selected) unused[size_t(e)] = 0;
            ffn_moe_experts(pool, c, l, x.data(), n, selected.data(), weights.data(), unused.data(), none.data(), s, nullptr);

            // Not vacuous: both halves computed something whenever both hold a selected expert.
            bool a_used = false, b_used = false, a_nonzero = false, b_nonzero = false;
            for (int32_t e : selected) (on_a[size_t(e)] ? a_used : b_used) = true;
            for (size_t i = 0; i < x.size(); ++i) {
                a_nonzero = a_nonzero || part_a[i] != 0.0f;
                b_nonzero = b_nonzero || part_b[i] != 0.0f;
            }
            const bool halves = a_nonzero == a_used && b_nonzero == b_used;

            const bool steps_equal = std::memcmp(whole.data(), all.data(), whole.size() * sizeof(float)) == 0;
            const double split = nmse(whole, sum);
            bool zeros = true;
            for (float v : none) zeros = zeros && v == 0.0f;
            const bool ok = steps_equal && split <= 1e-12 && zeros && halves;
            ++checks;
            failures += !ok;
            std::printf("%s %s layer %zu: steps %s, split NMSE %.3g (halves %s), unselected %s\n", ok ? "ok" : "FAIL", argv[a], il,
                        steps_equal ? "bit-identical" : "DIFFER", split, halves ? "both used" : "WRONG", zeros ? "zeros" : "NOT ZERO");
        }
    }
    std::printf("%d MoE layers checked, %d failed\n", checks, failures);
    return failures == 0 && checks > 0 ? 0 : 1;
}
