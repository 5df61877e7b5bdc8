// A weight tensor as the forward pass sees it: a typed view of up to 4 dimensions, and where its
// bytes live (the mapped file on the host, or a backend's device memory), so that a layer can run
// on the backend that holds its weights.
#pragma once

#include <cstdint>
#include <string>

#include "tensor_type.h"

namespace moerun {

enum class memory_location : uint8_t {
    host,    // host memory (the mapped file): the CPU backend reads it in place
    device,  // a backend's own memory (a GPU's), not addressable by the host
};

struct tensor {
    const void* data = nullptr;  // nullptr = absent (optional tensors)
    tensor_type type = tensor_type::F32;
    int64_t ne[4] = {1, 1, 1, 1};  // ne[0] = row length (contiguous), ne[1] = rows, ne[2] = experts
    size_t row_stride = 0;         // bytes of one row of ne[0] elements of `type`
    memory_location location = memory_location::host;
    const std::string* name = nullptr;
    int64_t slice = -1;  // which 2-D slice of a 3-D tensor this view is (expert()); -1: the whole tensor
    // Host weights the CPU rewrote into its interleaved layout (cpu/interleave.h): groups of 16
    // rows, each group in place of its rows; a single row is no longer contiguous.
    bool interleaved = false;

    explicit operator bool() const { return data != nullptr; }
    int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
    size_t row_bytes() const { return row_stride; }
    const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data) + size_t(r) * row_bytes(); }
    // The 2-D matrix of expert `e` in a 3-D (ne0, ne1, n_expert) tensor.
    tensor expert(int64_t e) const {
        tensor t = *this;
        t.data = row(e * ne[1]);
        t.ne[2] = 1;
        t.slice = e;
        return t;
    }
};

}  // namespace moerun
