// The core's one error type. Everything that can fail throws moerun::error with a stable code and
// a message that names the function and the bad value; the addon turns it into a MoerunError.
#pragma once

#include <stdexcept>
#include <string>

namespace moerun {

enum class error_code {
    io,                // cannot open/read/map/write a file
    bad_format,        // a GGUF file is malformed (truncated, out-of-range offsets, bad magic...)
    unsupported,       // well-formed but not something we run (architecture, tensor type)
    invalid_argument,  // a caller passed a bad value
    aborted,           // an abort was requested and work stopped early
    context_full,      // the KV cache has no room for the tokens
    out_of_memory,
    no_gpu,            // a GPU was asked for and none is usable (no library, driver or device)
    internal,
};

const char* error_code_name(error_code code);  // "ERR_BAD_FORMAT", ...

class error : public std::runtime_error {
public:
    error(error_code code, const std::string& message) : std::runtime_error(message), code_(code) {}
    error_code code() const { return code_; }

private:
    error_code code_;
};

// printf-style message builder, for errors that quote values. MinGW's C++ stdio is its C99 one
// (__USE_MINGW_ANSI_STDIO), which knows %zu and %llu; GCC checks "printf" there as msvcrt's.
#ifdef __MINGW32__
std::string format(const char* fmt, ...) __attribute__((format(gnu_printf, 1, 2)));
#else
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
#endif

}  // namespace moerun
