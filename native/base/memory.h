// How much memory this process may still allocate on the host, to refuse an allocation that would
// otherwise succeed on paper (overcommit) and then get the process killed when its pages are used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace moerun {

// Bytes the host can give this process now: the kernel's estimate of available memory
// (/proc/meminfo MemAvailable on Linux, else physical memory), capped by the address-space limit
// (ulimit -v) where one is set. UINT64_MAX when nothing is known.
uint64_t host_memory_available();

// Physical memory of the host in bytes (what a file mapping can keep resident at best), capped by
// the address-space limit where one is set. UINT64_MAX when nothing is known.
uint64_t host_memory_total();

// Whether this process runs in a virtual machine: x86's cpuid hypervisor bit; false elsewhere,
// where it is not known. On one (a 2-vCPU cloud VM), weights streamed from a file's page cache
// read at 13.4-14.5 GB/s where the same bytes copied into anonymous memory read at 19.1-19.7
// (model_load_params::weight_memory).
bool host_is_virtual_machine();

// Maps the pages of [p, p + n) of a read-only file mapping into this process as the kernel reads
// them (Linux 5.14+: madvise MADV_POPULATE_READ), so that the first token does not fault them in
// one by one. False where that is not available (older kernels, other systems): touch the pages
// instead. p must be page-aligned.
bool populate_pages(const void* p, size_t n);

// Drops this process's mapping of the whole pages inside [p, p + n) of a read-only *file*
// mapping (madvise MADV_DONTNEED): they leave the resident set, the page cache keeps them, and a
// later read faults them back in. Never on anonymous memory (it would zero it). No-op elsewhere.
void release_pages(const void* p, size_t n);

// Private anonymous memory of n bytes, reserved but not committed (MAP_NORESERVE): only the pages
// written take memory. seal() makes it read-only. Linux; elsewhere the constructor throws
// error(unsupported).
class private_pages {
public:
    explicit private_pages(size_t n);
    ~private_pages();
    private_pages(const private_pages&) = delete;
    private_pages& operator=(const private_pages&) = delete;
    uint8_t* data() const { return data_; }
    void seal();

private:
    uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// "23.4 GiB": bytes for messages.
std::string format_bytes(uint64_t bytes);

}  // namespace moerun
