// libFuzzer target over whole model files: any byte string must load or throw moerun::error, and a
// model that loads must evaluate a prompt and decode a few tokens with no memory error, undefined
// behaviour or leak (ASan + UBSan + LSan). Built by a clang sanitizer build of CMakeLists.txt
// (MOERUN_SANITIZE=address) as fuzz_model; fuzz_model_planted links the core with a planted
// out-of-bounds read, which the fuzzer must find (test/sanitizers.test.ts).
//   build-asan/fuzz_model -max_len=BYTES -rss_limit_mb=2048 -malloc_limit_mb=512 CORPUS/ SEEDS/
// Seeds are whole model files (scripts/fuzz-long.sh makes them), so -max_len must be at least the
// largest seed's size or libFuzzer cuts them.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "../include/moerun.h"

namespace {

constexpr int k_prompt_tokens = 4;
constexpr int k_decode_steps = 3;
// Runaway sizes: weights are bounded by the input (the loader checks every tensor lies inside the
// file), but scratch and KV memory follow hyper-parameters. Models whose per-token activations
// would exceed this many floats are loaded but not evaluated, so a mutated header cannot make
// the harness ask for gigabytes (libFuzzer's -malloc_limit_mb would call that a crash).
constexpr double k_max_activation_floats = 16.0 * 1024 * 1024;

double activation_floats(const moerun::model_config& c) {
    const double heads = double(c.n_head) * std::max({c.head_dim_k, c.head_dim_v, c.head_dim_k_mla, c.head_dim_v_mla});
    const double widths[] = {double(c.n_embd), heads, double(c.n_ff), double(c.n_ff_exp) * std::max(1, c.n_expert_used),
                             double(c.n_expert), double(c.n_vocab), double(c.kv_lora_rank) + c.n_rot,
                             double(c.q_lora_rank), double(c.n_head_kv) * (c.head_dim_k + c.head_dim_v)};
    double sum = 0;
    for (double w : widths) sum += std::max(0.0, w);
    return sum * (k_prompt_tokens + 1) + double(c.n_layer) * double(c.n_head_kv) * (c.head_dim_k + c.head_dim_v) * 16;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        moerun::model_load_params lp;
        lp.n_threads = 1;  // deterministic, and libFuzzer runs one input at a time
        auto model = moerun::model_load_memory(data, size, "fuzz.gguf", lp);
        const moerun::model_config& c = model->config;
        if (c.n_vocab <= 0 || activation_floats(c) > k_max_activation_floats) return 0;

        moerun::session_params sp;
        sp.n_ctx = k_prompt_tokens + k_decode_steps;
        sp.kv_type = moerun::tensor_type::F32;
        moerun::session s(model, sp);
        // Prompt ids from the input's last bytes, so the fuzzer steers them too.
        int32_t prompt[k_prompt_tokens];
        for (int i = 0; i < k_prompt_tokens; ++i) prompt[i] = int32_t(size > size_t(i) ? data[size - 1 - size_t(i)] : i) % c.n_vocab;
        std::vector<float> logits;
        s.evaluate(prompt, k_prompt_tokens, moerun::logits_mode::last, logits, nullptr);
        moerun::sampler_params samp;
        samp.temperature = 0;
        moerun::sampler greedy(samp);
        for (int i = 0; i < k_decode_steps; ++i) {
            int32_t token = greedy.sample(logits.data(), c.n_vocab);
            s.evaluate(&token, 1, moerun::logits_mode::last, logits, nullptr);
        }
    } catch (const moerun::error&) {
        // a refused file, or a refused size (out of memory): both fine
    }
    return 0;
}
