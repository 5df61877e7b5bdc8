// Core-only driver: loads a model and greedily decodes from given token ids, printing the ids and
// tokens/s. Used where Node is absent (the GPU host) and under sanitizers.
//   run_model MODEL.gguf [-n N] [-t THREADS] [--pin] [--kv f32|f16] [--prompt N] [--batch N]
//             [--weights auto|map|copy] [--warmup] [--profile] [--gpu] TOKEN...
// --pin binds each compute thread to its own physical core (model_load_params.pin_threads).
// --prompt N appends N synthetic prompt tokens (for prefill timing); --batch N sets the tokens
// per forward chunk (session_params::n_batch); --weights where the weights are read from
// (model_load_params::weight_memory); --warmup runs the prompt and one decode step once, untimed,
// before the timed run (bench/peer/cpu-scaling.sh: llama.cpp's side warms up too). --profile
// times each backend operation of the decode steps (op_profile.h) and prints them per token, with
// the weight bytes each read and its GB/s (the timers add a little to each op, and on a GPU one
// wait for the queue). --gpu runs on CUDA (MOERUN_CUDA_LIBRARY or the library beside the driver);
// with --profile, each kernel's launches and device time per decode step are printed too.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../base/win32.h"
#include "../include/moerun.h"
#include "op_profile.h"

static int run_model(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s MODEL.gguf [-n N] [-t THREADS] [--kv f32|f16] [--weights auto|map|copy] [--prompt N] [--warmup] [--profile] [--gpu] TOKEN...\n", argv[0]);
        return 2;
    }
    int n_gen = 32, n_threads = 0;
    bool pin = false, warmup = false, profile = false, gpu = false;
    int n_batch = 0;  // session default
    using weight_memory = moerun::model_load_params::weight_memory;
    weight_memory weights = weight_memory::auto_detect;
    moerun::tensor_type kv = moerun::tensor_type::F32;
    std::vector<int32_t> prompt;
    for (int i = 2; i < argc; ++i) {
        if (!std::strcmp(argv[i], "-n") && i + 1 < argc) n_gen = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "-t") && i + 1 < argc) n_threads = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--pin")) pin = true;
        else if (!std::strcmp(argv[i], "--gpu")) gpu = true;
        else if (!std::strcmp(argv[i], "--warmup")) warmup = true;
        else if (!std::strcmp(argv[i], "--profile")) profile = true;
        else if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) n_batch = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--weights") && i + 1 < argc) {
            const char* w = argv[++i];
            weights = !std::strcmp(w, "map") ? weight_memory::map : !std::strcmp(w, "copy") ? weight_memory::copy : weight_memory::auto_detect;
        }
        else if (!std::strcmp(argv[i], "--prompt") && i + 1 < argc) {
            const int np = std::atoi(argv[++i]);
            for (int k = 0; k < np; ++k) prompt.push_back(1 + (k * 37) % 500);
        } else if (!std::strcmp(argv[i], "--kv") && i + 1 < argc) kv = !std::strcmp(argv[++i], "f16") ? moerun::tensor_type::F16 : moerun::tensor_type::F32;
        else prompt.push_back(std::atoi(argv[i]));
    }
    try {
        moerun::model_load_params lp;
        lp.n_threads = n_threads;
        lp.pin_threads = pin;
        if (gpu) lp.gpu = moerun::model_load_params::gpu_mode::cuda;
#ifndef _WIN32  // no CUDA on the win32 build (scripts/prebuild-check.ts links this driver for wine)
        if (gpu && profile) setenv("MOERUN_CUDA_PROFILE", "1", 1);  // the library times each kernel too
#endif
        lp.weights = weights;
        auto model = moerun::model_load(argv[1], lp);
        moerun::profiling_backend* profiler = nullptr;
        if (profile) {
            auto wrapped = std::make_unique<moerun::profiling_backend>(std::move(model->compute));
            profiler = wrapped.get();
            model->compute = std::move(wrapped);
        }
        moerun::session_params sp;
        sp.n_ctx = int(prompt.size()) + n_gen + 1;
        sp.kv_type = kv;
        if (n_batch > 0) sp.n_batch = n_batch;
        moerun::session s(model, sp);
        std::vector<float> logits;
        moerun::sampler_params samp;
        samp.temperature = 0;
        moerun::sampler sm(samp);
        if (warmup) {  // the prompt and one decode step once, untimed: pages, caches and scratch are warm
            s.evaluate(prompt.data(), int(prompt.size()), moerun::logits_mode::last, logits, nullptr);
            int32_t tok = sm.sample(logits.data(), model->config.n_vocab);
            s.evaluate(&tok, 1, moerun::logits_mode::last, logits, nullptr);
            s.truncate(0);
        }
        const auto tp = std::chrono::steady_clock::now();
        s.evaluate(prompt.data(), int(prompt.size()), moerun::logits_mode::last, logits, nullptr);
        const double prompt_sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - tp).count();
        if (profiler) {
            profiler->reset();
            profiler->kernel_profile(1);  // forgets the prompt's kernels
        }
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < n_gen; ++i) {
            int32_t tok = sm.sample(logits.data(), model->config.n_vocab);
            std::printf("%d ", tok);
            s.evaluate(&tok, 1, moerun::logits_mode::last, logits, nullptr);
        }
        const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const moerun::model_info info = moerun::model_get_info(*model);
        std::printf("\nprompt %zu tokens: %.1f tok/s; decode: %.1f tok/s (%d threads%s, %s); weights %s\n", prompt.size(),
                    double(prompt.size()) / prompt_sec, n_gen / sec, model->compute->threads(), model->compute->threads_pinned() ? " pinned" : "",
                    gpu ? info.backend_name.c_str() : info.cpu_path.c_str(), info.weights_copied ? "copied" : "mapped");
        if (profiler && n_gen > 0) {
            std::printf("decode steps: %.1f us each\n", sec * 1e6 / n_gen);
            profiler->print(stdout, n_gen);
            const std::string kernels = profiler->kernel_profile(n_gen);
            if (!kernels.empty()) std::printf("kernels per decode step (device time):\n%s", kernels.c_str());
        }
    } catch (const moerun::error& e) {
        std::fprintf(stderr, "%s: %s\n", moerun::error_code_name(e.code()), e.what());
        return 1;
    }
    return 0;
}

#ifdef _WIN32
// Windows (linked with -municode): the arguments as UTF-8, as the addon gets paths from JS, so
// that a model path may name any file (a char** argv would be in the ANSI code page).
int wmain(int argc, wchar_t** wargv) {
    std::vector<std::string> args;
    for (int i = 0; i < argc; ++i) {
        const int n = WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, nullptr, 0, nullptr, nullptr);
        std::string a(size_t(n > 0 ? n : 1), '\0');
        if (n > 0) WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, a.data(), n, nullptr, nullptr);
        a.resize(std::strlen(a.c_str()));
        args.push_back(std::move(a));
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return run_model(argc, argv.data());
}
#else
int main(int argc, char** argv) { return run_model(argc, argv); }
#endif
