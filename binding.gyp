{
  # The addon: the core (native/{base,gguf,quant,cpu,runtime,arch}) plus the N-API layer (native/addon).
  # Each ISA's kernels are a static library compiled with its own -m flags; cpu/dispatch.cpp picks
  # one at run time by cpuid, so one binary runs on any x86-64.
  "variables": {
    "core_cflags": ["-O3", "-fvisibility=hidden", "-fno-math-errno", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
  },
  "target_defaults": {
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
    "cflags_cc": ["-std=c++20", "-fexceptions", "<@(core_cflags)"],
    "cflags!": ["-fno-exceptions"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++20",
      "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fvisibility=hidden"]
    }
  },
  "targets": [
    {
      "target_name": "moerun_avx2",
      "type": "static_library",
      "conditions": [
        ["target_arch=='x64'", {
          "sources": ["<!@(node scripts/list-sources.cjs native/cpu/avx2)"],
          "cflags_cc": ["-mavx2", "-mfma", "-mf16c"]
        }, {
          "sources": ["native/cpu/avx2/register.cpp"]
        }]
      ]
    },
    {
      "target_name": "moerun_avx512",
      "type": "static_library",
      "conditions": [
        ["target_arch=='x64'", {
          "sources": ["<!@(node scripts/list-sources.cjs native/cpu/avx512)"],
          "cflags_cc": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni", "-mavx512bf16", "-mamx-tile", "-mamx-int8"]
        }, {
          "sources": ["native/cpu/avx512/register.cpp"]
        }]
      ]
    },
    {
      # arm64: plain ARMv8-A NEON (baseline, no flags), then SDOT and SMMLA kernels compiled for
      # those features alone; cpu/dispatch.cpp runs them only where the OS reports the features.
      "target_name": "moerun_neon",
      "type": "static_library",
      "conditions": [
        ["target_arch=='arm64'", {
          "sources": ["<!@(node scripts/list-sources.cjs native/cpu/neon)"]
        }, {
          "sources": ["native/cpu/neon/register.cpp"]
        }]
      ]
    },
    {
      "target_name": "moerun_neon_dotprod",
      "type": "static_library",
      "conditions": [
        ["target_arch=='arm64'", {
          "sources": ["<!@(node scripts/list-sources.cjs native/cpu/neon/dotprod)"],
          "cflags_cc": ["-march=armv8.2-a+dotprod"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fvisibility=hidden", "-march=armv8.2-a+dotprod"] }
        }, {
          "type": "none"
        }]
      ]
    },
    {
      "target_name": "moerun_neon_i8mm",
      "type": "static_library",
      "conditions": [
        ["target_arch=='arm64'", {
          "sources": ["<!@(node scripts/list-sources.cjs native/cpu/neon/i8mm)"],
          "cflags_cc": ["-march=armv8.2-a+dotprod+i8mm"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fvisibility=hidden", "-march=armv8.2-a+dotprod+i8mm"] }
        }, {
          "type": "none"
        }]
      ]
    },
    {
      "target_name": "moerun",
      "dependencies": ["moerun_avx2", "moerun_avx512", "moerun_neon", "moerun_neon_dotprod", "moerun_neon_i8mm"],
      "sources": [
        "<!@(node scripts/list-sources.cjs native/base native/gguf native/quant native/backend native/cpu native/runtime native/arch native/cuda native/addon)"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: a worker terminated while native work runs tears its
      # environment down before the work completes; completing it then fails every N-API call, and
      # without this node-addon-api turns the failed throw into a fatal error that aborts the whole
      # process (test/lifecycle.test.ts). With it, the throw is dropped: nothing is left to receive it.
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-pthread"],
      "ldflags": ["-pthread"],
      # The generic code's baseline on x86-64: x86-64-v2 (SSE4.2, POPCNT), no AVX, so the binary runs on
      # every x86-64 CPU of the last 15 years; AVX lives only in the ISA libraries above
      # (test/isa.test.ts checks the built addon by disassembly). scripts/prebuild.ts reads these flags.
      "conditions": [
        ["target_arch=='x64'", { "cflags_cc": ["-march=x86-64-v2", "-mtune=generic"] }]
      ]
    }
  ]
}
