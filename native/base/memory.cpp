#include "memory.h"

#include "error.h"
#include "win32.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace moerun {

namespace {

// Installed physical memory in bytes; UINT64_MAX when the platform does not say.
uint64_t physical_memory() {
#if defined(__unix__) || defined(__APPLE__)
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) return uint64_t(pages) * uint64_t(page);
#elif defined(_WIN32)
    MEMORYSTATUSEX s{};
    s.dwLength = sizeof s;
    if (GlobalMemoryStatusEx(&s)) return uint64_t(s.ullTotalPhys);
#endif
    return UINT64_MAX;
}

// The address-space limit (ulimit -v) in bytes; UINT64_MAX when none is set.
uint64_t address_space_limit() {
#if defined(__unix__) || defined(__APPLE__)
    rlimit as{};
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) return uint64_t(as.rlim_cur);
#endif
    return UINT64_MAX;
}

// /proc/meminfo's MemAvailable in bytes (Linux), the available physical memory (Windows);
// UINT64_MAX elsewhere.
uint64_t kernel_available_estimate() {
#if defined(__linux__)
    if (FILE* f = std::fopen("/proc/meminfo", "r")) {
        char line[256];
        unsigned long long kib = 0;
        uint64_t available = UINT64_MAX;
        while (std::fgets(line, sizeof line, f)) {
            if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
                available = uint64_t(kib) * 1024;
                break;
            }
        }
        std::fclose(f);
        return available;
    }
#elif defined(_WIN32)
    MEMORYSTATUSEX s{};
    s.dwLength = sizeof s;
    if (GlobalMemoryStatusEx(&s)) return uint64_t(s.ullAvailPhys);
#endif
    return UINT64_MAX;
}

}  // namespace

uint64_t host_memory_available() {
    uint64_t available = kernel_available_estimate();
    if (available == UINT64_MAX) available = physical_memory();
    return std::min(available, address_space_limit());
}

uint64_t host_memory_total() { return std::min(physical_memory(), address_space_limit()); }

bool populate_pages(const void* p, size_t n) {
#if defined(__linux__)
    constexpr int k_madv_populate_read = 22;  // MADV_POPULATE_READ (uapi asm-generic/mman-common.h), Linux 5.14
    return n == 0 || madvise(const_cast<void*>(p), n, k_madv_populate_read) == 0;
#else
    (void)p, (void)n;
    return false;
#endif
}

void release_pages(const void* p, size_t n) {
#if defined(__linux__)
    const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
    const uintptr_t first = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t last = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
    if (last > first) madvise(reinterpret_cast<void*>(first), size_t(last - first), MADV_DONTNEED);
#else
    (void)p, (void)n;
#endif
}

private_pages::private_pages(size_t n) : size_(n) {
#if defined(__linux__)
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw error(error_code::out_of_memory, format("cannot reserve %s of memory: %s", format_bytes(n).c_str(), std::strerror(errno)));
    data_ = static_cast<uint8_t*>(p);
    madvise(p, n, MADV_HUGEPAGE);
#else
    throw error(error_code::unsupported, "private weight memory needs Linux");
#endif
}

private_pages::~private_pages() {
#if defined(__linux__)
    if (data_) munmap(data_, size_);
#endif
}

void private_pages::seal() {
#if defined(__linux__)
    if (mprotect(data_, size_, PROT_READ) != 0) throw error(error_code::io, format("mprotect: %s", std::strerror(errno)));
#endif
}

bool host_is_virtual_machine() {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 31));  // leaf 1, ECX bit 31: a hypervisor is present
#else
    return false;
#endif
}

std::string format_bytes(uint64_t bytes) {
    char buf[32];
    const double b = double(bytes);
    if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
    else std::snprintf(buf, sizeof buf, "%llu bytes", (unsigned long long)bytes);
    return buf;
}

}  // namespace moerun
