// A backend decorator that times each operation of the backend it wraps (run_model --profile):
// per op (matmuls by tensor name without the layer prefix, "attn_q.weight"), its calls, wall
// time and the weight bytes it read, so a decode step's time can be set against the bytes it must
// stream. Each op is timed to its end: the profiler waits for the wrapped backend after it
// (backend::synchronize, a GPU's queue), so a GPU's small ops also carry one wait's latency
// (the "synchronize" row: one empty wait per step). An activation observer set on it does not reach the wrapped backend (set_observer
// is not virtual), so importance-matrix runs are not profiled. Not part of the library: a
// measuring tool for the drivers in native/test/.
#pragma once

#include <chrono>
#include <cstdio>
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "../backend/backend.h"
#include "../backend/model_desc.h"

namespace moerun {

class profiling_backend final : public backend {
public:
    struct op_stats {
        uint64_t calls = 0;
        double seconds = 0;
        double bytes = 0;  // weight bytes read
    };

    explicit profiling_backend(std::unique_ptr<backend> inner) : in_(std::move(inner)) {}

    // Forgets what was timed so far (after a prompt, to profile decode alone).
    void reset() { stats_.clear(); }
    const std::map<std::string, op_stats>& stats() const { return stats_; }

    // One line per op: per step (steps = decode tokens), calls, µs, share, MB of weights, GB/s.
    void print(FILE* out, int steps) const {
        double total = 0;
        for (const auto& [name, s] : stats_) total += s.seconds;
        std::fprintf(out, "%-26s %9s %10s %7s %10s %8s\n", "op (per step)", "calls", "us", "share", "MB", "GB/s");
        double total_bytes = 0;
        for (const auto& [name, s] : stats_) {
            total_bytes += s.bytes;
            std::fprintf(out, "%-26s %9.1f %10.1f %6.1f%% %10.2f %8.1f\n", name.c_str(), double(s.calls) / steps, s.seconds * 1e6 / steps,
                         100 * s.seconds / total, s.bytes / 1e6 / steps, s.seconds > 0 ? s.bytes / s.seconds / 1e9 : 0.0);
        }
        std::fprintf(out, "%-26s %9s %10.1f %6.1f%% %10.2f %8.1f\n", "all ops", "", total * 1e6 / steps, 100.0, total_bytes / 1e6 / steps,
                     total > 0 ? total_bytes / total / 1e9 : 0.0);
    }

    std::string name() const override { return in_->name(); }
    std::string kernel_path() const override { return in_->kernel_path(); }
    int threads() const override { return in_->threads(); }
    bool threads_pinned() const override { return in_->threads_pinned(); }
    void place_weights(const model_config& c, model_weights& w, const weight_placement& p) override { in_->place_weights(c, w, p); }
    uint64_t arrange_host_weights(model_weights& w, const std::function<uint8_t*(const void*)>& dst, const weight_reader& read,
                                  const load_step_fn& step) override {
        return in_->arrange_host_weights(w, dst, read, step);
    }
    std::unique_ptr<buffer> alloc(size_t n_floats) override { return in_->alloc(n_floats); }
    std::unique_ptr<kv_cache> new_kv_cache(const model_config& c, int n_ctx, tensor_type type) override {
        return in_->new_kv_cache(c, n_ctx, type);
    }
    void begin() override {
        in_->begin();
        timed("synchronize", 0, [] {});
    }
    void end() override { in_->end(); }
    void begin_batch(const kv_cache& kv, int pos0, int n) override { in_->begin_batch(kv, pos0, n); }
    void synchronize() override { in_->synchronize(); }
    std::string kernel_profile(int per) override { return in_->kernel_profile(per); }
    expert_cache_counters expert_cache_stats() const override { return in_->expert_cache_stats(); }

    void get_rows(const tensor& w, const int32_t* ids, int n, float* out) override {
        timed("get_rows", 0, [&] { in_->get_rows(w, ids, n, out); });
    }
    void rms_norm(const float* x, const tensor& weight, float* out, int64_t rows, int64_t n, int64_t stride, float eps) override {
        timed("rms_norm", 0, [&] { in_->rms_norm(x, weight, out, rows, n, stride, eps); });
    }
    void rope(float* x, int n_tokens, int64_t token_stride, int n_heads, int head_dim, int n_rot, int pos0, const model_config& c) override {
        timed("rope", 0, [&] { in_->rope(x, n_tokens, token_stride, n_heads, head_dim, n_rot, pos0, c); });
    }
    void matmul(const tensor& w, const float* x, int64_t m, float* y, activation_view view) override {
        timed(weight_name(w), bytes_of(w), [&] { in_->matmul(w, x, m, y, view); });
    }
    void matmul_to_host(const tensor& w, const float* x, int64_t m, float* host_y) override {
        timed(weight_name(w), bytes_of(w), [&] { in_->matmul_to_host(w, x, m, host_y); });
    }
    void matmul_group(std::initializer_list<matmul_job> jobs, const float* x, int64_t m) override {
        std::string key = "group(";
        double bytes = 0;
        for (const matmul_job& j : jobs) {
            if (bytes > 0) key += ',';
            key += short_name(*j.w);
            bytes += bytes_of(*j.w);
        }
        timed(key + ")", bytes, [&] { in_->matmul_group(jobs, x, m); });
    }
    void copy(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols) override {
        timed("copy", 0, [&] { in_->copy(src, src_stride, dst, dst_stride, rows, cols); });
    }
    void add(float* x, const float* y, int64_t n) override { timed("add", 0, [&] { in_->add(x, y, n); }); }
    void add_rms_norm(float* x, const float* y, const tensor& weight, float* out, int64_t rows, int64_t n, float eps) override {
        timed("add_rms_norm", 0, [&] { in_->add_rms_norm(x, y, weight, out, rows, n, eps); });
    }
    void add_bias(float* y, const tensor& b, int64_t rows, int64_t dim) override {
        timed("add_bias", 0, [&] { in_->add_bias(y, b, rows, dim); });
    }
    void kv_store(kv_cache& kv, int layer, const float* k, const float* v, int pos0, int n) override {
        timed("kv_store", 0, [&] { in_->kv_store(kv, layer, k, v, pos0, n); });
    }
    void attention(kv_cache& kv, int layer, const float* q, int n, int pos0, float* out) override {
        timed("attention", 0, [&] { in_->attention(kv, layer, q, n, pos0, out); });
    }
    void ffn_dense(const tensor& gate, const tensor& up, const tensor& down, const float* x, int n, float* out) override {
        timed("ffn_dense", bytes_of(gate) + bytes_of(up) + bytes_of(down), [&] { in_->ffn_dense(gate, up, down, x, n, out); });
    }
    // Bytes: the router, the shared expert, and n_expert_used routed experts per token (an
    // upper bound for a batch, whose tokens share experts; exact for decode).
    void ffn_moe(const model_config& c, const layer_weights& l, const float* x, int n, float* out) override {
        const double per_expert = (bytes_of(l.ffn_gate_exps) + bytes_of(l.ffn_up_exps) + bytes_of(l.ffn_down_exps)) / double(c.n_expert);
        const double used = std::min<double>(double(c.n_expert), double(n) * c.n_expert_used);
        const double bytes = bytes_of(l.ffn_gate_inp) + used * per_expert + bytes_of(l.ffn_gate_shexp) + bytes_of(l.ffn_up_shexp) +
                             bytes_of(l.ffn_down_shexp) + bytes_of(l.ffn_gate_inp_shexp);
        timed("ffn_moe", bytes, [&] { in_->ffn_moe(c, l, x, n, out); });
    }
    void ffn_moe_experts_host(const model_config& c, const layer_weights& l, const float* x, int n, const int32_t* selected,
                              const float* weights, const uint8_t* experts, float* out) override {
        timed("ffn_moe_experts_host", 0, [&] { in_->ffn_moe_experts_host(c, l, x, n, selected, weights, experts, out); });
    }

private:
    static double bytes_of(const tensor& t) { return t ? double(t.row_bytes()) * double(t.rows()) : 0.0; }
    // "blk.3.attn_q.weight" -> "attn_q"
    static std::string short_name(const tensor& t) {
        std::string s = t.name ? *t.name : "?";
        if (s.rfind("blk.", 0) == 0) {
            const size_t dot = s.find('.', 4);
            if (dot != std::string::npos) s = s.substr(dot + 1);
        }
        if (const size_t w = s.rfind(".weight"); w != std::string::npos && w + 7 == s.size()) s.resize(w);
        if (t.slice >= 0) s += "[slice]";
        return s;
    }
    static std::string weight_name(const tensor& t) { return "matmul " + short_name(t); }

    template <class F>
    void timed(const std::string& key, double bytes, F&& f) {
        in_->synchronize();
        const auto t0 = std::chrono::steady_clock::now();
        f();
        in_->synchronize();
        op_stats& s = stats_[key];
        s.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        s.calls += 1;
        s.bytes += bytes;
    }

    std::unique_ptr<backend> in_;
    std::map<std::string, op_stats> stats_;
};

}  // namespace moerun
