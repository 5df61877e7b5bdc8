// The importance-matrix collector: what llama.cpp's llama-imatrix accumulates while a model reads
// text (tools/imatrix/imatrix.cpp), for quantizers that weigh each input column by how large its
// activations are. Attach it to a session (session::set_observer) and evaluate chunks of text.
//
// Per weight matrix named blk.* (the output head and the token embedding are not collected):
//   sums:   for each 2-D matrix (a routed expert, an MLA head of attn_k_b / attn_v_b, else one),
//           the sum over every row multiplied by it of x[j]^2, per input column j, in float, in
//           llama.cpp's order (rows in order; routed experts slot by slot, then token by token);
//   counts: the rows (tokens) that contributed: one count for a plain weight (a 3-D one multiplied
//           head by head counts each token once), one per expert for routed experts.
// As llama-imatrix, a plain product over fewer than 16 rows is skipped (routed experts never are).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "../backend/backend.h"
#include "../gguf/gguf.h"

namespace moerun {

struct imatrix_entry {
    std::vector<float> sums;      // (n_mat, ne0): sum of squared inputs per matrix and column
    std::vector<int64_t> counts;  // (n_mat) for routed experts, (1) for any other weight
};

class imatrix_collector final : public activation_observer {
public:
    // `file`: the model's GGUF, for the shapes of 3-D weights seen one slice at a time.
    explicit imatrix_collector(const gguf_file& file) : file_(file) {}

    void on_matmul(const tensor& w, const float* x, int64_t m, int64_t stride) override;
    void on_experts(const tensor& w, const int32_t* selected, const int32_t* row_of, int n_tokens, int n_used,
                    const float* x) override;

    // By tensor name, in name order (the order llama-imatrix writes them).
    const std::map<std::string, imatrix_entry>& entries() const { return entries_; }

private:
    // The entry of weight `name`, created with n_mat matrices of ne0 columns and n_counts counts;
    // throws error(internal) if it exists with another shape.
    imatrix_entry& entry(const std::string& name, int64_t ne0, int64_t n_mat, int64_t n_counts);

    const gguf_file& file_;
    std::map<std::string, imatrix_entry> entries_;
};

}  // namespace moerun
