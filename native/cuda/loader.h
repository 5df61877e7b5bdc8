// The core's handle on libmoerun_cuda.so (loader.cpp): its function table, opened on first use.
#pragma once

#include <string>

#include "../backend/registry.h"
#include "api.h"

namespace moerun {

// The library's table, or nullptr with *why_not saying why (not found, wrong version). Opens the
// library on the first call; later calls return the same answer.
const mc_api* cuda_library(std::string* path, std::string* why_not);

}  // namespace moerun
