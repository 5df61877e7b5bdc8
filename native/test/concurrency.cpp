// The core's threads and lifetimes, for the sanitizer builds (test/sanitizers.test.ts): under TSan
// every check must run without a data race report, under ASan + LSan without a memory error or leak.
//
//   concurrency MODEL.gguf [--cycles N] [--threads T]
//
// Checks, each printed as "ok <name>: ..." (exit status 1 on the first failure):
//   pool      a thread pool of T threads runs 200 parallel_for jobs; every item is done once
//   shares    the same pool runs 200 run_shares jobs whose shares differ in size (some empty) and
//             one of which is slow: every unit is done once per job, and the slow share's units
//             were run by more than one thread (the others took them over)
//   sessions  two sessions on one model evaluate a prompt and decode from two threads at once
//             (their forward calls take turns on the model's backend); each gives the logits of
//             the same work done alone, bit for bit
//   abort     a third thread sets the abort flag once the evaluation has finished a layer step;
//             evaluate throws ERR_ABORTED with work left undone (the session's counters), and the
//             session then evaluates again with the logits of an unaborted run
//   cycles    N rounds of load -> session -> evaluate -> destroy (leaks show at exit under LSan)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../base/thread_pool.h"
#include "../include/moerun.h"

namespace {

int n_threads = 2;

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "FAIL %s\n", what.c_str());
    std::exit(1);
}

std::vector<int32_t> prompt_of(int n, int n_vocab) {
    std::vector<int32_t> p;
    for (int k = 0; k < n; ++k) p.push_back(1 + (k * 37) % (n_vocab - 1));
    return p;
}

std::shared_ptr<moerun::model> load(const char* path) {
    moerun::model_load_params lp;
    lp.n_threads = n_threads;
    return moerun::model_load(path, lp);
}

// A prompt then greedy decode steps on its own session; the final logits.
std::vector<float> prompt_and_decode(const std::shared_ptr<moerun::model>& m, int n_prompt, int n_decode) {
    moerun::session_params sp;
    sp.n_ctx = n_prompt + n_decode;
    sp.kv_type = moerun::tensor_type::F32;
    moerun::session s(m, sp);
    const auto prompt = prompt_of(n_prompt, m->config.n_vocab);
    std::vector<float> logits;
    s.evaluate(prompt.data(), n_prompt, moerun::logits_mode::last, logits, nullptr);
    moerun::sampler_params samp;
    samp.temperature = 0;
    moerun::sampler greedy(samp);
    for (int i = 0; i < n_decode; ++i) {
        int32_t token = greedy.sample(logits.data(), m->config.n_vocab);
        s.evaluate(&token, 1, moerun::logits_mode::last, logits, nullptr);
    }
    return logits;
}

void check_pool() {
    moerun::thread_pool pool(std::max(2, n_threads));
    const int64_t n = 10007;
    std::vector<int> done(size_t(n), 0);
    for (int job = 0; job < 200; ++job) {
        pool.parallel_for(n, 64, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) ++done[size_t(i)];
        });
    }
    for (int64_t i = 0; i < n; ++i) {
        if (done[size_t(i)] != 200) fail("pool: item " + std::to_string(i) + " done " + std::to_string(done[size_t(i)]) + " times, not 200");
    }
    std::printf("ok pool: %d threads, 200 jobs of %lld items, each item done once per job\n", pool.size(), (long long)n);
}

void check_sessions(const char* path) {
    auto m = load(path);
    const std::vector<float> alone = prompt_and_decode(m, 24, 8);
    std::vector<float> a, b;
    std::thread ta([&] { a = prompt_and_decode(m, 24, 8); });
    std::thread tb([&] { b = prompt_and_decode(m, 24, 8); });
    ta.join();
    tb.join();
    if (a != alone || b != alone) fail("sessions: two concurrent sessions' logits differ from one session's");
    std::printf("ok sessions: two sessions on one model from two threads, 24 prompt + 8 decode tokens each, logits bit-identical to one alone\n");
}

void check_abort(const char* path) {
    auto m = load(path);
    const int n_prompt = 64;
    moerun::session_params sp;
    sp.n_ctx = n_prompt + 1;
    sp.n_batch = 4;  // 16 batches x n_layer layer steps: room to land mid-evaluation
    sp.kv_type = moerun::tensor_type::F32;
    moerun::session s(m, sp);
    const auto prompt = prompt_of(n_prompt, m->config.n_vocab);
    std::atomic<bool> abort{false};
    std::atomic<bool> started{false};
    std::thread aborter([&] {
        while (!started.load()) std::this_thread::yield();
        while (s.counters().layer_steps == 0) std::this_thread::yield();
        abort.store(true);
    });
    std::vector<float> logits;
    bool aborted = false;
    started.store(true);
    try {
        s.evaluate(prompt.data(), n_prompt, moerun::logits_mode::last, logits, &abort);
    } catch (const moerun::error& e) {
        aborted = e.code() == moerun::error_code::aborted;
        if (!aborted) fail(std::string("abort: evaluate threw ") + moerun::error_code_name(e.code()) + ": " + e.what());
    }
    aborter.join();
    const auto w = s.counters();
    if (!aborted) fail("abort: evaluate finished although the flag was set after its first layer step");
    if (w.last_abort_steps_done <= 0 || w.last_abort_steps_done >= w.last_abort_steps_planned) {
        fail("abort: not mid-evaluation: " + std::to_string(w.last_abort_steps_done) + " of " + std::to_string(w.last_abort_steps_planned) + " layer steps");
    }
    // Usable afterwards: drop the batches kept, evaluate the prompt again without abort.
    s.truncate(0);
    s.evaluate(prompt.data(), n_prompt, moerun::logits_mode::last, logits, nullptr);
    if (logits != prompt_and_decode(m, n_prompt, 0)) fail("abort: the session's logits after an abort differ from a fresh session's");
    std::printf("ok abort: stopped after %lld of %lld layer steps; the session then gave a fresh session's logits\n",
                (long long)w.last_abort_steps_done, (long long)w.last_abort_steps_planned);
}

void check_cycles(const char* path, int cycles) {
    for (int i = 0; i < cycles; ++i) prompt_and_decode(load(path), 8, 2);
    std::printf("ok cycles: %d rounds of load, session, 8 prompt + 2 decode tokens, dispose\n", cycles);
}

}  // namespace

void check_shares() {
    moerun::thread_pool pool(std::max(2, n_threads));
    const int nth = pool.size();
    const int64_t n = 4001;
    std::vector<std::atomic<int>> done(static_cast<size_t>(n));
    std::vector<std::thread::id> ran_by(static_cast<size_t>(n));
    std::vector<int64_t> bounds(size_t(nth) + 1);
    int jobs_shared = 0;  // jobs where the slow share's units ran on more than one thread
    for (int job = 0; job < 200; ++job) {
        // Uneven shares, share 0 or 1 empty in some jobs; the last share is the slow one.
        for (int i = 0; i <= nth; ++i) bounds[size_t(i)] = i == nth ? n : n * (int64_t(i) * i + (job % 3 == 0 && i == 1 ? -1 : 0)) / (int64_t(nth) * nth);
        bounds[1] = std::max(bounds[0], bounds[1]);
        const int64_t slow_from = bounds[size_t(nth) - 1];
        pool.run_shares(nth, bounds.data(), [&](int64_t u) {
            if (u >= slow_from) {
                const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(2);
                while (std::chrono::steady_clock::now() < until) {}
            }
            done[size_t(u)].fetch_add(1, std::memory_order_relaxed);
            ran_by[size_t(u)] = std::this_thread::get_id();
        });
        for (int64_t u = 0; u < n; ++u) {
            if (done[size_t(u)].exchange(0) != 1) fail("shares: job " + std::to_string(job) + ": unit " + std::to_string(u) + " not done exactly once");
        }
        bool others = false;
        for (int64_t u = slow_from; u < n; ++u) others = others || ran_by[size_t(u)] != ran_by[size_t(slow_from)];
        jobs_shared += others;
    }
    if (jobs_shared == 0) fail("shares: the slow share's units always ran on one thread: nothing was taken over");
    std::printf("ok shares: %d threads, 200 jobs of %lld units in uneven shares, each unit done once per job; the slow share's units "
                "ran on several threads in %d jobs\n", nth, (long long)n, jobs_shared);
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL.gguf [--cycles N] [--threads T]\n", argv[0]);
        return 2;
    }
    int cycles = 10;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--cycles")) cycles = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--threads")) n_threads = std::atoi(argv[i + 1]);
        else fail(std::string("unknown option ") + argv[i]);
    }
    try {
        check_pool();
        check_shares();
        check_sessions(argv[1]);
        check_abort(argv[1]);
        check_cycles(argv[1], cycles);
    } catch (const moerun::error& e) {
        fail(std::string(moerun::error_code_name(e.code())) + ": " + e.what());
    }
    return 0;
}
