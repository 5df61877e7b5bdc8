#include "memory.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace moerun {

uint64_t host_memory_available() {
    uint64_t available = UINT64_MAX;
#if defined(__linux__)
    if (FILE* f = std::fopen("/proc/meminfo", "r")) {
        char line[256];
        unsigned long long kib = 0;
        while (std::fgets(line, sizeof line, f)) {
            if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
                available = uint64_t(kib) * 1024;
                break;
            }
        }
        std::fclose(f);
    }
#endif
#if defined(__unix__) || defined(__APPLE__)
    if (available == UINT64_MAX) {
        const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (pages > 0 && page > 0) available = uint64_t(pages) * uint64_t(page);
    }
    rlimit as{};
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) available = std::min<uint64_t>(available, uint64_t(as.rlim_cur));
#endif
    return available;
}

uint64_t host_memory_total() {
    uint64_t total = UINT64_MAX;
#if defined(__unix__) || defined(__APPLE__)
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) total = uint64_t(pages) * uint64_t(page);
    rlimit as{};
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) total = std::min<uint64_t>(total, uint64_t(as.rlim_cur));
#endif
    return total;
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
