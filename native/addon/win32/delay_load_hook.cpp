// Windows (MinGW) prebuild only (scripts/prebuild.ts): the addon imports Node-API from "node.exe"
// through a delay-load import library, and this hook resolves that name to the running executable,
// so the same .node loads in node.exe, electron.exe or any renamed host. Without it, Windows would
// look for a file named node.exe beside an Electron app and fail to load the addon.
#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <delayimp.h>

namespace {

FARPROC WINAPI resolve_host_module(unsigned event, PDelayLoadInfo info) {
    if (event == dliNotePreLoadLibrary && lstrcmpiA(info->szDll, "node.exe") == 0) {
        return reinterpret_cast<FARPROC>(GetModuleHandleW(nullptr));
    }
    return nullptr;  // default handling for everything else
}

}  // namespace

// Read by MinGW's __delayLoadHelper2 (libmingwex) before it loads a delay-imported DLL.
extern "C" {
PfnDliHook __pfnDliNotifyHook2 = resolve_host_module;
}
#endif
