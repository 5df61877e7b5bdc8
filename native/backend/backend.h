// The seam between the forward pass and the hardware it runs on.
//
// The layers of native/ (an arrow: "may include"; nothing includes upwards):
//
//   addon/ (N-API, the only code that sees Node)
//     └─▶ include/moerun.h (the core's C++ API)
//           ├─▶ runtime/ (forward orchestration, KV cache policy, sampler, loading)
//           │     ├─▶ arch/ (GGUF metadata and tensor names → model_config / model_weights)
//           │     └─▶ backend/backend.h (this interface) and backend/registry.h (choosing one)
//           │             ▲ implemented by cpu/ (scalar, AVX2, AVX-512 kernels) and cuda/ (libmoerun_cuda.so)
//           └─▶ gguf/ (the file reader) ─▶ quant/ (formats: blocks, reference code) ─▶ base/
//   base/: error, thread pool, tensor view, type ids: what everything stands on.
//
// runtime/ never includes cpu/: it describes *what* the forward pass computes, a backend decides
// *how* and *where*, as calm keeps one model behind infer.c and infer.cu. Activations live in the
// backend's memory: runtime/ allocates them through alloc() and passes them to the ops, but never
// reads or writes them itself (the pointers may be device addresses); results come back to the
// host only through matmul_to_host(). Weights are tensors that say where their bytes live
// (tensor::location), so a layer can run on the backend that holds it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "../base/error.h"
#include "../base/tensor.h"

namespace moerun {

struct model_config;
struct layer_weights;
struct model_weights;

// How llama.cpp's graph hands a matmul its activations, which decides its summation order for
// float weights (cpu/kernels.h): a contiguous tensor goes to its GEMM (the GEMM order); a permuted
// view of F32 activations against F32 weights skips the GEMM (the vector-dot order), while F16
// weights first convert the view to a contiguous F16 copy and keep the GEMM order.
enum class activation_view { contiguous, permuted };

// One weight of a grouped matmul: y (m x w->ne[1]) = x . w^T.
struct matmul_job {
    const tensor* w;
    float* y;
};

// Sees the input rows of the weight matrices a forward pass multiplies, as host floats: the
// importance-matrix collector (runtime/imatrix.h). A backend calls its observer, when one is set,
// before each product; with none set (the default) that is one null check per product, nothing in
// the kernels.
class activation_observer {
public:
    virtual ~activation_observer() = default;
    // x: m rows of w.ne[0] floats, `stride` floats apart, multiplied by w (one 2-D slice of a 3-D
    // weight when w.slice >= 0, as MLA's per-head attn_k_b / attn_v_b).
    virtual void on_matmul(const tensor& w, const float* x, int64_t m, int64_t stride) = 0;
    // Routed experts of a (ne0, ne1, n_expert) weight: for token t < n_tokens and slot k < n_used,
    // expert selected[t * n_used + k] multiplies row row_of[t * n_used + k] of x (rows of w.ne[0]).
    virtual void on_experts(const tensor& w, const int32_t* selected, const int32_t* row_of, int n_tokens, int n_used,
                            const float* x) = 0;
};

// Activations in a backend's memory: `size` floats at data(), valid until the buffer is freed.
class buffer {
public:
    virtual ~buffer() = default;
    virtual float* data() = 0;
    virtual size_t size() const = 0;
};

// One sequence's keys and values for every layer, in the backend's memory, in the element type
// it was created with (F32, F16, BF16 or Q8_0). Cells are (position, KV head) rows.
class kv_cache {
public:
    virtual ~kv_cache() = default;
    virtual size_t bytes() const = 0;
};

// Where a device backend's place_weights puts each layer's routed experts (runtime/placement.h
// plans it from a memory budget): expert_slots[il] of layer il's experts in the device's memory,
// the others left in host memory and computed by the host (ffn_moe_experts_host). Empty: every
// weight in the device's memory.
struct weight_placement {
    std::vector<int> expert_slots;
    // The slots are a cache (backend/expert_cache.h): an expert a token selects that has none is
    // computed by the host for that token and loaded into the least recently used slot for the
    // next. Off: the slots hold the layer's first experts for good.
    bool expert_cache = true;
    // Prompt batches in a split layer: the host's experts computed by the CPU, or copied to the
    // device in waves through the slots (or `staging_slots` staging slots where a layer has none)
    // and computed there, whichever a cost model measured at run time says is faster
    // (automatic); never or always for tests.
    enum class batch_offload { automatic, never, always } offload = batch_offload::automatic;
    int staging_slots = 0;
};

// A device's expert cache since load: selected experts found in a slot (hits), computed by the
// host (misses), and experts copied into a slot (loads).
struct expert_cache_counters {
    uint64_t hits = 0, misses = 0, loads = 0;
};

// Reads weight bytes [p, p + n) from their source into out (backend::arrange_host_weights).
using weight_reader = std::function<void(const void* p, size_t n, uint8_t* out)>;
// A long load's step: called on the loading thread between pieces of work with the bytes done of
// `total`; reports progress, and throws to stop the load (an abort).
using load_step_fn = std::function<void(uint64_t done, uint64_t total)>;

class backend {
public:
    virtual ~backend() = default;

    // "cpu (avx512)" and the like; the kernel path for model_info.
    virtual std::string name() const = 0;
    virtual std::string kernel_path() const = 0;
    virtual int threads() const = 0;
    // Whether its compute threads are bound one per physical core (backend_params.pin_threads).
    virtual bool threads_pinned() const { return false; }

    // ---- memory ----
    // Called once at load, after the architecture file has described the model: moves the
    // weights into the backend's memory (a GPU's) and points the tensors there, except the
    // routed experts `p` leaves on the host. Throws error(unsupported) for a weight it cannot
    // compute with, so that never surfaces mid-run, and error(out_of_memory) naming the sizes.
    // The CPU reads the mapped file in place.
    virtual void place_weights(const model_config& c, model_weights& w, const weight_placement& p) {}
    // Called once at load, before the host weights are read: the backend may rewrite the host
    // weights it computes into a layout of its own and mark their tensors (the CPU: interleaved
    // rows, cpu/interleave.h). dst(p) is where weight byte p's rewritten bytes go. Without `read`,
    // its writable alias in this process's private copy of the file (weight_memory copy, before
    // it is sealed read-only); with it, private memory that the tensors are then pointed at, and
    // read(p, n, out) reads weight bytes [p, p + n) from the file (mapped weights: the mapping's
    // pages are never touched). step (may be null) is called between pieces of the work with the
    // bytes rewritten so far of all to rewrite. Returns the bytes rewritten.
    virtual uint64_t arrange_host_weights(model_weights& w, const std::function<uint8_t*(const void*)>& dst, const weight_reader& read,
                                          const load_step_fn& step) {
        return 0;
    }
    virtual std::unique_ptr<buffer> alloc(size_t n_floats) = 0;
    // A KV cache of n_ctx positions for the model; throws error(unsupported / invalid_argument /
    // out_of_memory) for a type or shape the backend cannot hold.
    virtual std::unique_ptr<kv_cache> new_kv_cache(const model_config& c, int n_ctx, tensor_type type) = 0;

    // The observer of the forward calls that follow (nullptr: none). A session sets it around its
    // own calls, under the model's compute lock.
    void set_observer(activation_observer* o) { observer_ = o; }

    // A forward call's extent: begin() before its first op, end() after its last (the CPU keeps
    // its threads spinning in between). Use backend_scope.
    virtual void begin() {}
    virtual void end() {}
    // Within a forward call: a batch of n tokens at positions pos0.. of the cache kv is next (its
    // first op follows). A GPU runs a decode step (n = 1) as one graph, recorded once and then
    // replayed at each position.
    virtual void begin_batch(const kv_cache& kv, int pos0, int n) {}
    // Waits until every operation issued so far has finished (a GPU's queue; a no-op where the
    // operations compute before they return). Only measuring tools need it: the data flow never does.
    virtual void synchronize() {}
    // A GPU's kernels launched since the last call, one line each with launches and device time
    // divided by `per` (e.g. the decode steps), where timing was asked for (MOERUN_CUDA_PROFILE);
    // empty elsewhere. A measuring tool's (run_model --profile --gpu).
    virtual std::string kernel_profile(int per) { return {}; }

    // ---- operations; rows are contiguous unless a stride (in floats) is given ----
    // out (n x ne[0]) = rows ids[0..n) of w (embedding lookup); ids on the host.
    virtual void get_rows(const tensor& w, const int32_t* ids, int n, float* out) = 0;
    // out[r] = x[r] / rms(x[r]) * weight, for `rows` rows of n floats, `stride` floats apart in
    // both x and out (may alias); an empty weight normalizes only.
    virtual void rms_norm(const float* x, const tensor& weight, float* out, int64_t rows, int64_t n, int64_t stride, float eps) = 0;
    // x += y, then out = rms_norm(x) with `weight`, for `rows` contiguous rows of n floats: a
    // residual add and the norm after it in one call (one kernel on a GPU). The default makes
    // the two calls.
    virtual void add_rms_norm(float* x, const float* y, const tensor& weight, float* out, int64_t rows, int64_t n, float eps) {
        add(x, y, rows * n);
        rms_norm(x, weight, out, rows, n, n, eps);
    }
    // Rotates the first n_rot dims of each of n_heads heads (head_dim apart) of n_tokens tokens
    // (token_stride floats apart), token i at position pos0 + i, in place.
    virtual void rope(float* x, int n_tokens, int64_t token_stride, int n_heads, int head_dim, int n_rot, int pos0,
                      const model_config& c) = 0;
    // y (m x w.ne[1]) = x (m x w.ne[0]) . w^T.
    virtual void matmul(const tensor& w, const float* x, int64_t m, float* y, activation_view view = activation_view::contiguous) = 0;
    // The same into host memory (logits).
    virtual void matmul_to_host(const tensor& w, const float* x, int64_t m, float* host_y) = 0;
    // Up to 4 weights with the same row length over the same activations, in one pass.
    virtual void matmul_group(std::initializer_list<matmul_job> jobs, const float* x, int64_t m) = 0;
    // dst[r * dst_stride + j] = src[r * src_stride + j] for r < rows, j < cols.
    virtual void copy(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols) = 0;
    // x[i] += y[i] for i < n.
    virtual void add(float* x, const float* y, int64_t n) = 0;
    // y[r * dim + j] += b[j] (a bias vector) for r < rows.
    virtual void add_bias(float* y, const tensor& b, int64_t rows, int64_t dim) = 0;
    // Stores n tokens' keys and values (rows of n_head_kv x head_dim_k / head_dim_v floats) at
    // positions pos0.. of a layer. MLA: v is null and k holds the latent rows.
    virtual void kv_store(kv_cache& kv, int layer, const float* k, const float* v, int pos0, int n) = 0;
    // A layer's attention inputs after its projections, for attention at positions pos0..: q (n x
    // n_head x head_dim_k), k (n x n_head_kv x head_dim_k) and v (n x n_head_kv x head_dim_v),
    // each contiguous. q and k get their RMSNorm where q_norm / k_norm are given (per head where
    // the weight has head_dim_k elements, else over a token's whole projection), then RoPE; then
    // k and v are stored in the cache. One call, so that a GPU can run it as one kernel; the
    // default makes the separate calls (the norms, one RoPE where q and k are adjacent, the store).
    virtual void attention_inputs(kv_cache& kv, int layer, float* q, float* k, const float* v, int n, int pos0, const tensor& q_norm,
                                  const tensor& k_norm, const model_config& c);
    // Causal attention of n queries (n x n_head x head_dim_k, positions pos0..) over the layer's
    // cached positions 0..pos0+i; out: n x n_head x head_dim_v.
    virtual void attention(kv_cache& kv, int layer, const float* q, int n, int pos0, float* out) = 0;
    // out (n x n_embd) = SwiGLU FFN of x.
    virtual void ffn_dense(const tensor& gate, const tensor& up, const tensor& down, const float* x, int n, float* out) = 0;
    // out (n x n_embd) = the layer's routed experts (router, top-k, weights, grouped experts,
    // weighted combine) plus its shared expert.
    virtual void ffn_moe(const model_config& c, const layer_weights& l, const float* x, int n, float* out) = 0;
    // Counters of the expert cache where routed experts are split between the device and the
    // host (zeros elsewhere).
    virtual expert_cache_counters expert_cache_stats() const { return {}; }
    // The host's half of a MoE layer split with a device (issue 14), everything in host memory:
    // out (n x n_embd) = per token, the sum over its slots k whose expert selected[t * n_used + k]
    // is marked in `experts` (n_expert flags) of weights[t * n_used + k] * expert(x[t]), in slot
    // order (0 where none is marked); l's routed experts are read from host memory. Backends that
    // compute on the host implement it; the default throws error(internal).
    virtual void ffn_moe_experts_host(const model_config& c, const layer_weights& l, const float* x, int n, const int32_t* selected,
                                      const float* weights, const uint8_t* experts, float* out) {
        throw error(error_code::internal, name() + ": routed experts in host memory are not computed by this backend");
    }

protected:
    activation_observer* observer_ = nullptr;
};

// begin() ... end() around one forward call.
class backend_scope {
public:
    explicit backend_scope(backend& b) : b_(b) { b_.begin(); }
    ~backend_scope() { b_.end(); }
    backend_scope(const backend_scope&) = delete;
    backend_scope& operator=(const backend_scope&) = delete;

private:
    backend& b_;
};

}  // namespace moerun
