// Finding libmoerun_cuda.so at run time (never at link time), so the core loads and runs on
// machines with no NVIDIA driver and no CUDA library; and probing its devices for `moerun info`
// and gpu 'auto'.
//
// Where the library is looked for, first found wins:
//   1. $MOERUN_CUDA_LIBRARY (a file path; set but missing is reported as such),
//   2. libmoerun_cuda.so beside the binary that holds the core (the addon's build/Release/,
//      build-core/ for the C++ drivers).
// The library is opened once per process and never closed (its static CUDA runtime registers
// exit handlers).
#include "loader.h"

#ifndef _WIN32
#include <dlfcn.h>
#endif

#include <cstdlib>
#include <mutex>

#include "../base/error.h"

namespace moerun {
namespace {

struct loaded_library {
    const mc_api* api = nullptr;
    std::string path;
    std::string why_not;  // when api is null
};

#ifdef _WIN32
loaded_library open_library() {
    loaded_library lib;
    lib.why_not = "the CUDA backend is not built for Windows yet";
    return lib;
}
#else
std::string module_dir() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&cuda_library), &info) == 0 || !info.dli_fname) return ".";
    std::string p = info.dli_fname;
    const size_t slash = p.rfind('/');
    return slash == std::string::npos ? "." : p.substr(0, slash);
}

loaded_library open_library() {
    loaded_library lib;
    const char* env = std::getenv("MOERUN_CUDA_LIBRARY");
    const std::string path = env && *env ? std::string(env) : module_dir() + "/libmoerun_cuda.so";
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* why = dlerror();
        lib.why_not = std::string("the CUDA backend library cannot be loaded (") + (why ? why : path + ": dlopen failed") + ")";
        if (!env) lib.why_not += "; this build has no CUDA backend (build it where nvcc is found: npm run build:cuda)";
        return lib;
    }
    auto entry = reinterpret_cast<moerun_cuda_api_fn>(dlsym(handle, "moerun_cuda_api"));
    const mc_api* api = entry ? entry() : nullptr;
    if (!api || api->version != MC_API_VERSION) {
        lib.why_not = format("%s is not a CUDA backend library of this version (interface %d, expected %d)", path.c_str(),
                             api ? api->version : -1, MC_API_VERSION);
        return lib;  // left open: closing a half-initialized CUDA runtime is riskier than the mapping
    }
    lib.api = api;
    lib.path = path;
    return lib;
}
#endif

}  // namespace

const mc_api* cuda_library(std::string* path, std::string* why_not) {
    static std::once_flag once;
    static loaded_library lib;
    std::call_once(once, [] { lib = open_library(); });
    if (path) *path = lib.path;
    if (why_not) *why_not = lib.why_not;
    return lib.api;
}

gpu_probe cuda_probe() {
    gpu_probe probe;
    std::string why;
    const mc_api* api = cuda_library(&probe.library, &why);
    if (!api) {
        probe.reason = why;
        return probe;
    }
    char msg[512] = "";
    int n = 0;
    const mc_status s = api->device_count(&n, msg, sizeof msg);
    if (s != MC_OK) {
        probe.reason = s == MC_NO_DRIVER ? std::string("no usable NVIDIA driver: ") + msg
                       : s == MC_NO_DEVICE ? std::string("no CUDA device: ") + msg
                                           : std::string(msg);
        return probe;
    }
    if (n == 0) {
        probe.reason = "no CUDA device";
        return probe;
    }
    for (int d = 0; d < n; ++d) {
        mc_device_info info;
        gpu_device_info dev;
        dev.index = d;
        if (api->device_info(d, &info, msg, sizeof msg) != MC_OK) {
            dev.name = msg;
        } else {
            dev.name = info.name;
            dev.total_bytes = info.total_bytes;
            dev.free_bytes = info.free_bytes;
            dev.cc_major = info.cc_major;
            dev.cc_minor = info.cc_minor;
            probe.driver_version = info.driver_version;
            probe.runtime_version = info.runtime_version;
            int supported = 0;
            if (api->device_supported(d, &supported, msg, sizeof msg) == MC_OK) dev.supported = supported != 0;
        }
        probe.usable = probe.usable || dev.supported;
        probe.devices.push_back(dev);
    }
    if (!probe.usable) {
        probe.reason = format("no CUDA device this library has kernels for (device 0: %s, compute capability %d.%d)",
                              probe.devices[0].name.c_str(), probe.devices[0].cc_major, probe.devices[0].cc_minor);
    }
    return probe;
}

}  // namespace moerun
