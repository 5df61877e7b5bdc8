#include "sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace moerun {

namespace {
uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

sampler::sampler(const sampler_params& params) : params_(params) {
    uint64_t s = params.seed;
    for (auto& word : state_) word = splitmix64(s);
}

double sampler::next_uniform() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return double(result >> 11) * 0x1.0p-53;
}

void sampler::accept(int32_t token) {
    if (params_.repeat_last_n <= 0) return;
    history_.push_back(token);
    while (int(history_.size()) > params_.repeat_last_n) history_.pop_front();
}

int32_t sampler::sample(const float* logits, int n_vocab, const uint32_t* allowed) {
    auto& c = candidates_;
    if (allowed) {
        // Grammar mask: only the allowed tokens become candidates, in token order, found word by
        // word (a strict grammar state allows a few tokens: a scan of zero words, not of n_vocab).
        c.clear();
        const int words = (n_vocab + 31) / 32;
        for (int w = 0; w < words; ++w) {
            for (uint32_t bits = allowed[w]; bits != 0; bits &= bits - 1) {
                const int t = w * 32 + std::countr_zero(bits);
                if (t < n_vocab) c.push_back({logits[t], t});
            }
        }
        if (c.empty()) return -1;
    } else {
        c.resize(size_t(n_vocab));
        for (int i = 0; i < n_vocab; ++i) c[size_t(i)] = {logits[i], i};
    }
#ifdef MOERUN_PLANT_OOB
    // Planted bug, sanitizer builds' moerun_core_planted only (CMakeLists.txt): reads one float
    // past the row, which ASan and the fuzzer must report (test/sanitizers.test.ts).
    volatile float past_end = logits[n_vocab];
    (void)past_end;
#endif

    // Repeat penalty (llama.cpp's rule): divide positive logits, multiply negative ones, once per
    // distinct recent token.
    if (params_.repeat_penalty != 1.0f && !history_.empty()) {
        std::vector<int32_t> seen(history_.begin(), history_.end());
        std::sort(seen.begin(), seen.end());
        seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
        auto penalize = [&](float& l) { l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty; };
        if (allowed) {
            for (auto& [l, t] : c) if (std::binary_search(seen.begin(), seen.end(), t)) penalize(l);
        } else {
            for (int32_t t : seen) if (t >= 0 && t < n_vocab) penalize(c[size_t(t)].first);
        }
    }

    auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    if (params_.temperature <= 0.0f) {
        return std::min_element(c.begin(), c.end(), by_logit)->second;
    }

    // Top-k: keep the k best, sorted descending.
    size_t n = c.size();
    if (params_.top_k > 0 && size_t(params_.top_k) < n) n = size_t(params_.top_k);
    std::partial_sort(c.begin(), c.begin() + std::ptrdiff_t(n), c.end(), by_logit);
    c.resize(n);

    // Softmax over the survivors (at temperature 1, as llama.cpp's top-p/min-p see them).
    auto softmax = [&](float temperature) {
        const float max_l = c[0].first;
        double sum = 0;
        std::vector<double> p(c.size());
        for (size_t i = 0; i < c.size(); ++i) sum += p[i] = std::exp(double(c[i].first - max_l) / temperature);
        for (size_t i = 0; i < c.size(); ++i) p[i] /= sum;
        return p;
    };
    std::vector<double> p = softmax(1.0f);

    // Top-p: smallest prefix whose mass reaches p.
    if (params_.top_p < 1.0f) {
        double cum = 0;
        size_t keep = c.size();
        for (size_t i = 0; i < c.size(); ++i) {
            cum += p[i];
            if (cum >= params_.top_p) { keep = i + 1; break; }
        }
        c.resize(keep);
        p.resize(keep);
    }
    // Min-p: drop tokens below min_p times the best probability.
    if (params_.min_p > 0.0f) {
        size_t keep = 1;
        while (keep < c.size() && p[keep] >= params_.min_p * p[0]) ++keep;
        c.resize(keep);
    }

    p = softmax(params_.temperature);
    double r = next_uniform();
    for (size_t i = 0; i < c.size(); ++i) {
        if (r < p[i]) return c[i].second;
        r -= p[i];
    }
    return c.back().second;
}

}  // namespace moerun
