#!/usr/bin/env python3
"""Writes native/quant/iq_grids.h: the lattice grids of the IQ1/IQ2/IQ3 formats, read out of
llama.cpp's own dequantizers.

The grids are format data (which 8- or 4-element vector each grid index stands for). They are not
copied from llama.cpp's source: this script loads the libggml-base shared library that
node-llama-cpp (a devDependency) ships, dequantizes crafted blocks whose scale makes every value
exact (d = 1, sub-block scale 0, no signs, each grid index in turn), and reads each grid point
back from the floats. It stores them in our own compact form, the level index of each element
(2 bits for the three- and four-level grids, 3 bits for the eight-level ones), which the header
expands at compile time into the byte vectors the kernels use. The sign table (ksigns) is not
read at all: it follows from its rule (7 sign bits plus an even-parity 8th), and the test fixtures
(scripts/make-quant-fixtures.py) check every grid entry and sign pattern against llama.cpp's
dequantization.

  python3 scripts/make-iq-grids.py [path/to/libggml-base.so]
"""
import ctypes
import struct
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_LIB = REPO / "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so"
OUT = REPO / "native" / "quant" / "iq_grids.h"
QK_K = 256
F16_ONE = 0x3C00


def dequantizer(lib, name):
    fn = getattr(lib, f"dequantize_row_{name}")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None

    def run(blocks: bytes) -> np.ndarray:
        n = len(blocks) // BLOCK_BYTES[name] * QK_K
        src = ctypes.create_string_buffer(blocks, len(blocks))
        dst = (ctypes.c_float * n)()
        fn(src, dst, n)
        return np.frombuffer(dst, dtype=np.float32).copy()
    return run


BLOCK_BYTES = {"iq2_xxs": 66, "iq2_xs": 74, "iq2_s": 82, "iq3_xxs": 98, "iq3_s": 110, "iq1_s": 50}


def read_iq2_xxs(deq):
    """256 points of 8 bytes. db = 1 * (0.5 + 0) * 0.25 = 1/8, so a value is grid / 8."""
    blocks = b""
    for blk in range(256 // 32):
        qs = b""
        for ib in range(8):  # 4 grid indices, then the sign/scale word (zero: positive, scale 0)
            qs += bytes(32 * blk + 4 * ib + l for l in range(4)) + struct.pack("<I", 0)
        blocks += struct.pack("<H", F16_ONE) + qs
    return (deq(blocks) * 8).reshape(256, 8)


def read_iq2_xs(deq):
    """512 points. Each uint16 is a 9-bit index and 7 sign bits; scales 0 give 1/8."""
    blocks = b""
    for blk in range(512 // 32):
        qs = struct.pack("<32H", *range(32 * blk, 32 * blk + 32))
        blocks += struct.pack("<H", F16_ONE) + qs + bytes(8)
    return (deq(blocks) * 8).reshape(512, 8)


def read_iq2_s(deq):
    """1024 points: 8 low index bits in qs, 2 high bits per group in qh; signs 0, scales 0: 1/8."""
    blocks = b""
    for blk in range(1024 // 32):
        idx = list(range(32 * blk, 32 * blk + 32))
        qs = bytes(i & 255 for i in idx) + bytes(32)  # then the 32 sign bytes
        qh = bytes(sum(((idx[4 * ib + l] >> 8) & 3) << (2 * l) for l in range(4)) for ib in range(8))
        blocks += struct.pack("<H", F16_ONE) + qs + qh + bytes(8)
    return (deq(blocks) * 8).reshape(1024, 8)


def read_iq3_xxs(deq):
    """256 points of 4 bytes; db = 1 * (0.5 + 0) * 0.5 = 1/4."""
    idx = list(range(256)) + list(range(256))  # 64 per super-block (8 sub-blocks x 8): 8 blocks
    blocks = b""
    for blk in range(512 // 64):
        qs = bytes(idx[64 * blk:64 * blk + 64]) + bytes(32)  # then 8 sign/scale words
        blocks += struct.pack("<H", F16_ONE) + qs
    return (deq(blocks) * 4).reshape(-1, 4)[:256]


def read_iq3_s(deq):
    """512 points of 4 bytes: 8 low bits in qs, the 9th in qh; scales 0 give db = 1."""
    blocks = b""
    for blk in range(512 // 64):
        idx = list(range(64 * blk, 64 * blk + 64))
        qs = bytes(i & 255 for i in idx)
        qh = bytes(sum(((idx[8 * ib + k] >> 8) & 1) << k for k in range(8)) for ib in range(8))
        blocks += struct.pack("<H", F16_ONE) + qs + qh + bytes(32) + bytes(4)
    return deq(blocks).reshape(512, 4)


def read_iq1_s(deq):
    """2048 points of 8 values in {-1, 0, 1}: 8 low bits in qs, 3 high bits per group in qh, scale
    0 (dl = 1) and delta +1/8, so a value is grid + 1/8."""
    blocks = b""
    for blk in range(2048 // 32):
        idx = list(range(32 * blk, 32 * blk + 32))
        qs = bytes(i & 255 for i in idx)
        qh = [sum((idx[4 * ib + l] >> 8) << (3 * l) for l in range(4)) for ib in range(8)]
        blocks += struct.pack("<H", F16_ONE) + qs + struct.pack("<8H", *qh)
    return (deq(blocks) - 0.125).reshape(2048, 8)


def levels_of(points: np.ndarray, bits: int) -> list:
    """The distinct values of a grid family, ascending; at most 2**bits of them, all integers."""
    levels = sorted(float(v) for v in np.unique(points))
    if len(levels) > 1 << bits or any(v != int(v) for v in levels):
        sys.exit(f"make-iq-grids: levels {levels} do not fit {bits} bits; the read-out is wrong")
    return levels


def codes(points: np.ndarray, levels: list, bits: int) -> list:
    """Each point as the level index of each element, element j at bits `bits * j`."""
    out = []
    for p in points:
        c = 0
        for j, v in enumerate(p):
            c |= levels.index(float(v)) << (bits * j)
        out.append(c)
    return out


def c_array(name: str, values: list, per_line: int = 12) -> str:
    lines = []
    for i in range(0, len(values), per_line):
        lines.append("    " + ", ".join(f"0x{v:04x}" for v in values[i:i + per_line]) + ",")
    return f"inline constexpr uint16_t {name}[{len(values)}] = {{\n" + "\n".join(lines) + "\n};\n"


HEADER = """// GENERATED by scripts/make-iq-grids.py from llama.cpp's dequantizers (node-llama-cpp's
// libggml-base); do not edit. The lattice grids of the IQ1/IQ2/IQ3 formats: grid index -> a vector of
// 8 (IQ1/IQ2) or 4 (IQ3) small values. Each code holds the level index of element j at bits
// bits*j; expand_grid turns the codes into the packed vectors the kernels read (element j in byte j),
// at compile time.
#pragma once

#include <array>
#include <cstdint>

namespace moerun {

// The values each grid family's elements take (unused slots 0). IQ2_XXS/XS/S share theirs; IQ1_S
// and IQ1_M share the IQ1 grid (int8 values).
inline constexpr uint8_t k_iq2_levels[4] = {LEVELS_IQ2};
inline constexpr uint8_t k_iq3xxs_levels[8] = {LEVELS_IQ3XXS};
inline constexpr uint8_t k_iq3s_levels[8] = {LEVELS_IQ3S};
inline constexpr int8_t k_iq1_levels[4] = {LEVELS_IQ1};

"""

FOOTER = """
// Grid points as packed bytes: element j of point i in byte j of out[i].
template <typename Word, typename Level, size_t N, size_t L>
constexpr std::array<Word, N> expand_grid(const uint16_t (&codes)[N], const Level (&levels)[L], int bits, int elements) {
    std::array<Word, N> out{};
    for (size_t i = 0; i < N; ++i) {
        Word w = 0;
        for (int j = 0; j < elements; ++j) {
            const uint8_t v = uint8_t(levels[(codes[i] >> (bits * j)) & ((1 << bits) - 1)]);
            w |= Word(v) << (8 * j);
        }
        out[i] = w;
    }
    return out;
}

inline constexpr std::array<uint64_t, 256> k_iq2xxs_grid = expand_grid<uint64_t>(k_iq2xxs_codes, k_iq2_levels, 2, 8);
inline constexpr std::array<uint64_t, 512> k_iq2xs_grid = expand_grid<uint64_t>(k_iq2xs_codes, k_iq2_levels, 2, 8);
inline constexpr std::array<uint64_t, 1024> k_iq2s_grid = expand_grid<uint64_t>(k_iq2s_codes, k_iq2_levels, 2, 8);
inline constexpr std::array<uint32_t, 256> k_iq3xxs_grid = expand_grid<uint32_t>(k_iq3xxs_codes, k_iq3xxs_levels, 3, 4);
inline constexpr std::array<uint32_t, 512> k_iq3s_grid = expand_grid<uint32_t>(k_iq3s_codes, k_iq3s_levels, 3, 4);
// IQ1 points as int8 bytes (-1 as 0xff).
inline constexpr std::array<uint64_t, 2048> k_iq1s_grid = expand_grid<uint64_t>(k_iq1s_codes, k_iq1_levels, 2, 8);

}  // namespace moerun
"""


def main() -> None:
    lib_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_LIB
    if not lib_path.exists():
        sys.exit(f"make-iq-grids: {lib_path} not found (npm install brings node-llama-cpp's binaries)")
    lib = ctypes.CDLL(str(lib_path))
    points = {
        "k_iq2xxs_codes": read_iq2_xxs(dequantizer(lib, "iq2_xxs")),
        "k_iq2xs_codes": read_iq2_xs(dequantizer(lib, "iq2_xs")),
        "k_iq2s_codes": read_iq2_s(dequantizer(lib, "iq2_s")),
        "k_iq3xxs_codes": read_iq3_xxs(dequantizer(lib, "iq3_xxs")),
        "k_iq3s_codes": read_iq3_s(dequantizer(lib, "iq3_s")),
        "k_iq1s_codes": read_iq1_s(dequantizer(lib, "iq1_s")),
    }
    # One level list per family: the three IQ2 grids share theirs (2 bits), IQ3_XXS and IQ3_S have
    # 8 levels each (3 bits), IQ1 has -1, 0, 1 (2 bits).
    iq2 = levels_of(np.concatenate([points[k] for k in ("k_iq2xxs_codes", "k_iq2xs_codes", "k_iq2s_codes")]), 2)
    families = {
        "k_iq2xxs_codes": (iq2, 2), "k_iq2xs_codes": (iq2, 2), "k_iq2s_codes": (iq2, 2),
        "k_iq3xxs_codes": (levels_of(points["k_iq3xxs_codes"], 3), 3),
        "k_iq3s_codes": (levels_of(points["k_iq3s_codes"], 3), 3),
        "k_iq1s_codes": (levels_of(points["k_iq1s_codes"], 2), 2),
    }
    fmt = lambda levels, n: ", ".join(str(int(v)) for v in (levels + [0] * n)[:n])
    text = HEADER.replace("LEVELS_IQ2", fmt(iq2, 4))
    text = text.replace("LEVELS_IQ3XXS", fmt(families["k_iq3xxs_codes"][0], 8))
    text = text.replace("LEVELS_IQ3S", fmt(families["k_iq3s_codes"][0], 8))
    text = text.replace("LEVELS_IQ1", fmt(families["k_iq1s_codes"][0], 4))
    for name, (levels, bits) in families.items():
        c = codes(points[name], levels, bits)
        if len(set(c)) != len(c):
            sys.exit(f"make-iq-grids: {name} has repeated points; the read-out is wrong")
        text += c_array(name, c) + "\n"
        print(f"{name}: {len(c)} points over levels {[int(v) for v in levels]}")
    OUT.write_text(text.rstrip("\n") + "\n" + FOOTER)
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
