// The backend seam carries the whole forward pass: a second backend whose memory runtime/ cannot
// read gives the CPU backend's logits bit for bit.
//
// The "scrambled" backend wraps the CPU backend and keeps every activation in its buffers with
// each float's bits XOR-ed by a mask. Each operation decodes its inputs into plain copies, runs
// the CPU operation on them, and encodes its outputs back. Had runtime/ read or written an
// activation itself anywhere (a residual add, a copy between heads, a bias), it would have worked
// on scrambled bits and the logits would differ; if an operation's contract (which regions it
// reads and writes) were incomplete, the same. So equal logits on every architecture mean every
// byte of activation traffic goes through backend/backend.h.
//
//   backend_seam MODEL.gguf... : per model, evaluates a 40-token prompt (two batches of 32 and 8)
//   and one decode step with both backends, F32 and F16 KV caches; prints the first differing
//   logit or "bit-identical"; exits 1 on any difference.
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "../backend/model_desc.h"
#include "../backend/registry.h"
#include "../include/moerun.h"

namespace moerun {
namespace {

constexpr uint32_t k_mask = 0x5a5a5a5au;

float scramble(float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    u ^= k_mask;
    std::memcpy(&v, &u, 4);
    return v;
}

class scrambled_buffer final : public buffer {
public:
    explicit scrambled_buffer(size_t n) : data_(n, scramble(0.0f)) {}
    float* data() override { return data_.data(); }
    size_t size() const override { return data_.size(); }

private:
    std::vector<float> data_;
};

// A plain copy of a region of scrambled memory for one operation: decoded on construction,
// encoded back by store() (for the regions the operation writes).
class plain {
public:
    plain(const float* scrambled, size_t n) : src_(const_cast<float*>(scrambled)), data_(n) {
        for (size_t i = 0; i < n; ++i) data_[i] = scramble(scrambled[i]);
    }
    float* get() { return data_.data(); }
    void store() {
        for (size_t i = 0; i < data_.size(); ++i) src_[i] = scramble(data_[i]);
    }

private:
    float* src_;
    std::vector<float> data_;
};

// The extent of `rows` rows of `cols` floats, `stride` apart.
size_t extent(int64_t rows, int64_t cols, int64_t stride) { return rows <= 0 ? 0 : size_t((rows - 1) * stride + cols); }

class scrambled_backend final : public backend {
public:
    explicit scrambled_backend(std::unique_ptr<backend> inner) : in_(std::move(inner)) {}

    std::string name() const override { return "scrambled " + in_->name(); }
    std::string kernel_path() const override { return in_->kernel_path(); }
    int threads() const override { return in_->threads(); }
    std::unique_ptr<buffer> alloc(size_t n) override { return std::make_unique<scrambled_buffer>(n); }
    std::unique_ptr<kv_cache> new_kv_cache(const model_config& c, int n_ctx, tensor_type type) override {
        config_ = &c;
        return in_->new_kv_cache(c, n_ctx, type);
    }
    void begin() override { in_->begin(); }
    void end() override { in_->end(); }

    void get_rows(const tensor& w, const int32_t* ids, int n, float* out) override {
        plain o(out, size_t(n) * size_t(w.ne[0]));
        in_->get_rows(w, ids, n, o.get());
        o.store();
    }
    void rms_norm(const float* x, const tensor& weight, float* out, int64_t rows, int64_t n, int64_t stride, float eps) override {
        const size_t len = extent(rows, n, stride);
        plain o(out, len);
        if (x == out) {
            in_->rms_norm(o.get(), weight, o.get(), rows, n, stride, eps);
        } else {
            plain i(x, len);
            in_->rms_norm(i.get(), weight, o.get(), rows, n, stride, eps);
        }
        o.store();
    }
    void rope(float* x, int n_tokens, int64_t token_stride, int n_heads, int head_dim, int n_rot, int pos0, const model_config& c) override {
        plain v(x, extent(n_tokens, int64_t(n_heads) * head_dim, token_stride));
        in_->rope(v.get(), n_tokens, token_stride, n_heads, head_dim, n_rot, pos0, c);
        v.store();
    }
    void matmul(const tensor& w, const float* x, int64_t m, float* y, activation_view view) override {
        plain i(x, size_t(m * w.ne[0]));
        plain o(y, size_t(m * w.ne[1]));
        in_->matmul(w, i.get(), m, o.get(), view);
        o.store();
    }
    void matmul_to_host(const tensor& w, const float* x, int64_t m, float* host_y) override {
        plain i(x, size_t(m * w.ne[0]));
        in_->matmul_to_host(w, i.get(), m, host_y);
    }
    void matmul_group(std::initializer_list<matmul_job> jobs, const float* x, int64_t m) override {
        plain i(x, size_t(m * jobs.begin()->w->ne[0]));
        std::vector<std::unique_ptr<plain>> outs;
        std::vector<matmul_job> plain_jobs;
        for (const matmul_job& j : jobs) {
            outs.push_back(std::make_unique<plain>(j.y, size_t(m * j.w->ne[1])));
            plain_jobs.push_back({j.w, outs.back()->get()});
        }
        // Up to 4 jobs, as the interface allows.
        switch (plain_jobs.size()) {
            case 1: in_->matmul_group({plain_jobs[0]}, i.get(), m); break;
            case 2: in_->matmul_group({plain_jobs[0], plain_jobs[1]}, i.get(), m); break;
            case 3: in_->matmul_group({plain_jobs[0], plain_jobs[1], plain_jobs[2]}, i.get(), m); break;
            default: in_->matmul_group({plain_jobs[0], plain_jobs[1], plain_jobs[2], plain_jobs[3]}, i.get(), m); break;
        }
        for (auto& o : outs) o->store();
    }
    void copy(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols) override {
        plain i(src, extent(rows, cols, src_stride));
        plain o(dst, extent(rows, cols, dst_stride));
        in_->copy(i.get(), src_stride, o.get(), dst_stride, rows, cols);
        o.store();
    }
    void add(float* x, const float* y, int64_t n) override {
        plain a(x, size_t(n));
        plain b(y, size_t(n));
        in_->add(a.get(), b.get(), n);
        a.store();
    }
    void add_bias(float* y, const tensor& b, int64_t rows, int64_t dim) override {
        plain v(y, size_t(rows * dim));
        in_->add_bias(v.get(), b, rows, dim);
        v.store();
    }
    void kv_store(kv_cache& kv, int layer, const float* k, const float* v, int pos0, int n) override {
        const model_config& c = *config_;
        plain pk(k, size_t(n) * size_t(c.n_head_kv) * size_t(c.head_dim_k));
        if (!v) return in_->kv_store(kv, layer, pk.get(), nullptr, pos0, n);
        plain pv(v, size_t(n) * size_t(c.n_head_kv) * size_t(c.head_dim_v));
        in_->kv_store(kv, layer, pk.get(), pv.get(), pos0, n);
    }
    void attention(kv_cache& kv, int layer, const float* q, int n, int pos0, float* out) override {
        const model_config& c = *config_;
        plain pq(q, size_t(n) * size_t(c.n_head) * size_t(c.head_dim_k));
        plain po(out, size_t(n) * size_t(c.n_head) * size_t(c.head_dim_v));
        in_->attention(kv, layer, pq.get(), n, pos0, po.get());
        po.store();
    }
    void ffn_dense(const tensor& gate, const tensor& up, const tensor& down, const float* x, int n, float* out) override {
        plain i(x, size_t(n) * size_t(gate.ne[0]));
        plain o(out, size_t(n) * size_t(down.ne[1]));
        in_->ffn_dense(gate, up, down, i.get(), n, o.get());
        o.store();
    }
    void ffn_moe(const model_config& c, const layer_weights& l, const float* x, int n, float* out) override {
        plain i(x, size_t(n) * size_t(c.n_embd));
        plain o(out, size_t(n) * size_t(c.n_embd));
        in_->ffn_moe(c, l, i.get(), n, o.get());
        o.store();
    }

private:
    std::unique_ptr<backend> in_;
    const model_config* config_ = nullptr;
};

// Logits of a 40-token prompt (all rows) then one decode step (last row), on a fresh session.
std::vector<float> run(const std::shared_ptr<model>& m, tensor_type kv) {
    session_params sp;
    sp.n_ctx = 64;
    sp.n_batch = 32;  // two batches: the second attends to the first's cache
    sp.kv_type = kv;
    session s(m, sp);
    std::vector<int32_t> prompt;
    for (int i = 0; i < 40; ++i) prompt.push_back(1 + (i * 37) % (m->config.n_vocab - 1));
    std::vector<float> all, last;
    s.evaluate(prompt.data(), int(prompt.size()), logits_mode::all, all, nullptr);
    const int32_t next = 7;
    s.evaluate(&next, 1, logits_mode::last, last, nullptr);
    all.insert(all.end(), last.begin(), last.end());
    return all;
}

}  // namespace
}  // namespace moerun

int main(int argc, char** argv) {
    using namespace moerun;
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s MODEL.gguf...\n", argv[0]);
        return 2;
    }
    int failures = 0;
    for (int a = 1; a < argc; ++a) {
        try {
            model_load_params lp;
            lp.n_threads = 2;
            auto cpu = model_load(argv[a], lp);
            auto scrambled = model_load(argv[a], lp);
            scrambled->compute = std::make_unique<scrambled_backend>(std::move(scrambled->compute));
            for (tensor_type kv : {tensor_type::F32, tensor_type::F16}) {
                const std::vector<float> want = run(cpu, kv), got = run(scrambled, kv);
                size_t bad = want.size();
                for (size_t i = 0; i < want.size(); ++i) {
                    if (std::memcmp(&want[i], &got[i], 4) != 0) { bad = i; break; }
                }
                const char* kv_name = kv == tensor_type::F32 ? "f32" : "f16";
                if (bad == want.size() && got.size() == want.size()) {
                    std::printf("%s (%s, %s KV): %zu logits bit-identical through the %s backend\n", argv[a], cpu->config.architecture.c_str(),
                                kv_name, want.size(), scrambled->compute->name().c_str());
                } else {
                    ++failures;
                    std::printf("FAIL %s (%s, %s KV): logit %zu differs: cpu %.9g, scrambled %.9g\n", argv[a], cpu->config.architecture.c_str(),
                                kv_name, bad, bad < want.size() ? double(want[bad]) : 0.0, bad < got.size() ? double(got[bad]) : 0.0);
                }
            }
        } catch (const error& e) {
            ++failures;
            std::printf("FAIL %s: %s: %s\n", argv[a], error_code_name(e.code()), e.what());
        }
    }
    return failures ? 1 : 0;
}
