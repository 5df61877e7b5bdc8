#include "error.h"

#include <cstdarg>
#include <cstdio>

namespace moerun {

const char* error_code_name(error_code code) {
    switch (code) {
        case error_code::io: return "ERR_IO";
        case error_code::bad_format: return "ERR_BAD_FORMAT";
        case error_code::unsupported: return "ERR_UNSUPPORTED";
        case error_code::invalid_argument: return "ERR_INVALID_ARGUMENT";
        case error_code::aborted: return "ERR_ABORTED";
        case error_code::context_full: return "ERR_CONTEXT_FULL";
        case error_code::out_of_memory: return "ERR_OUT_OF_MEMORY";
        case error_code::no_gpu: return "ERR_NO_GPU";
        case error_code::internal: return "ERR_INTERNAL";
    }
    return "ERR_INTERNAL";
}

std::string format(const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

}  // namespace moerun
