// How much memory this process may still allocate on the host, to refuse an allocation that would
// otherwise succeed on paper (overcommit) and then get the process killed when its pages are used.
#pragma once

#include <cstdint>

namespace moerun {

// Bytes the host can give this process now: the kernel's estimate of available memory
// (/proc/meminfo MemAvailable on Linux, else physical memory), capped by the address-space limit
// (ulimit -v) where one is set. UINT64_MAX when nothing is known.
uint64_t host_memory_available();

}  // namespace moerun
