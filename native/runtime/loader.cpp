// Loading: map the GGUF, let the architecture file describe it, fault the weights in with progress.
#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "../arch/arch.h"
#include "../backend/registry.h"
#include "../include/moerun.h"
#include "../base/error.h"
#include "../base/memory.h"

namespace moerun {

namespace {
// `open` maps or copies the file; called after the backend exists, so a bad MOERUN_CPU is an
// error first, not deep in a kernel.
template <class Open>
std::shared_ptr<model> load(const std::string& path, const model_load_params& params, Open open) {
    auto m = std::make_shared<model>();
    backend_params bp;
    bp.n_threads = params.n_threads;
    bp.pin_threads = params.pin_threads;
    bp.gpu_device = params.gpu_device;
    using gpu_mode = model_load_params::gpu_mode;
    if (params.gpu != gpu_mode::off) {
        try {
            m->compute = backend_create_cuda(bp);
            m->backend_kind = "cuda";
        } catch (const error& e) {
            if (params.gpu == gpu_mode::cuda || e.code() != error_code::no_gpu) throw;
            m->gpu_note = e.what();
        }
    }
    if (!m->compute) m->compute = backend_create_cpu(bp);
    m->file = open();
    auto arch = m->file->get_string("general.architecture");
    if (!arch) throw error(error_code::bad_format, format("model: %s: key 'general.architecture' is missing", path.c_str()));
    const arch_loader* loader = arch_find(*arch);
    if (!loader) throw error(error_code::unsupported, format("model: %s: architecture '%s' is not supported", path.c_str(), arch->c_str()));
    m->config.architecture = *arch;
    loader->load(*m);
    // A GPU's copy of the weights, as much as its budget holds (routed experts that do not fit stay
    // on the host). It refuses what it cannot run (a weight type without kernels, a budget that
    // cannot hold the non-expert part) before changing anything: gpu 'auto' then runs on the CPU.
    try {
        weight_placement wp;
        if (m->backend_kind == "cuda") {
            placement_request r = params.gpu_placement;
            if (r.device_budget == 0) {
                const gpu_probe probe = cuda_probe();
                for (const gpu_device_info& d : probe.devices) {
                    if (d.index == params.gpu_device) r.device_budget = default_device_budget(d.free_bytes, d.total_bytes);
                }
            }
            m->placement = plan_placement(*m, r);
            m->placed = true;
            wp.expert_slots = m->placement.layer_slots;
            wp.expert_cache = r.expert_cache;
            wp.offload = r.batch_offload;
            // Layers without a slot (experts: 'cpu') get 8 staging slots for prompt batches from
            // what the budget leaves, when it holds them.
            uint64_t largest_expert = 0;
            for (uint64_t b : m->placement.layer_expert_bytes) largest_expert = std::max(largest_expert, b);
            const uint64_t left = r.device_budget > m->placement.device_total() ? r.device_budget - m->placement.device_total() : 0;
            const int staging = std::min(8, m->config.n_expert);
            if (largest_expert > 0 && left >= uint64_t(staging) * largest_expert) wp.staging_slots = staging;
        }
        m->compute->place_weights(m->config, m->weights, wp);
    } catch (const error& e) {
        const bool fallback = params.gpu == gpu_mode::auto_detect && m->backend_kind == "cuda" &&
                              (e.code() == error_code::unsupported || e.code() == error_code::out_of_memory);
        if (!fallback) throw;
        m->gpu_note = e.what();
        m->compute = backend_create_cpu(bp);
        m->backend_kind = "cpu";
        m->placed = false;
    }

    // On a GPU the host reads only what stayed in its memory (the token embedding, the routed
    // experts it computes): the pages of what went to the device leave this process (the page
    // cache keeps them), and only the host's tensors are prefetched and counted below, so the
    // file is read once and the resident set is the host's share.
    const bool on_gpu = m->backend_kind == "cuda";
    std::set<const void*> host_read;
    if (on_gpu) {
        for_each_tensor(m->weights, [&](const tensor& t, bool) {
            if (t && t.location == memory_location::host) host_read.insert(t.data);
        });
    }
    auto read_by_host = [&](const gguf_tensor_info& t) { return !on_gpu || host_read.count(t.data) > 0; };
    const auto& tensors = m->file->tensors();
    uint64_t total = 0, done = 0;
    for (const auto& t : tensors) {
        if (read_by_host(t)) total += t.n_bytes;
        else if (!m->file->in_private_memory()) release_pages(t.data, size_t(t.n_bytes));
    }
    // One step of a long load (the copy, the rewrite or the page walk): stops it when aborted, else
    // reports (a total of 0: nothing to report).
    auto load_step = [&](uint64_t bytes_done, uint64_t bytes_total) {
        if (params.abort && params.abort->load(std::memory_order_relaxed)) throw error(error_code::aborted, "model: load aborted");
        if (params.on_progress && bytes_total) params.on_progress(double(bytes_done) / double(bytes_total));
    };

    // A private copy of the file (weight_memory), read in place of touching the mapped pages. auto
    // copies (on Linux: elsewhere a copy is unsupported, and Windows with Hyper-V or VBS reports a
    // hypervisor too) files of at most a third of the available memory: while the copy is made, the file's
    // pages fill the page cache too, so the two take twice the file (in `npm run bench`, with
    // llama.cpp's process beside it, 8.2 GB files with 20 GB available loaded in 5-8 s copied).
    using weight_memory = model_load_params::weight_memory;
    const uint64_t file_bytes = m->file->file_size(), available = host_memory_available();
    const bool copy = !m->file->in_private_memory() &&
                      (params.weights == weight_memory::copy ||
                       (params.weights == weight_memory::auto_detect && gguf_file::can_copy_into_memory() && params.prefetch &&
                        m->backend_kind == "cpu" && host_is_virtual_machine() && file_bytes <= available / 3));
    if (copy) {
        if (file_bytes > available) {
            throw error(error_code::out_of_memory, format("model: %s is %s and this host has %s available: it cannot be copied into memory. "
                                                          "Load it mapped (weightMemory 'map') instead",
                                                          path.c_str(), format_bytes(file_bytes).c_str(), format_bytes(available).c_str()));
        }
        // As many readers as compute threads: one thread filled fresh pages at 2.2 GB/s here.
        // The backend's own layout of the weights it computes, written into the copy before it is
        // sealed (the CPU's interleaved rows: no second copy, no pass over mapped pages).
        // The copy's reads report the progress; its rewrite (in memory, a fraction of the copy's
        // time) only stops when aborted.
        const load_step_fn abort_only = [&](uint64_t, uint64_t) { load_step(0, 0); };
        m->file->copy_into_memory(m->compute->threads(), load_step, [&](uint8_t* copy, const uint8_t* base) {
            m->arranged_bytes = m->compute->arrange_host_weights(
                m->weights, [&](const void* p) { return copy + (static_cast<const uint8_t*>(p) - base); }, nullptr, abort_only);
        });
        return m;
    }

    // Weights that cannot all be resident would be read from disk again for every token (a
    // 30 GiB model on a 16 GiB machine: minutes per token), which looks like a hang: say so,
    // unless the caller asked for exactly that.
    const uint64_t ram = host_memory_total();
    if (total > ram) {
        if (!params.allow_larger_than_ram) {
            throw error(error_code::out_of_memory,
                        format("model: %s has %s of weights and this host has %s of memory: it would be read from disk for "
                               "every token. Load it with allowLargerThanRam to run it anyway",
                               path.c_str(), format_bytes(total).c_str(), format_bytes(ram).c_str()));
        }
        if (params.on_progress) params.on_progress(1.0);
        return m;  // not prefetched: the pages come from disk as the forward pass needs them
    }

    if (!params.prefetch) {
        if (params.on_progress) params.on_progress(1.0);
        return m;
    }
    // The backend's own layout of the host weights (the CPU's interleaved rows) in private memory
    // shadowing the file (same offsets; only the pages written take memory): each rewritten
    // weight is read from the file once with pread (in chunks, without mapping its pages: through
    // the mapping, 4 KiB page faults took 2-3x as long) and skipped by the walk below. Its bytes
    // are the first part of the load's progress (1.2-6 s for a 5 GB file here), the walk the rest.
    std::set<const void*> moved;  // file bytes of the weights the backend rewrote elsewhere
#if defined(__linux__)  // private_pages, gguf_file::read_range
    if (m->backend_kind == "cpu" && !m->file->in_private_memory()) {
        const uint8_t* const base = m->file->mapping();
        std::unique_ptr<private_pages> shadow;  // reserved at the first weight the backend rewrites
        std::vector<std::pair<const tensor*, const void*>> before;
        for_each_tensor(m->weights, [&](const tensor& t, bool) { before.emplace_back(&t, t.data); });
        const gguf_file& file = *m->file;
        m->arranged_bytes = m->compute->arrange_host_weights(
            m->weights,
            [&](const void* p) {
                if (!shadow) shadow = std::make_unique<private_pages>(size_t(file_bytes));
                return shadow->data() + (static_cast<const uint8_t*>(p) - base);
            },
            [&](const void* p, size_t n, uint8_t* out) { file.read_range(uint64_t(static_cast<const uint8_t*>(p) - base), n, out); },
            [&](uint64_t arranged, uint64_t) { load_step(arranged, total); });
        if (shadow) {
            shadow->seal();
            m->arranged_memory = std::move(shadow);
            for (const auto& [t, old] : before) {
                if (t->data != old) moved.insert(old);
            }
            for (const auto& t : tensors) {
                if (read_by_host(t) && moved.count(t.data)) done += t.n_bytes;  // reported by the rewrite
            }
        }
    }
#endif
    // Map every page of the weights once so the first token does not pay for page faults, in
    // steps, so that a long load reports progress and can be aborted: the kernel populates each
    // step's pages (populate_pages) or, where it cannot, they are touched one by one. On this
    // 2-vCPU VM an 8 GiB file in the page cache took 2.0 s touched.
    m->file->prefetch();
    constexpr uint64_t k_page = 4096, k_step = uint64_t(64) << 20;
    bool populate = true;
    volatile uint8_t sink = 0;
    for (const auto& t : tensors) {
        if (!read_by_host(t)) continue;
        if (moved.count(t.data)) continue;  // read above, and counted in done
        for (uint64_t off = 0; off < t.n_bytes; off += k_step) {
            const uint64_t n = std::min(k_step, t.n_bytes - off);
            const uint8_t* first = t.data + off;
            const uintptr_t page = reinterpret_cast<uintptr_t>(first) / k_page * k_page;
            populate = populate && populate_pages(reinterpret_cast<const void*>(page), size_t(reinterpret_cast<uintptr_t>(first) + n - page));
            if (!populate) {
                for (uint64_t at = 0; at < n; at += k_page) sink = sink + first[at];
            }
            load_step(done + off + n, total);
        }
        done += t.n_bytes;
    }
    (void)sink;
    return m;
}
}  // namespace

std::shared_ptr<model> model_load(const std::string& path, const model_load_params& params) {
    return load(path, params, [&] { return gguf_file::open(path); });
}

std::shared_ptr<model> model_load_memory(const uint8_t* data, size_t size, const std::string& name, const model_load_params& params) {
    return load(name, params, [&] { return gguf_file::open_memory(data, size, name); });
}

model_info model_get_info(const model& m) {
    model_info info;
    const model_config& c = m.config;
    info.architecture = c.architecture;
    info.n_layer = c.n_layer;
    info.n_embd = c.n_embd;
    info.n_head = c.n_head;
    info.n_head_kv = c.n_head_kv;
    info.n_vocab = c.n_vocab;
    info.n_ctx_train = c.n_ctx_train;
    info.n_expert = c.n_expert;
    info.n_expert_used = c.n_expert_used;
    info.file_type = m.file->get_int("general.file_type").value_or(-1);
    info.size_bytes = m.file->file_size();
    info.n_threads = m.compute->threads();
    info.threads_pinned = m.compute->threads_pinned();
    info.weights_copied = m.file->in_private_memory();
    info.weights_arranged = m.arranged_bytes;
    for (const auto& t : m.file->tensors()) info.n_params += uint64_t(t.n_elements());
    // Active parameters: every weight the forward pass reads per token, with routed experts
    // counted at n_expert_used / n_expert (what "A3B" in a model's name means).
    auto elems = [](const tensor& t) -> double { return t ? double(t.ne[0]) * double(t.ne[1]) * double(t.ne[2]) * double(t.ne[3]) : 0.0; };
    const model_weights& w = m.weights;
    double active = elems(w.token_embd) + elems(w.output_norm) + (w.output.data != w.token_embd.data ? elems(w.output) : 0.0);
    for (const layer_weights& l : w.layers) {
        for_each_layer_tensor(l, [&](const tensor& t, bool) {
            if (!t) return;
            active += is_routed_experts(l, t) ? elems(t) * double(c.n_expert_used) / double(c.n_expert) : elems(t);
        });
    }
    info.n_params_active = uint64_t(active);
    info.cpu_path = m.compute->kernel_path();
    info.backend = m.backend_kind;
    info.backend_name = m.compute->name();
    info.gpu_note = m.gpu_note;
    info.placed = m.placed;
    info.placement = m.placement;
    return info;
}

}  // namespace moerun
