// The CUDA backend as the forward pass sees it (backend/backend.h): every operation is a call into
// libmoerun_cuda.so's table (api.h) on device memory. Weights are uploaded to VRAM at load
// (place_weights); activations and the KV cache live on the device; only matmul_to_host (the
// logits) waits for the GPU. The token embedding stays on the host (the mapped file) unless the
// output head shares it: get_rows dequantizes the few rows it needs there and uploads them.
//
// Models larger than the device (issue 14): the placement (runtime/placement.h) keeps some of a
// layer's routed experts, or none, in host memory. Such a layer's MoE step routes on the device,
// brings the token rows, ids and weights to the host (a few KiB), lets the device compute the
// experts it holds while a CPU backend computes the others (ffn_moe_experts_host), and adds the
// host's part on the device.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "../backend/expert_cache.h"
#include "../backend/model_desc.h"
#include "../base/error.h"
#include "../base/memory.h"
#include "../quant/types.h"
#include "loader.h"

namespace moerun {
namespace {

// Raises a failed call's status as the matching error, with the library's message.
void check(const mc_api& api, mc_context* ctx, mc_status s, const char* op) {
    if (s == MC_OK) return;
    const std::string msg = std::string(op) + ": " + api.last_error(ctx);
    switch (s) {
        case MC_OUT_OF_MEMORY: throw error(error_code::out_of_memory, msg);
        case MC_UNSUPPORTED: throw error(error_code::unsupported, msg);
        case MC_INVALID_ARGUMENT: throw error(error_code::invalid_argument, msg);
        case MC_NO_DRIVER:
        case MC_NO_DEVICE: throw error(error_code::no_gpu, msg);
        default: throw error(error_code::internal, msg);
    }
}

// Device memory owned by the backend's context.
class device_memory {
public:
    device_memory() = default;
    device_memory(const mc_api* api, mc_context* ctx, size_t bytes) : api_(api), ctx_(ctx) {
        check(*api, ctx, api->alloc(ctx, bytes, &p_), "cuda: alloc");
        bytes_ = bytes;
    }
    device_memory(device_memory&& o) noexcept { *this = std::move(o); }
    device_memory& operator=(device_memory&& o) noexcept {
        std::swap(api_, o.api_);
        std::swap(ctx_, o.ctx_);
        std::swap(p_, o.p_);
        std::swap(bytes_, o.bytes_);
        return *this;
    }
    ~device_memory() {
        if (p_) api_->free(ctx_, p_);
    }
    void* get() const { return p_; }
    size_t bytes() const { return bytes_; }

private:
    const mc_api* api_ = nullptr;
    mc_context* ctx_ = nullptr;
    void* p_ = nullptr;
    size_t bytes_ = 0;
};

// Page-locked host memory owned by the backend's context, grown to the largest request.
class pinned_memory {
public:
    pinned_memory() = default;
    pinned_memory(const pinned_memory&) = delete;
    pinned_memory& operator=(const pinned_memory&) = delete;
    ~pinned_memory() { release(); }
    void release() {
        if (p_) api_->free_host(ctx_, p_);
        p_ = nullptr;
        bytes_ = 0;
    }
    template <class T>
    T* get(const mc_api* api, mc_context* ctx, size_t n) {
        if (bytes_ < n * sizeof(T)) {
            release();
            check(*api, ctx, api->alloc_host(ctx, n * sizeof(T), &p_), "cuda: page-locked host memory");
            api_ = api;
            ctx_ = ctx;
            bytes_ = n * sizeof(T);
        }
        return static_cast<T*>(p_);
    }

private:
    const mc_api* api_ = nullptr;
    mc_context* ctx_ = nullptr;
    void* p_ = nullptr;
    size_t bytes_ = 0;
};

class device_buffer final : public buffer {
public:
    device_buffer(const mc_api* api, mc_context* ctx, size_t n) : mem_(api, ctx, n * sizeof(float)), n_(n) {}
    float* data() override { return static_cast<float*>(mem_.get()); }
    size_t size() const override { return n_; }

private:
    device_memory mem_;
    size_t n_;
};

// Per layer: (n_ctx, n_head_kv) rows of head_dim_k (keys) and head_dim_v (values) elements of
// `type`, as the CPU's cache. MLA: one latent row per position in k, no v.
struct cuda_kv_cache final : kv_cache {
    const model_config* config = nullptr;
    tensor_type type = tensor_type::F16;
    size_t k_row_bytes = 0, v_row_bytes = 0;
    std::vector<device_memory> k, v;
    size_t bytes() const override {
        size_t total = 0;
        for (size_t i = 0; i < k.size(); ++i) total += k[i].bytes() + v[i].bytes();
        return total;
    }
};

// Weight types the kernels compute with (matmul weights), and types read only as floats.
bool matmul_type_supported(tensor_type t) {
    switch (t) {
        case tensor_type::F32: case tensor_type::F16: case tensor_type::BF16: case tensor_type::Q8_0: case tensor_type::Q4_0:
        case tensor_type::Q4_1: case tensor_type::Q5_0: case tensor_type::Q5_1: case tensor_type::Q2_K: case tensor_type::Q3_K:
        case tensor_type::Q4_K: case tensor_type::Q5_K: case tensor_type::Q6_K: case tensor_type::IQ4_NL: case tensor_type::IQ4_XS:
        case tensor_type::IQ2_XXS: case tensor_type::IQ2_XS: case tensor_type::IQ2_S: case tensor_type::IQ3_XXS: case tensor_type::IQ3_S:
        case tensor_type::IQ1_S: case tensor_type::IQ1_M: case tensor_type::TQ1_0: case tensor_type::TQ2_0: case tensor_type::MXFP4:
            return true;
        default: return false;
    }
}

mc_tensor to_mc(const tensor& t) {
    mc_tensor m{};
    m.data = t.data;
    m.type = uint32_t(t.type);
    for (int i = 0; i < 4; ++i) m.ne[i] = t.ne[i];
    m.row_stride = t.row_stride;
    return m;
}

// A MoE layer whose routed experts are not all on the device: `slots` of them are (the device
// tensors hold only those, in slots), the others are computed by the host. Which ones: the
// expert cache decides as tokens come (weight_placement::expert_cache), else the first `slots`.
struct split_experts {
    int layer = 0;
    int slots = 0;
    tensor host_gate, host_up, host_down;  // the layer's routed experts in host memory (the mapped file)
    tensor gate, up, down;              // on the device, ne[2] = slots (unset when slots = 0)
    device_memory slot_of;              // n_expert int32 on the device: the expert's slot, -1 on the host
    std::vector<int32_t> slot_of_host;  // the same on the host (the device's copy follows it in stream order)
    std::vector<int32_t> expert_in_slot;  // its inverse: `slots` entries, the expert each slot holds (-1: none)
};

class cuda_backend final : public backend {
public:
    cuda_backend(const mc_api* api, mc_context* ctx, const gpu_device_info& dev, const backend_params& params)
        : api_(api), ctx_(ctx), dev_(dev), params_(params) {
        const char* graphs = std::getenv("MOERUN_CUDA_GRAPHS");
        graphs_ = !(graphs && std::strcmp(graphs, "0") == 0);
    }
    ~cuda_backend() override {
        // Device memory goes before the context it belongs to.
        weights_.clear();
        split_.clear();
        scratch_.clear();
        for (device_memory* m : {&stage_gate_, &stage_up_, &stage_down_, &wave_map_}) *m = device_memory();
        for (pinned_memory* p : {&host_x_, &host_ids_, &host_weights_, &host_part_, &wave_maps_host_, &embd_rows_}) p->release();
        api_->destroy(ctx_);
        if (graph_times_.steps + graph_times_.replays > 0 && std::getenv("MOERUN_CUDA_GRAPH_TIMES")) {
            const double n = double(std::max<uint64_t>(graph_times_.steps, 1)), r = double(std::max<uint64_t>(graph_times_.replays, 1));
            std::fprintf(stderr,
                         "cuda graphs: %llu steps recorded (per step: recording %.1f us, ending and launching %.1f us, then waiting %.1f us); "
                         "%llu replayed (launching %.1f us, then waiting %.1f us)\n",
                         (unsigned long long)graph_times_.steps, graph_times_.record_s * 1e6 / n, graph_times_.end_s * 1e6 / n,
                         graph_times_.wait_s * 1e6 / n, (unsigned long long)graph_times_.replays, graph_times_.replay_launch_s * 1e6 / r,
                         graph_times_.replay_wait_s * 1e6 / r);
        }
    }

    std::string name() const override {
        return format("cuda (%s, %.1f GiB, compute capability %d.%d)", dev_.name.c_str(), double(dev_.total_bytes) / (1024.0 * 1024 * 1024),
                      dev_.cc_major, dev_.cc_minor);
    }
    std::string kernel_path() const override { return format("cuda sm_%d%d", dev_.cc_major, dev_.cc_minor); }
    // The host's compute threads where it computes experts, else the one thread that drives the GPU.
    int threads() const override { return host_ ? host_->threads() : 1; }
    bool threads_pinned() const override { return host_ && host_->threads_pinned(); }
    void begin() override {
        if (!capture_error_.empty()) {
            const std::string why = std::move(capture_error_);
            capture_error_.clear();
            throw error(error_code::internal, "cuda: the last decode step, run as a graph, did not run: " + why);
        }
        if (host_) host_->begin();
    }
    void end() override {
        // A graph step without logits (or cut short by an exception) still runs: the cache
        // must hold its keys and values. Only a step that reached its logits is replayed later.
        if (mode_ == step_mode::recording) {
            mode_ = step_mode::plain;
            recorded_kv_ = nullptr;
            if (api_->capture_end(ctx_) == MC_OK) step_unwaited_ = true;
            else capture_error_ = api_->last_error(ctx_);
        } else if (mode_ == step_mode::replaying) {
            mode_ = step_mode::plain;
            if (api_->replay(ctx_, step_pos0_, 1) == MC_OK) step_unwaited_ = true;
            else capture_error_ = api_->last_error(ctx_);
        }
        mode_ = step_mode::plain;
        if (host_) host_->end();
    }
    void begin_batch(const kv_cache& kv, int pos0, int n) override {
        run_recording();
        mode_ = step_mode::plain;
        if (n != 1 || !graphs_ || host_ || observer_) return;
        if (step_unwaited_) check(*api_, ctx_, api_->synchronize(ctx_), "cuda: the last decode step");
        step_unwaited_ = false;
        step_pos0_ = pos0;
        step_kv_ = &kv;
        mode_ = recorded_kv_ == &kv && api_->replay(ctx_, pos0, 0) == MC_OK ? step_mode::replaying : step_mode::record_next;
    }
    void synchronize() override {
        run_recording();
        check(*api_, ctx_, api_->synchronize(ctx_), "cuda: synchronize");
    }
    std::string kernel_profile(int per) override {
        run_recording();
        std::vector<char> report(size_t(1) << 16);
        check(*api_, ctx_, api_->kernel_profile(ctx_, per, report.data(), report.size()), "cuda: kernel_profile");
        return report.data();
    }

    void place_weights(const model_config& c, model_weights& w, const weight_placement& p) override;
    std::unique_ptr<buffer> alloc(size_t n_floats) override { return std::make_unique<device_buffer>(api_, ctx_, n_floats); }
    std::unique_ptr<kv_cache> new_kv_cache(const model_config& c, int n_ctx, tensor_type type) override;

    void get_rows(const tensor& w, const int32_t* ids, int n, float* out) override;
    void rms_norm(const float* x, const tensor& weight, float* out, int64_t rows, int64_t n, int64_t stride, float eps) override {
        if (replaying()) return;
        const float* wv = weight ? static_cast<const float*>(weight.data) : nullptr;
        check(*api_, ctx_, api_->rms_norm(ctx_, x, wv, out, rows, n, stride, eps), "cuda: rms_norm");
    }
    void rope(float* x, int n_tokens, int64_t token_stride, int n_heads, int head_dim, int n_rot, int pos0, const model_config& c) override {
        if (replaying()) return;
        const mc_rope p = rope_params(c, n_rot);
        check(*api_, ctx_, api_->rope(ctx_, x, n_tokens, token_stride, n_heads, head_dim, n_rot, pos0, &p), "cuda: rope");
    }
    static mc_rope rope_params(const model_config& c, int n_rot) {
        mc_rope p{};
        p.neox = c.rope_type == rope_kind::neox;
        p.theta_scale = std::pow(c.rope_freq_base, -2.0f / float(n_rot));  // as cpu/ops.cpp
        p.freq_scale = c.rope_freq_scale;
        p.ext_factor = c.rope_ext_factor;
        p.mscale = c.rope_mscale;
        p.corr_dims[0] = c.rope_corr_dims[0];
        p.corr_dims[1] = c.rope_corr_dims[1];
        return p;
    }
    void matmul(const tensor& w, const float* x, int64_t m, float* y, activation_view) override {
        if (replaying()) return;
        const mc_tensor t = to_mc(w);
        check(*api_, ctx_, api_->matmul(ctx_, &t, x, m, y, w.ne[1]), "cuda: matmul");
    }
    void matmul_to_host(const tensor& w, const float* x, int64_t m, float* host_y) override {
        const size_t n = size_t(m) * size_t(w.ne[1]);
        const step_mode mode = mode_;
        // A replayed step's graph writes the recorded step's logits buffer (nothing was
        // reallocated since: begin_batch checked).
        float* y = mode == step_mode::replaying ? recorded_logits_ : scratch(slot::logits, n);
        if (mode == step_mode::replaying) {
            mode_ = step_mode::plain;
            if (n != recorded_logits_n_) throw error(error_code::internal, "cuda: a replayed decode step asks for other logits than its recording");
            graph_times_.mark = std::chrono::steady_clock::now();
            check(*api_, ctx_, api_->replay(ctx_, step_pos0_, 1), "cuda: a decode step replayed as a graph");
            graph_times_.replay_launch_s += seconds_since(graph_times_.mark);
        } else {
            matmul(w, x, m, y, activation_view::contiguous);
            run_recording();
            if (mode == step_mode::recording) {  // it reached its logits: replayable
                recorded_kv_ = step_kv_;
                recorded_logits_ = y;
                recorded_logits_n_ = n;
            }
        }
        check(*api_, ctx_, api_->download(ctx_, host_y, y, n * sizeof(float)), "cuda: logits");
        step_unwaited_ = false;
        if (mode == step_mode::recording) graph_times_.wait_s += seconds_since(graph_times_.mark);
        if (mode == step_mode::replaying) {
            graph_times_.replay_wait_s += seconds_since(graph_times_.mark);
            graph_times_.replays += 1;
        }
    }
    void matmul_group(std::initializer_list<matmul_job> jobs, const float* x, int64_t m) override {
        if (replaying()) return;
        // x is quantized once for the jobs' common dot type (Qwen3's Q, K and V: 2 kernels fewer).
        std::vector<mc_tensor> w;
        std::vector<float*> y;
        for (const matmul_job& j : jobs) {
            w.push_back(to_mc(*j.w));
            y.push_back(j.y);
        }
        check(*api_, ctx_, api_->matmul_group(ctx_, w.data(), y.data(), int(w.size()), x, m), "cuda: matmul_group");
    }
    void copy(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols) override {
        if (replaying()) return;
        check(*api_, ctx_, api_->copy(ctx_, src, src_stride, dst, dst_stride, rows, cols), "cuda: copy");
    }
    void add(float* x, const float* y, int64_t n) override {
        if (replaying()) return;
        check(*api_, ctx_, api_->add(ctx_, x, y, n), "cuda: add");
    }
    void add_rms_norm(float* x, const float* y, const tensor& weight, float* out, int64_t rows, int64_t n, float eps) override {
        if (replaying()) return;
        const float* wv = weight ? static_cast<const float*>(weight.data) : nullptr;
        check(*api_, ctx_, api_->add_rms_norm(ctx_, x, y, wv, out, rows, n, eps), "cuda: add_rms_norm");
    }
    void add_bias(float* y, const tensor& b, int64_t rows, int64_t dim) override {
        if (replaying()) return;
        check(*api_, ctx_, api_->add_bias(ctx_, y, static_cast<const float*>(b.data), rows, dim), "cuda: add_bias");
    }
    void kv_store(kv_cache& kv, int layer, const float* k, const float* v, int pos0, int n) override;
    void attention_inputs(kv_cache& kv, int layer, float* q, float* k, const float* v, int n, int pos0, const tensor& q_norm,
                          const tensor& k_norm, const model_config& c) override;
    void attention(kv_cache& kv, int layer, const float* q, int n, int pos0, float* out) override;
    void ffn_dense(const tensor& gate, const tensor& up, const tensor& down, const float* x, int n, float* out) override;
    void ffn_moe(const model_config& c, const layer_weights& l, const float* x, int n, float* out) override;

private:
    // Ends the recording of a decode step, if one is under way, and runs it: before the logits
    // are read, and before any call that waits for the device.
    void run_recording() {
        if (mode_ != step_mode::recording) return;
        mode_ = step_mode::plain;
        graph_times_.record_s += seconds_since(graph_times_.mark);
        check(*api_, ctx_, api_->capture_end(ctx_), "cuda: a decode step recorded as a graph");
        graph_times_.end_s += seconds_since(graph_times_.mark);
        graph_times_.steps += 1;
    }
    // Seconds since `mark`, which moves to now.
    static double seconds_since(std::chrono::steady_clock::time_point& mark) {
        const auto now = std::chrono::steady_clock::now();
        const double s = std::chrono::duration<double>(now - mark).count();
        mark = now;
        return s;
    }
    // Scratch regions, each grown to its largest use and reused (one forward call at a time).
    enum class slot { logits, gate, router, ids, weights, expert_h, expert_y, shared, shared_gate, rows, host_part, count };
    float* scratch(slot s, size_t n_floats) {
        if (scratch_.empty()) scratch_.resize(size_t(slot::count));
        device_memory& m = scratch_[size_t(s)];
        if (m.bytes() < n_floats * sizeof(float)) m = device_memory(api_, ctx_, n_floats * sizeof(float) + 1024);
        return static_cast<float*>(m.get());
    }
    void upload_tensor(tensor& t);
    void place_split_experts(const model_config& c, const layer_weights& l, int layer, int slots);
    void load_experts(split_experts& se, const std::vector<expert_cache::load>& loads);
    void upload_expert(const split_experts& se, const tensor& gate, const tensor& up, const tensor& down, int expert, int slot);
    expert_cache_counters expert_cache_stats() const override {
        if (!cache_) return {};
        return {cache_->hits() - warm_.hits, cache_->misses() - warm_.misses, loads_};
    }
    void ffn_moe_split(const model_config& c, const layer_weights& l, split_experts& se, const float* x, int n, const int32_t* ids,
                       const float* weights, float* out);
    bool offload_batch(const split_experts& se, int64_t host_rows, uint64_t host_bytes, int capacity) const;
    void experts_in_waves(const model_config& c, split_experts& se, const float* x, int n, const int32_t* ids, float* h, float* y);
    const float* shared_expert(const layer_weights& l, const float* x, int n);
    void gate_shared_expert(const layer_weights& l, const float* x, int n, float* shared);
    bool shared_joins_experts(const layer_weights& l) const;
    void combine(const model_config& c, const layer_weights& l, const float* x, const float* y, const float* weights, int n, float* out);

    const mc_api* api_;
    mc_context* ctx_;
    gpu_device_info dev_;
    backend_params params_;
    std::unique_ptr<backend> host_;  // computes the experts left in host memory (a CPU backend)
    std::map<const void*, split_experts> split_;  // by the layer's host ffn_gate_exps data
    std::unique_ptr<expert_cache> cache_;          // which experts hold the slots (null: fixed)
    expert_cache_counters warm_;                   // the cache's counters after the initial fill
    uint64_t loads_ = 0;                           // experts copied into slots since then
    std::vector<expert_cache::load> pending_loads_;
    std::vector<uint8_t> resident_, on_host_;
    // Prompt batches computed on the device in waves (weight_placement::offload).
    weight_placement::batch_offload offload_ = weight_placement::batch_offload::automatic;
    int stage_slots_ = 0;                             // staging slots for layers without slots
    device_memory stage_gate_, stage_up_, stage_down_;  // stage_slots_ experts of the largest layer
    device_memory wave_map_;                          // n_expert int32: the current wave's slots
    pinned_memory wave_maps_host_;                    // every wave's map of one layer call
    std::vector<int32_t> wave_experts_;
    // The cost model: the CPU's time per (token, expert) row of each layer's host pass, and the
    // time per byte of a wave pass (copies and kernels), both measured; 0 = not yet.
    std::vector<double> cpu_ns_per_row_;
    double wave_ns_per_byte_ = 0;
    pinned_memory host_x_, host_ids_, host_weights_, host_part_;  // a split layer's rows on the host
    // Decode steps as CUDA graphs (api.h's capture_begin/end/replay). begin_batch of one token
    // decides: a step like the last recorded one that reached its logits (the same cache, no
    // device memory reallocated since, room for its position) is replayed: its ops return at once,
    // and matmul_to_host (or end()) launches the recorded graph at the new position, one launch
    // per token. Any other such step is recorded, from just after its embedding row's upload
    // (get_rows) to its logits' matmul, then run. Not with experts on the host (their steps wait
    // for the host's part), with an activation observer, nor with MOERUN_CUDA_GRAPHS=0.
    enum class step_mode { plain, record_next, recording, replaying };
    bool replaying() const { return mode_ == step_mode::replaying; }
    bool graphs_ = true;
    step_mode mode_ = step_mode::plain;
    int step_pos0_ = 0;
    const kv_cache* step_kv_ = nullptr;
    const kv_cache* recorded_kv_ = nullptr;  // the replayable recording's cache (null: none)
    float* recorded_logits_ = nullptr;       // and where its logits go (recorded_logits_n_ floats)
    size_t recorded_logits_n_ = 0;
    bool step_unwaited_ = false;   // a graph step ran with no download after it (no logits)
    std::string capture_error_;    // such a step's failure, raised by the next begin()
    pinned_memory embd_rows_;      // a graph step's embedding row, uploaded without waiting
    // Where a graph step's host time goes (printed at exit with MOERUN_CUDA_GRAPH_TIMES set).
    struct {
        std::chrono::steady_clock::time_point mark;
        double record_s = 0, end_s = 0, wait_s = 0, replay_launch_s = 0, replay_wait_s = 0;
        uint64_t steps = 0, replays = 0;
    } graph_times_;
    std::vector<device_memory> weights_;
    std::map<const void*, const void*> device_to_host_;  // uploaded weights: device data -> mapped file data
    std::map<const void*, const void*> host_to_device_;  // tied tensors are uploaded once
    std::vector<device_memory> scratch_;
    std::vector<float> host_rows_;  // get_rows staging
};

size_t tensor_bytes(const tensor& t) { return size_t(t.rows()) * t.row_stride; }
// One expert's matrix of a (ne0, ne1, n_expert) tensor, in bytes.
size_t expert_bytes(const tensor& t) { return size_t(t.ne[1]) * t.row_stride; }

void cuda_backend::place_weights(const model_config& c, model_weights& w, const weight_placement& p) {
    // Which layers keep experts on the host: slots < n_expert.
    auto slots_of = [&](size_t il) {
        return il < p.expert_slots.size() && w.layers[il].ffn_gate_exps ? std::min(p.expert_slots[il], c.n_expert) : c.n_expert;
    };
    auto split_layer = [&](size_t il) { return w.layers[il].ffn_gate_exps && slots_of(il) < c.n_expert; };
    const bool embd_on_host = w.token_embd.data != w.output.data;  // the output head does not share it
    // Refuse what the kernels cannot compute before uploading anything.
    uint64_t total = 0;
    std::map<const void*, bool> seen;
    for_each_tensor(w, [&](tensor& t, bool matmul_weight) {
        if (!t) return;
        const char* name = t.name ? t.name->c_str() : "?";
        if (matmul_weight && !matmul_type_supported(t.type)) {
            throw error(error_code::unsupported, format("cuda: tensor '%s' has type %s, which the CUDA backend does not compute with yet "
                                                        "(load with gpu: false to run it on the CPU)", name, tensor_type_name(t.type)));
        }
        if (!matmul_weight && &t != &w.token_embd && t.type != tensor_type::F32) {
            throw error(error_code::unsupported, format("cuda: tensor '%s' has type %s; the CUDA backend reads norms and biases as F32 only",
                                                        name, tensor_type_name(t.type)));
        }
        if (!seen.emplace(t.data, true).second || (&t == &w.token_embd && embd_on_host)) return;
        total += tensor_bytes(t);
    });
    for (size_t il = 0; il < w.layers.size(); ++il) {
        if (!split_layer(il)) continue;
        const layer_weights& l = w.layers[il];
        const uint64_t routed = tensor_bytes(l.ffn_gate_exps) + tensor_bytes(l.ffn_up_exps) + tensor_bytes(l.ffn_down_exps);
        total -= routed - routed / uint64_t(c.n_expert) * uint64_t(slots_of(il));
    }
    if ((int64_t(c.head_dim_k) + 8 * int64_t(c.head_dim_v)) * 4 > 48 * 1024) {  // a query head and 8 warps' output sums in shared memory
        throw error(error_code::unsupported, format("cuda: heads of %d (keys) and %d (values) elements are beyond the attention kernel",
                                                    c.head_dim_k, c.head_dim_v));
    }
    if (c.n_expert_used > 64 || c.n_expert_groups > 64) {
        throw error(error_code::unsupported, format("cuda: %d experts used of %d groups is beyond the routing kernel (64, 64)", c.n_expert_used,
                                                    c.n_expert_groups));
    }
    if (total > dev_.free_bytes) {
        throw error(error_code::out_of_memory, format("cuda: the weights placed on the device need %s and %s has %s free (give a "
                                                      "smaller gpu budget to keep more experts on the host, or load with gpu: false)",
                                                      format_bytes(total).c_str(), dev_.name.c_str(), format_bytes(dev_.free_bytes).c_str()));
    }
    // Upload into a copy and hand it over only when everything is on the device: a failure leaves
    // the caller's weights pointing at the mapped file (gpu 'auto' then runs them on the CPU).
    model_weights placed = w;
    bool any_split = false;
    std::vector<int> cache_slots(placed.layers.size(), 0);
    for (size_t il = 0; il < placed.layers.size(); ++il) {
        if (!split_layer(il)) continue;
        any_split = true;
        cache_slots[il] = slots_of(il);
    }
    if (any_split && p.expert_cache) cache_ = std::make_unique<expert_cache>(cache_slots, c.n_expert);
    for (size_t il = 0; il < placed.layers.size(); ++il) {
        if (split_layer(il)) place_split_experts(c, placed.layers[il], int(il), slots_of(il));
    }
    if (cache_) warm_ = {cache_->hits(), cache_->misses(), 0};
    for_each_tensor(placed, [&](tensor& t, bool) {
        if (!t || (&t == &placed.token_embd && embd_on_host)) return;
        for (size_t il = 0; il < placed.layers.size(); ++il) {
            const layer_weights& l = placed.layers[il];
            if (split_layer(il) && (&t == &l.ffn_gate_exps || &t == &l.ffn_up_exps || &t == &l.ffn_down_exps)) return;  // stays on the host
        }
        upload_tensor(t);
    });
    if (any_split && !host_) host_ = backend_create_cpu(params_);
    if (any_split) {
        offload_ = p.offload;
        cpu_ns_per_row_.assign(placed.layers.size(), 0.0);
        wave_map_ = device_memory(api_, ctx_, size_t(c.n_expert) * sizeof(int32_t));
        bool slotless = false;
        uint64_t gate_bytes = 0, up_bytes = 0, down_bytes = 0;  // one expert of the largest layer
        for (size_t il = 0; il < placed.layers.size(); ++il) {
            if (!split_layer(il)) continue;
            const layer_weights& l = placed.layers[il];
            slotless = slotless || slots_of(il) == 0;
            gate_bytes = std::max<uint64_t>(gate_bytes, expert_bytes(l.ffn_gate_exps));
            up_bytes = std::max<uint64_t>(up_bytes, expert_bytes(l.ffn_up_exps));
            down_bytes = std::max<uint64_t>(down_bytes, expert_bytes(l.ffn_down_exps));
        }
        if (slotless && p.staging_slots > 0) {
            stage_slots_ = p.staging_slots;
            stage_gate_ = device_memory(api_, ctx_, gate_bytes * uint64_t(stage_slots_));
            stage_up_ = device_memory(api_, ctx_, up_bytes * uint64_t(stage_slots_));
            stage_down_ = device_memory(api_, ctx_, down_bytes * uint64_t(stage_slots_));
        }
    }
    w = std::move(placed);
}

// The layer's `slots` device slots, filled with its first experts, and the map of where each
// expert is. With the cache, the fill goes through it, so that it knows what the slots hold.
void cuda_backend::place_split_experts(const model_config& c, const layer_weights& l, int layer, int slots) {
    split_experts se;
    se.layer = layer;
    se.slots = slots;
    se.host_gate = l.ffn_gate_exps;
    se.host_up = l.ffn_up_exps;
    se.host_down = l.ffn_down_exps;
    se.slot_of_host.assign(size_t(c.n_expert), -1);
    se.expert_in_slot.assign(size_t(slots), -1);
    se.slot_of = device_memory(api_, ctx_, size_t(c.n_expert) * sizeof(int32_t));
    if (slots > 0) {
        auto slot_tensor = [&](const tensor& host, tensor& dev) {
            dev = host;
            dev.ne[2] = slots;
            device_memory m(api_, ctx_, expert_bytes(host) * size_t(slots));
            dev.data = m.get();
            dev.location = memory_location::device;
            weights_.push_back(std::move(m));
        };
        slot_tensor(l.ffn_gate_exps, se.gate);
        slot_tensor(l.ffn_up_exps, se.up);
        slot_tensor(l.ffn_down_exps, se.down);
    }
    std::vector<expert_cache::load> fill;
    std::vector<int32_t> first(static_cast<size_t>(slots));
    for (int e = 0; e < slots; ++e) first[size_t(e)] = e;
    if (cache_) {
        resident_.resize(size_t(slots));
        cache_->access(layer, first.data(), slots, resident_.data(), fill);
    } else {
        for (int e = 0; e < slots; ++e) fill.push_back({e, e, -1});
    }
    load_experts(se, fill);
    split_.emplace(l.ffn_gate_exps.data, std::move(se));
}

// Copies each loaded expert's gate, up and down rows into its slot and updates the slot map, on
// the stream (after the work queued before, which used the old map). The source is host memory
// that does not change (the mapped file); the map's host copy is next changed after a wait.
void cuda_backend::load_experts(split_experts& se, const std::vector<expert_cache::load>& loads) {
    for (const expert_cache::load& ld : loads) {
        if (ld.evicted >= 0) se.slot_of_host[size_t(ld.evicted)] = -1;
        se.slot_of_host[size_t(ld.expert)] = ld.slot;
        se.expert_in_slot[size_t(ld.slot)] = ld.expert;
        upload_expert(se, se.gate, se.up, se.down, ld.expert, ld.slot);
    }
    check(*api_, ctx_, api_->upload_async(ctx_, se.slot_of.get(), se.slot_of_host.data(), se.slot_of_host.size() * sizeof(int32_t)),
          "cuda: expert slot map");
}

// Queues the copy of host expert `expert`'s gate, up and down matrices (se's host tensors) into
// slot `slot` of the device tensors gate, up and down (the layer's slots or the staging slots).
void cuda_backend::upload_expert(const split_experts& se, const tensor& gate, const tensor& up, const tensor& down, int expert, int slot) {
    for (const auto& [host, dev] : {std::pair{&se.host_gate, &gate}, std::pair{&se.host_up, &up}, std::pair{&se.host_down, &down}}) {
        const size_t bytes = expert_bytes(*host);
        const uint8_t* src = static_cast<const uint8_t*>(host->data) + size_t(expert) * bytes;
        uint8_t* dst = static_cast<uint8_t*>(const_cast<void*>(dev->data)) + size_t(slot) * bytes;
        check(*api_, ctx_, api_->upload_async(ctx_, dst, src, bytes), "cuda: expert into a slot");
    }
}

void cuda_backend::upload_tensor(tensor& t) {
    const auto again = host_to_device_.find(t.data);
    if (again != host_to_device_.end()) {  // tied (output = token_embd)
        t.data = again->second;
        t.location = memory_location::device;
        return;
    }
    const size_t bytes = tensor_bytes(t);
    device_memory m(api_, ctx_, bytes);
    check(*api_, ctx_, api_->upload(ctx_, m.get(), t.data, bytes), "cuda: upload");
    host_to_device_[t.data] = m.get();
    device_to_host_[m.get()] = t.data;
    t.data = m.get();
    t.location = memory_location::device;
    weights_.push_back(std::move(m));
}

std::unique_ptr<kv_cache> cuda_backend::new_kv_cache(const model_config& c, int n_ctx, tensor_type type) {
    if (type != tensor_type::F32 && type != tensor_type::F16 && type != tensor_type::BF16) {
        throw error(error_code::unsupported, format("session: KV cache type %s is not available on the CUDA backend (F32, F16, BF16 are)",
                                                    tensor_type_name(type)));
    }
    auto cache = std::make_unique<cuda_kv_cache>();
    cache->config = &c;
    cache->type = type;
    cache->k_row_bytes = row_size(type, c.head_dim_k);
    cache->v_row_bytes = c.mla ? 0 : row_size(type, c.head_dim_v);
    const size_t per_layer = size_t(n_ctx) * size_t(c.n_head_kv);
    for (int il = 0; il < c.n_layer; ++il) {
        cache->k.emplace_back(api_, ctx_, per_layer * cache->k_row_bytes);
        cache->v.emplace_back(api_, ctx_, c.mla ? 1 : per_layer * cache->v_row_bytes);
    }
    return cache;
}

void cuda_backend::get_rows(const tensor& w, const int32_t* ids, int n, float* out) {
    const auto host = device_to_host_.find(w.data);
    const void* base = host != device_to_host_.end() ? host->second : w.data;
    if (host == device_to_host_.end() && w.location == memory_location::device) {
        throw error(error_code::internal, "cuda: get_rows: the embedding has no host copy");
    }
    const type_traits& tt = type_traits_reference(w.type);
    if (!tt.to_float) throw error(error_code::unsupported, format("cuda: get_rows: type %s cannot be read as floats", tensor_type_name(w.type)));
    const size_t d = size_t(w.ne[0]);
    const bool graph_step = (mode_ == step_mode::record_next || mode_ == step_mode::replaying) && n == 1;
    run_recording();  // a get_rows inside a recorded step (not the forward pass's): its upload waits
    if (!graph_step) {
        if (mode_ == step_mode::record_next) mode_ = step_mode::plain;
        host_rows_.resize(size_t(n) * d);
        for (int i = 0; i < n; ++i) tt.to_float(static_cast<const uint8_t*>(base) + size_t(ids[i]) * w.row_stride, host_rows_.data() + size_t(i) * d, w.ne[0]);
        check(*api_, ctx_, api_->upload(ctx_, out, host_rows_.data(), host_rows_.size() * sizeof(float)), "cuda: get_rows");
        return;
    }
    // A graph step: the row goes up from page-locked memory without waiting (begin_batch waited
    // for the last step that read it); a step to record is recorded from here.
    float* row = embd_rows_.get<float>(api_, ctx_, d);
    tt.to_float(static_cast<const uint8_t*>(base) + size_t(ids[0]) * w.row_stride, row, w.ne[0]);
    check(*api_, ctx_, api_->upload_async(ctx_, out, row, d * sizeof(float)), "cuda: get_rows");
    if (mode_ == step_mode::replaying) return;
    const mc_status s = api_->capture_begin(ctx_, step_pos0_);
    mode_ = s == MC_OK ? step_mode::recording : step_mode::plain;
    if (s == MC_UNSUPPORTED) graphs_ = false;  // kernel timing: the step runs as it comes
    else check(*api_, ctx_, s, "cuda: recording a decode step");
    graph_times_.mark = std::chrono::steady_clock::now();
}

void cuda_backend::kv_store(kv_cache& kv, int il, const float* k, const float* v, int pos0, int n) {
    if (replaying()) return;
    auto& cache = static_cast<cuda_kv_cache&>(kv);
    const model_config& c = *cache.config;
    // Token i's heads are contiguous in k/v and in the cache's slots (pos, head): one block of
    // rows each, keys and values in one kernel.
    const int64_t rows = int64_t(n) * c.n_head_kv;
    check(*api_, ctx_, api_->kv_store(ctx_, uint32_t(cache.type), pos0, c.n_head_kv, rows, k, c.head_dim_k, c.head_dim_k, cache.k[size_t(il)].get(),
                                      cache.k_row_bytes, v, c.head_dim_v, c.head_dim_v, v ? cache.v[size_t(il)].get() : nullptr,
                                      cache.v_row_bytes),
          "cuda: kv_store");
}

// One kernel where the Q/K norms are per head (or absent) and the layer has values to store;
// otherwise (a norm over a token's whole projection, as OLMoE's) the separate calls.
void cuda_backend::attention_inputs(kv_cache& kv, int il, float* q, float* k, const float* v, int n, int pos0, const tensor& q_norm,
                                    const tensor& k_norm, const model_config& c) {
    if (replaying()) return;
    const auto per_head = [&](const tensor& w) { return !w || (w.ne[0] == c.head_dim_k && w.type == tensor_type::F32); };
    if (!v || !per_head(q_norm) || !per_head(k_norm)) {
        backend::attention_inputs(kv, il, q, k, v, n, pos0, q_norm, k_norm, c);
        return;
    }
    auto& cache = static_cast<cuda_kv_cache&>(kv);
    mc_attention_inputs p{};
    p.n_head = c.n_head;
    p.n_head_kv = c.n_head_kv;
    p.head_dim_k = c.head_dim_k;
    p.head_dim_v = c.head_dim_v;
    p.n_rot = c.n_rot;
    p.q_norm = q_norm ? static_cast<const float*>(q_norm.data) : nullptr;
    p.k_norm = k_norm ? static_cast<const float*>(k_norm.data) : nullptr;
    p.eps = c.norm_eps;
    p.rope = rope_params(c, c.n_rot);
    p.cache_type = uint32_t(cache.type);
    p.k_cache = cache.k[size_t(il)].get();
    p.k_row_bytes = cache.k_row_bytes;
    p.v_cache = cache.v[size_t(il)].get();
    p.v_row_bytes = cache.v_row_bytes;
    check(*api_, ctx_, api_->attention_inputs(ctx_, q, k, v, n, pos0, &p), "cuda: attention_inputs");
}

void cuda_backend::attention(kv_cache& kv, int il, const float* q, int n, int pos0, float* out) {
    if (replaying()) return;
    auto& cache = static_cast<cuda_kv_cache&>(kv);
    const model_config& c = *cache.config;
    mc_kv_view view{};
    view.type = uint32_t(cache.type);
    view.k = cache.k[size_t(il)].get();
    view.v = c.mla ? view.k : cache.v[size_t(il)].get();  // MLA: values are the latent part of each key row
    view.k_row_bytes = cache.k_row_bytes;
    view.v_row_bytes = c.mla ? cache.k_row_bytes : cache.v_row_bytes;
    view.n_head = c.n_head;
    view.n_head_kv = c.n_head_kv;
    view.head_dim_k = c.head_dim_k;
    view.head_dim_v = c.head_dim_v;
    view.scale = c.attn_scale != 0.0f ? c.attn_scale : 1.0f / std::sqrt(float(c.head_dim_k));
    check(*api_, ctx_, api_->attention(ctx_, &view, q, n, pos0, out), "cuda: attention");
}

// Gate and up in one pass over one rounding of x, with SwiGLU in the same kernel (the experts'
// kernel with no ids), then down.
void cuda_backend::ffn_dense(const tensor& gate, const tensor& up, const tensor& down, const float* x, int n, float* out) {
    if (replaying()) return;
    float* h = scratch(slot::gate, size_t(n) * size_t(gate.ne[1]));
    const mc_tensor g = to_mc(gate), u = to_mc(up);
    check(*api_, ctx_, api_->moe_gate_up(ctx_, &g, &u, x, nullptr, nullptr, n, 1, h, nullptr, nullptr), "cuda: ffn gate/up");
    matmul(down, h, n, out, activation_view::contiguous);
}

// Router, top-k and weights on the device; experts as two grouped passes over the (token, slot)
// rows (gate/up fused with SwiGLU, then down); the weighted combine in slot order; the shared
// expert. No expert id reaches the host.
void cuda_backend::ffn_moe(const model_config& c, const layer_weights& l, const float* x, int n, float* out) {
    if (replaying()) return;
    const int n_used = c.n_expert_used;
    const int64_t d = c.n_embd, rows = int64_t(n) * n_used;
    float* logits = scratch(slot::router, size_t(n) * size_t(c.n_expert));
    matmul(l.ffn_gate_inp, x, n, logits, activation_view::contiguous);
    auto* ids = reinterpret_cast<int32_t*>(scratch(slot::ids, size_t(rows)));
    float* weights = scratch(slot::weights, size_t(rows));
    mc_moe p{};
    p.n_expert = c.n_expert;
    p.n_expert_used = n_used;
    p.sigmoid = c.gating == expert_gating::sigmoid;
    p.norm = c.expert_weights_norm;
    p.scale = c.expert_weights_scale;
    p.n_groups = c.n_expert_groups;
    p.n_group_used = c.n_group_used;
    const float* bias = l.ffn_exp_probs_b ? static_cast<const float*>(l.ffn_exp_probs_b.data) : nullptr;
    check(*api_, ctx_, api_->moe_route(ctx_, logits, bias, n, &p, ids, weights), "cuda: moe_route");

    const auto split = split_.find(l.ffn_gate_exps.data);
    if (split != split_.end()) {
        ffn_moe_split(c, l, split->second, x, n, ids, weights, out);
        return;
    }
    // A shared expert of the routed experts' shape (Ling's) joins their two passes: its rows
    // follow the routed ones in h and y, and a decode step runs 4 kernels fewer.
    const bool joined = shared_joins_experts(l);
    const int64_t all_rows = rows + (joined ? n : 0);
    float* h = scratch(slot::expert_h, size_t(all_rows) * size_t(c.n_ff_exp));
    float* y = scratch(slot::expert_y, size_t(all_rows) * size_t(d));
    const mc_tensor gate = to_mc(l.ffn_gate_exps), up = to_mc(l.ffn_up_exps), down = to_mc(l.ffn_down_exps);
    mc_tensor shared_gate{}, shared_up{}, shared_down{};
    if (joined) {
        shared_gate = to_mc(l.ffn_gate_shexp);
        shared_up = to_mc(l.ffn_up_shexp);
        shared_down = to_mc(l.ffn_down_shexp);
    }
    check(*api_, ctx_, api_->moe_gate_up(ctx_, &gate, &up, x, ids, nullptr, n, n_used, h, joined ? &shared_gate : nullptr,
                                         joined ? &shared_up : nullptr),
          "cuda: moe_gate_up");
    check(*api_, ctx_, api_->moe_down(ctx_, &down, h, ids, nullptr, rows, y, joined ? &shared_down : nullptr, joined ? n : 0), "cuda: moe_down");
    if (!joined) {
        combine(c, l, x, y, weights, n, out);
        return;
    }
    float* shared = y + rows * d;
    gate_shared_expert(l, x, n, shared);
    check(*api_, ctx_, api_->moe_combine(ctx_, y, weights, n, n_used, d, shared, out), "cuda: moe_combine");
}

// Whether the layer's shared expert can join the routed experts' passes: the same types and
// shapes, gate and up of one type (the passes' fused SwiGLU), all on the device.
bool cuda_backend::shared_joins_experts(const layer_weights& l) const {
    const auto on_device = [](const tensor& t) { return t.location == memory_location::device; };
    return l.shared_expert_like_routed() && l.ffn_gate_exps.type == l.ffn_up_exps.type && on_device(l.ffn_gate_shexp) &&
           on_device(l.ffn_up_shexp) && on_device(l.ffn_down_shexp) && on_device(l.ffn_gate_exps) && on_device(l.ffn_up_exps) &&
           on_device(l.ffn_down_exps);
}

// A layer with experts on the host: the token rows, ids and weights go to the host (one wait, for
// the routing and these copies). The device computes the rows of the experts it holds; the rows
// of the others are computed either by the CPU, while the device works (the host's part then goes
// back without a wait and is added on the device), or, for a prompt batch where the cost model
// says so, on the device too, their experts copied in waves (experts_in_waves).
void cuda_backend::ffn_moe_split(const model_config& c, const layer_weights& l, split_experts& se, const float* x, int n,
                                 const int32_t* ids, const float* weights, float* out) {
    const int n_used = c.n_expert_used;
    const int64_t d = c.n_embd, rows = int64_t(n) * n_used;
    const size_t n_rows = size_t(rows), n_values = size_t(n) * size_t(d);
    float* hx = host_x_.get<float>(api_, ctx_, n_values);
    int32_t* hids = host_ids_.get<int32_t>(api_, ctx_, n_rows);
    float* hweights = host_weights_.get<float>(api_, ctx_, n_rows);
    float* hpart = host_part_.get<float>(api_, ctx_, n_values);
    check(*api_, ctx_, api_->download_async(ctx_, hids, ids, n_rows * sizeof(int32_t)), "cuda: expert ids to the host");
    check(*api_, ctx_, api_->download_async(ctx_, hweights, weights, n_rows * sizeof(float)), "cuda: expert weights to the host");
    check(*api_, ctx_, api_->download_async(ctx_, hx, x, n_values * sizeof(float)), "cuda: expert inputs to the host");
    check(*api_, ctx_, api_->synchronize(ctx_), "cuda: routing");
    // What the device holds now (the map its kernels below read): the rest is the host's.
    on_host_.assign(se.slot_of_host.size(), 0);
    int64_t host_rows = 0;
    uint64_t host_bytes = 0;
    const uint64_t one_expert = expert_bytes(se.host_gate) + expert_bytes(se.host_up) + expert_bytes(se.host_down);
    for (size_t r = 0; r < n_rows; ++r) {
        const int32_t e = hids[r];
        if (se.slot_of_host[size_t(e)] >= 0) continue;
        ++host_rows;
        if (!on_host_[size_t(e)]) host_bytes += one_expert;
        on_host_[size_t(e)] = 1;
    }
    float* h = scratch(slot::expert_h, n_rows * size_t(c.n_ff_exp));
    float* y = scratch(slot::expert_y, n_rows * size_t(d));
    check(*api_, ctx_, api_->zero(ctx_, y, int64_t(n_rows) * d), "cuda: zero");  // rows no pass computes stay 0
    if (se.slots > 0) {
        const mc_tensor gate = to_mc(se.gate), up = to_mc(se.up), down = to_mc(se.down);
        const auto* slot_of = static_cast<const int32_t*>(se.slot_of.get());
        check(*api_, ctx_, api_->moe_gate_up(ctx_, &gate, &up, x, ids, slot_of, n, n_used, h, nullptr, nullptr), "cuda: moe_gate_up");
        check(*api_, ctx_, api_->moe_down(ctx_, &down, h, ids, slot_of, rows, y, nullptr, 0), "cuda: moe_down");
    }
    const int capacity = se.slots > 0 ? se.slots : stage_slots_;
    if (host_rows > 0 && offload_batch(se, host_rows, host_bytes, capacity)) {
        const auto t0 = std::chrono::steady_clock::now();
        experts_in_waves(c, se, x, n, ids, h, y);
        combine(c, l, x, y, weights, n, out);
        check(*api_, ctx_, api_->synchronize(ctx_), "cuda: experts in waves");  // measured, for the cost model
        const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
        const double per_byte = ns / double(host_bytes);
        wave_ns_per_byte_ = wave_ns_per_byte_ > 0 ? 0.5 * (wave_ns_per_byte_ + per_byte) : per_byte;
        return;
    }
    combine(c, l, x, y, weights, n, out);
    if (host_rows > 0) {
        const auto t0 = std::chrono::steady_clock::now();
        host_->ffn_moe_experts_host(c, l, hx, n, hids, hweights, on_host_.data(), hpart);
        const double per_row = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / double(host_rows);
        double& model = cpu_ns_per_row_[size_t(se.layer)];
        model = model > 0 ? 0.5 * (model + per_row) : per_row;
        float* part = scratch(slot::host_part, n_values);
        check(*api_, ctx_, api_->upload_async(ctx_, part, hpart, n_values * sizeof(float)), "cuda: host experts' part");
        add(out, part, int64_t(n_values));
    }
    // The cache sees each token's experts: misses get a slot for the tokens after these.
    if (cache_ && se.slots > 0) {
        pending_loads_.clear();
        resident_.resize(size_t(n_used));
        for (int t = 0; t < n; ++t) cache_->access(se.layer, hids + size_t(t) * size_t(n_used), n_used, resident_.data(), pending_loads_);
        if (!pending_loads_.empty()) {
            load_experts(se, pending_loads_);
            loads_ += pending_loads_.size();
        }
    }
}

// Whether the host's rows of this batch are cheaper on the device, their experts copied there:
// the measured time per byte of a wave pass against the CPU's measured time per row. Until the
// CPU has been measured on the layer, only batches of 32 tokens' rows and more go to the device
// (llama.cpp offloads from 32 tokens); until a wave pass has been, it is taken to cost 50 ps per
// byte (20 GB/s over PCIe).
bool cuda_backend::offload_batch(const split_experts& se, int64_t host_rows, uint64_t host_bytes, int capacity) const {
    using mode = weight_placement::batch_offload;
    if (capacity == 0 || offload_ == mode::never) return false;
    if (offload_ == mode::always) return true;
    const double cpu = cpu_ns_per_row_[size_t(se.layer)];
    if (cpu <= 0) return host_rows >= 32;
    const double wave = wave_ns_per_byte_ > 0 ? wave_ns_per_byte_ : 0.05;
    return double(host_bytes) * wave < double(host_rows) * cpu;
}

// The rows of the experts the device does not hold (marked in on_host_), computed there: the
// experts go through `capacity` slots (the layer's, where the cache then keeps them, or the
// staging slots) a wave at a time; each wave's map names only its experts, so each row is
// computed once, into y.
void cuda_backend::experts_in_waves(const model_config& c, split_experts& se, const float* x, int n, const int32_t* ids, float* h,
                                    float* y) {
    const int n_used = c.n_expert_used;
    const int64_t rows = int64_t(n) * n_used;
    wave_experts_.clear();
    for (int e = 0; e < c.n_expert; ++e) {
        if (on_host_[size_t(e)]) wave_experts_.push_back(e);
    }
    const bool staged = se.slots == 0;
    const int capacity = staged ? stage_slots_ : se.slots;
    const size_t waves = (wave_experts_.size() + size_t(capacity) - 1) / size_t(capacity);
    int32_t* maps = wave_maps_host_.get<int32_t>(api_, ctx_, waves * size_t(c.n_expert));  // each wave's map stays until the next wait
    tensor gate = se.gate, up = se.up, down = se.down;
    if (staged) {
        auto stage = [&](const tensor& host, tensor& dev, const device_memory& m) {
            dev = host;
            dev.ne[2] = capacity;
            dev.data = m.get();
            dev.location = memory_location::device;
        };
        stage(se.host_gate, gate, stage_gate_);
        stage(se.host_up, up, stage_up_);
        stage(se.host_down, down, stage_down_);
    }
    for (size_t w = 0; w < waves; ++w) {
        const size_t first = w * size_t(capacity), count = std::min(size_t(capacity), wave_experts_.size() - first);
        int32_t* map = maps + w * size_t(c.n_expert);
        std::fill(map, map + c.n_expert, -1);
        if (staged) {
            for (size_t i = 0; i < count; ++i) {
                const int e = wave_experts_[first + i];
                map[e] = int32_t(i);
                upload_expert(se, gate, up, down, e, int(i));
            }
        } else {
            // Through the cache: the wave's experts take the least recently used slots (none of
            // them is resident, and a wave is at most the slots), and stay there afterwards.
            pending_loads_.clear();
            resident_.resize(count);
            const int32_t* wave = wave_experts_.data() + first;
            if (cache_) {
                cache_->access(se.layer, wave, int(count), resident_.data(), pending_loads_);
            } else {
                for (size_t i = 0; i < count; ++i) pending_loads_.push_back({wave[i], int(i), se.expert_in_slot[i]});
            }
            load_experts(se, pending_loads_);
            loads_ += pending_loads_.size();
            for (size_t i = 0; i < count; ++i) map[wave[i]] = se.slot_of_host[size_t(wave[i])];
        }
        check(*api_, ctx_, api_->upload_async(ctx_, wave_map_.get(), map, size_t(c.n_expert) * sizeof(int32_t)), "cuda: wave map");
        const mc_tensor g = to_mc(gate), u = to_mc(up), dn = to_mc(down);
        const auto* wave_map = static_cast<const int32_t*>(wave_map_.get());
        check(*api_, ctx_, api_->moe_gate_up(ctx_, &g, &u, x, ids, wave_map, n, n_used, h, nullptr, nullptr), "cuda: moe_gate_up (wave)");
        check(*api_, ctx_, api_->moe_down(ctx_, &dn, h, ids, wave_map, rows, y, nullptr, 0), "cuda: moe_down (wave)");
    }
    if (!staged && !cache_) {
        // Without the cache the slots hold the layer's first experts: put them back.
        pending_loads_.clear();
        std::fill(se.slot_of_host.begin(), se.slot_of_host.end(), -1);
        std::fill(se.expert_in_slot.begin(), se.expert_in_slot.end(), -1);
        for (int i = 0; i < se.slots; ++i) pending_loads_.push_back({i, i, -1});
        load_experts(se, pending_loads_);
    }
}

// The layer's shared expert of x (n x d) in scratch, gated where the model gates it; null where
// the layer has none.
const float* cuda_backend::shared_expert(const layer_weights& l, const float* x, int n) {
    if (!l.ffn_up_shexp) return nullptr;
    const int64_t d = l.ffn_down_shexp.ne[1];
    float* shared = scratch(slot::shared, size_t(n) * size_t(d));
    ffn_dense(l.ffn_gate_shexp, l.ffn_up_shexp, l.ffn_down_shexp, x, n, shared);
    gate_shared_expert(l, x, n, shared);
    return shared;
}

// shared (n x d) *= sigmoid(x . ffn_gate_inp_shexp) per token, where the layer gates its shared
// expert (qwen2moe).
void cuda_backend::gate_shared_expert(const layer_weights& l, const float* x, int n, float* shared) {
    if (!l.ffn_gate_inp_shexp) return;
    // The gate is an (n_embd) vector: a matmul with one output row.
    tensor g = l.ffn_gate_inp_shexp;
    g.ne[1] = 1;
    g.row_stride = row_size(g.type, g.ne[0]);
    float* gv = scratch(slot::shared_gate, size_t(n));
    matmul(g, x, n, gv, activation_view::contiguous);
    check(*api_, ctx_, api_->scale_by_sigmoid(ctx_, shared, gv, n, l.ffn_down_shexp.ne[1]), "cuda: shared expert gate");
}

// out (n x n_embd) = the routed experts' rows y weighted in slot order, plus the shared expert's
// output, in one kernel.
void cuda_backend::combine(const model_config& c, const layer_weights& l, const float* x, const float* y, const float* weights, int n,
                           float* out) {
    const float* shared = shared_expert(l, x, n);
    check(*api_, ctx_, api_->moe_combine(ctx_, y, weights, n, c.n_expert_used, c.n_embd, shared, out), "cuda: moe_combine");
}

}  // namespace

std::unique_ptr<backend> backend_create_cuda(const backend_params& params) {
    std::string path, why;
    const mc_api* api = cuda_library(&path, &why);
    if (!api) throw error(error_code::no_gpu, "cuda: " + why);
    const gpu_probe probe = cuda_probe();
    if (probe.devices.empty()) throw error(error_code::no_gpu, probe.reason);  // "no usable NVIDIA driver: ..."
    if (params.gpu_device < 0 || params.gpu_device >= int(probe.devices.size())) {
        throw error(error_code::no_gpu, format("cuda: there is no CUDA device %d (%zu found)", params.gpu_device, probe.devices.size()));
    }
    const gpu_device_info& dev = probe.devices[size_t(params.gpu_device)];
    if (!dev.supported) {
        throw error(error_code::no_gpu, format("cuda: device %d (%s, compute capability %d.%d) has no kernels in %s", dev.index, dev.name.c_str(),
                                               dev.cc_major, dev.cc_minor, path.c_str()));
    }
    char msg[512] = "";
    mc_context* ctx = nullptr;
    const mc_status s = api->create(params.gpu_device, &ctx, msg, sizeof msg);
    if (s != MC_OK) throw error(s == MC_OUT_OF_MEMORY ? error_code::out_of_memory : error_code::no_gpu, std::string("cuda: ") + msg);
    return std::make_unique<cuda_backend>(api, ctx, dev, params);
}

}  // namespace moerun
