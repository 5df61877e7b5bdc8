// Token sampling: repeat penalty -> top-k -> top-p -> min-p -> temperature -> draw, the order of
// llama.cpp's default chain. Temperature <= 0 is greedy (argmax after the penalty). Seeded with
// our own xoshiro256** so a seed gives the same tokens on every platform.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

namespace moerun {

struct sampler_params {
    float temperature = 0.8f;
    int top_k = 40;            // 0 = off
    float top_p = 0.95f;       // 1 = off
    float min_p = 0.05f;       // 0 = off
    float repeat_penalty = 1.0f;  // 1 = off
    int repeat_last_n = 64;    // how many recent tokens the penalty looks at
    uint64_t seed = 0;
};

class sampler {
public:
    explicit sampler(const sampler_params& params);

    // Picks a token from one row of logits (n_vocab floats). `allowed`, when given, is a bitset of
    // n_vocab bits (token t: bit t & 31 of word t >> 5); only tokens whose bit is set can be
    // picked (a grammar's mask). Returns -1 when no token is allowed.
    int32_t sample(const float* logits, int n_vocab, const uint32_t* allowed = nullptr);
    // Records a token (prompt or generated) for the repeat penalty.
    void accept(int32_t token);

private:
    double next_uniform();  // [0, 1)

    sampler_params params_;
    uint64_t state_[4];
    std::deque<int32_t> history_;
    std::vector<std::pair<float, int32_t>> candidates_;  // (logit or prob, token), reused
};

}  // namespace moerun
