// <windows.h> as the win32-x64 build includes it: without the min/max macros (std::min, std::max)
// and without the rarely used APIs. Empty elsewhere.
#pragma once

#ifdef _WIN32
#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#endif
