#!/usr/bin/env python3
"""Writes test/fixtures/quant/<TYPE>.bin: llama.cpp's own quantization and dequantization of seeded
random data, for every block format moerun supports. native/test/test_kernels.cpp checks that our
reference to_float reproduces llama.cpp's dequantization bit for bit, and that our quantizers give
llama.cpp's bytes.

llama.cpp is the oracle, never a dependency: this script compiles a tiny C driver (written here)
against a libggml-base built from a llama.cpp checkout, outside this repository:

  cmake -S $LLAMA_CPP -B $BUILD/ggml -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release
  cmake --build $BUILD/ggml --target ggml-base -j2
  LLAMA_CPP=... GGML_BUILD=$BUILD/ggml python3 scripts/make-quant-fixtures.py

(GGML_NATIVE=OFF keeps FMA contraction out of ggml's scalar code, so its float results are the
plain IEEE ones our reference computes.) Where llama.cpp's gguf-py can dequantize a type, its
output is also compared against the C driver's, as a cross-check of the fixture itself.

File layouts (little endian), all starting b"MQFX", u32 version, u32 ggml type id, u32 n:
  version 1, <TYPE>.bin: f32 src[n], u8 blocks[row bytes] (llama.cpp's quantization of src),
    f32 deq[n] (llama.cpp's dequantization of blocks; all zero when llama.cpp has no dequantizer
    for the type, as for Q8_1).
  version 2, <TYPE>.bin for the types llama.cpp quantizes only with an importance matrix
    (IQ2_XXS, IQ2_XS, IQ1_S), and <TYPE>-imatrix.bin for those that take one optionally (IQ3_XXS,
    IQ3_S, IQ2_S, IQ1_M): as version 1 with f32 imatrix[n] (the row's column weights) after src.
  version 3, <TYPE>-blocks.bin for the lattice, ternary and FP4 formats: u8 blocks[row bytes], f32
    deq[n]. Seeded random blocks whose grid indices run through every point of the type's grid,
    with random signs, sub-block scales and deltas, and llama.cpp's dequantization of them: every
    grid entry and sign pattern of native/quant/iq_grids.h is checked against llama.cpp.

Without a ggml build, the driver links node-llama-cpp's prebuilt libggml-base.so (built without
FMA for the generic x86-64 baseline); headers still come from $LLAMA_CPP (e.g. the checkout of
node_modules/node-llama-cpp/llama/gitRelease.bundle).
"""
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
LLAMA_CPP = Path(os.environ.get("LLAMA_CPP", "/work/scratch/llama.cpp"))
GGML_BUILD = Path(os.environ.get("GGML_BUILD", "/work/scratch/build/ggml"))
# Overrides for a broader one-off check (not for the committed fixtures): another directory, more
# super-blocks for the lattice, ternary and FP4 types, another seed (e.g. QUANT_FIXTURES_OUT=/tmp/fx
# QUANT_FIXTURES_N_LARGE=524288 QUANT_FIXTURES_SEED=1, then ./build-core/test_kernels /tmp/fx).
OUT = Path(os.environ.get("QUANT_FIXTURES_OUT", REPO / "test" / "fixtures" / "quant"))
SEED = int(os.environ.get("QUANT_FIXTURES_SEED", "0"))
N = 1024  # elements per fixture: 32 blocks of 32 or 4 super-blocks of 256
N_LARGE = int(os.environ.get("QUANT_FIXTURES_N_LARGE", "8192"))  # the lattice, ternary and FP4 types: 32 super-blocks, for their search-heavy quantizers

# name: (ggml type id, block size, bytes per block)
TYPES = {
    "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24),
    "Q8_0": (8, 32, 34), "Q8_1": (9, 32, 36),
    "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110), "Q4_K": (12, 256, 144), "Q5_K": (13, 256, 176),
    "Q6_K": (14, 256, 210), "Q8_K": (15, 256, 292),
    "IQ4_NL": (20, 32, 18), "IQ4_XS": (23, 256, 136),
    "IQ2_XXS": (16, 256, 66), "IQ2_XS": (17, 256, 74), "IQ3_XXS": (18, 256, 98), "IQ1_S": (19, 256, 50),
    "IQ3_S": (21, 256, 110), "IQ2_S": (22, 256, 82), "IQ1_M": (29, 256, 56),
    "TQ1_0": (34, 256, 54), "TQ2_0": (35, 256, 66), "MXFP4": (39, 32, 17),
}
NEEDS_IMATRIX = {"IQ2_XXS", "IQ2_XS", "IQ1_S"}  # ggml_quantize_requires_imatrix
TAKES_IMATRIX = {"IQ3_XXS", "IQ3_S", "IQ2_S", "IQ1_M"}  # optional: a second fixture with one
# Types with a -blocks.bin fixture, and the number of points of their grid (0: no grid)
BLOCK_FIXTURES = {"IQ2_XXS": 256, "IQ2_XS": 512, "IQ2_S": 1024, "IQ3_XXS": 256, "IQ3_S": 512,
                  "IQ1_S": 2048, "IQ1_M": 2048, "TQ1_0": 0, "TQ2_0": 0, "MXFP4": 0}

# The driver: reads src (f32[n]) from argv[3], quantizes with what llama-quantize uses
# (ggml_quantize_chunk, with the importance matrix of argv[5] unless it is "-") or, for the
# activation types, the reference row quantizers; or, given argv[6], takes the blocks from that
# file instead. Dequantizes with ggml's to_float; writes blocks then deq to argv[4].
DRIVER = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ggml.h"
void quantize_row_q8_1_ref(const float * x, void * y, int64_t k);
void quantize_row_q8_K_ref(const float * x, void * y, int64_t k);
void dequantize_row_q8_K(const void * x, float * y, int64_t k);
int main(int argc, char ** argv) {
    const int type = atoi(argv[1]);
    const int64_t n = atoll(argv[2]);
    float * src = malloc(n * sizeof(float));
    float * deq = calloc(n, sizeof(float));
    FILE * f = fopen(argv[3], "rb");
    if (!f || fread(src, sizeof(float), n, f) != (size_t) n) return 2;
    fclose(f);
    const size_t bytes = ggml_row_size((enum ggml_type) type, n);
    void * q = calloc(1, bytes);
    float * imatrix = NULL;
    if (argc > 5 && strcmp(argv[5], "-") != 0) {
        imatrix = malloc(n * sizeof(float));
        f = fopen(argv[5], "rb");
        if (!f || fread(imatrix, sizeof(float), n, f) != (size_t) n) return 2;
        fclose(f);
    }
    if (argc > 6) {
        f = fopen(argv[6], "rb");
        if (!f || fread(q, 1, bytes, f) != bytes) return 2;
        fclose(f);
    } else if (type == GGML_TYPE_Q8_1) {
        quantize_row_q8_1_ref(src, q, n);
    } else if (type == GGML_TYPE_Q8_K) {
        quantize_row_q8_K_ref(src, q, n);
        dequantize_row_q8_K(q, deq, n);
    } else {
        ggml_quantize_init((enum ggml_type) type);
        ggml_quantize_chunk((enum ggml_type) type, src, q, 0, 1, n, imatrix);
    }
    const struct ggml_type_traits * tt = ggml_get_type_traits((enum ggml_type) type);
    if (tt->to_float) tt->to_float(q, deq, n);
    f = fopen(argv[4], "wb");
    fwrite(q, 1, bytes, f);
    fwrite(deq, sizeof(float), n, f);
    fclose(f);
    return 0;
}
"""


PREBUILT = REPO / "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"


def build_driver(workdir: Path) -> Path:
    lib = GGML_BUILD / "ggml" / "src" / "libggml-base.a"
    if lib.exists():
        link = [str(lib), "-lstdc++", "-lm", "-lpthread", "-fopenmp"]
    elif (PREBUILT / "libggml-base.so").exists():
        link = [f"-L{PREBUILT}", "-lggml-base", f"-Wl,-rpath,{PREBUILT}", "-lm"]
    else:
        sys.exit(f"make-quant-fixtures: neither {lib} nor {PREBUILT}/libggml-base.so found (see the docstring)")
    src = workdir / "quant_fixture_driver.c"
    exe = workdir / "quant_fixture_driver"
    src.write_text(DRIVER)
    cmd = ["cc", "-O2", "-o", str(exe), str(src), f"-I{LLAMA_CPP / 'ggml' / 'include'}", *link]
    subprocess.run(cmd, check=True)
    return exe


def source_data(type_id: int, n: int = N) -> np.ndarray:
    """Per 32-element block, Gaussian data at a random scale (1e-3..10), plus edge-case blocks:
    all zero, one dominant outlier, constant, all negative, tiny values, uniform."""
    rng = np.random.default_rng(20240 + type_id + 100000 * SEED)
    x = np.empty(n, dtype=np.float32)
    for b in range(n // 32):
        blk = rng.standard_normal(32) * 10 ** rng.uniform(-3, 1)
        kind = b % 8
        if kind == 1 and b < 16:
            blk = np.zeros(32)
        elif kind == 2:
            blk[rng.integers(32)] *= 40
        elif kind == 3 and b < 16:
            blk = np.full(32, 0.75)
        elif kind == 4:
            blk = -np.abs(blk)
        elif kind == 5 and b < 16:
            blk = blk * 1e-6
        elif kind == 6:
            blk = rng.uniform(-1, 1, 32)
        x[32 * b:32 * (b + 1)] = blk
    return x


def gguf_py_dequantize(name: str, blocks: bytes):
    """gguf-py's dequantization (numpy), or None when it lacks the type."""
    try:
        sys.path.insert(0, str(LLAMA_CPP / "gguf-py"))
        from gguf import quants
        from gguf.constants import GGMLQuantizationType
        qtype = GGMLQuantizationType[name]
        return quants.dequantize(np.frombuffer(blocks, dtype=np.uint8), qtype).astype(np.float32).reshape(-1)
    except Exception:
        return None


def imatrix_data(type_id: int, n: int = N) -> np.ndarray:
    """Column weights as llama-imatrix would give them: positive, spread over two decades."""
    rng = np.random.default_rng(30240 + type_id + 100000 * SEED)
    return (10 ** rng.uniform(-1, 1, n)).astype(np.float32)


def f16_scale(rng) -> int:
    """A block scale as fp16 bits: 0.5..2 times 10^-3..1."""
    return int(np.float16(rng.uniform(0.5, 2) * 10 ** rng.uniform(-3, 0)).view(np.uint16))


def grid_blocks(name: str, points: int, rng) -> bytes:
    """Seeded random blocks of `name` whose grid indices run through 0..points-1 in order (or
    random blocks for the grid-free types), with sane scales."""
    def rbytes(k):
        return bytes(rng.integers(0, 256, k, dtype=np.uint8))

    per_block = {"IQ2_XXS": 32, "IQ2_XS": 32, "IQ2_S": 32, "IQ3_XXS": 64, "IQ3_S": 64, "IQ1_S": 32, "IQ1_M": 32}
    nblocks = max(points // per_block.get(name, 1), 4) if points else 8
    out = b""
    for b in range(nblocks):
        idx = [(per_block.get(name, 0) * b + k) % max(points, 1) for k in range(per_block.get(name, 0))]
        d = struct.pack("<H", f16_scale(rng))
        if name == "IQ2_XXS":  # per 32: 4 index bytes, then 28 sign bits | 4-bit scale
            out += d + b"".join(bytes(idx[4 * ib:4 * ib + 4]) + rbytes(4) for ib in range(8))
        elif name == "IQ2_XS":  # 9-bit index | 7 sign bits << 9
            qs = [i | (int(rng.integers(128)) << 9) for i in idx]
            out += d + struct.pack("<32H", *qs) + rbytes(8)
        elif name == "IQ2_S":
            qh = bytes(sum((idx[4 * ib + l] >> 8) << (2 * l) for l in range(4)) for ib in range(8))
            out += d + bytes(i & 255 for i in idx) + rbytes(32) + qh + rbytes(8)
        elif name == "IQ3_XXS":
            out += d + bytes(idx) + rbytes(32)
        elif name == "IQ3_S":
            qh = bytes(sum(((idx[8 * ib + k] >> 8) & 1) << k for k in range(8)) for ib in range(8))
            out += d + bytes(i & 255 for i in idx) + qh + rbytes(32) + rbytes(4)
        elif name == "IQ1_S":  # qh: 3 high bits per group, scale at 12-14, delta sign at 15
            qh = [sum((idx[4 * ib + l] >> 8) << (3 * l) for l in range(4)) | (int(rng.integers(16)) << 12) for ib in range(8)]
            out += d + bytes(i & 255 for i in idx) + struct.pack("<8H", *qh)
        elif name == "IQ1_M":  # qh nibbles: 3 high index bits + delta sign; scales: 12 bits of 3-bit ls + d's nibble
            qh = bytes((idx[2 * k] >> 8) | (int(rng.integers(2)) << 3) | (((idx[2 * k + 1] >> 8) | (int(rng.integers(2)) << 3)) << 4)
                       for k in range(16))
            dv = f16_scale(rng)
            sc = [int(rng.integers(4096)) | (((dv >> (4 * w)) & 15) << 12) for w in range(4)]
            out += bytes(i & 255 for i in idx) + qh + struct.pack("<4H", *sc)
        elif name == "TQ1_0":  # any byte decodes; llama.cpp writes only 0..242 in qs
            out += rbytes(48) + rbytes(4) + d
        elif name == "TQ2_0":
            out += rbytes(64) + d
        elif name == "MXFP4":  # exponent near 2^0, and the subnormal ends 0 and 1
            e = [0, 1][b] if b < 2 else int(rng.integers(100, 150))
            out += bytes([e]) + rbytes(16)
        else:
            raise ValueError(name)
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    only = set(sys.argv[1:])  # optional: the type names to (re)write
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        exe = build_driver(work)
        for name, (type_id, block, size) in TYPES.items():
            if only and name not in only:
                continue
            n = N_LARGE if name in BLOCK_FIXTURES else N
            x = source_data(type_id, n)
            (work / "src.bin").write_bytes(x.tobytes())
            variants = [("", name in NEEDS_IMATRIX)] + ([("-imatrix", True)] if name in TAKES_IMATRIX else [])
            for suffix, with_imatrix in variants:
                args = [str(exe), str(type_id), str(n), str(work / "src.bin"), str(work / "out.bin")]
                imatrix = imatrix_data(type_id, n) if with_imatrix else None
                if imatrix is not None:
                    (work / "imatrix.bin").write_bytes(imatrix.tobytes())
                    args.append(str(work / "imatrix.bin"))
                subprocess.run(args, check=True)
                out = (work / "out.bin").read_bytes()
                nbytes = n // block * size
                assert len(out) == nbytes + 4 * n, (name, len(out))
                blocks, deq = out[:nbytes], np.frombuffer(out[nbytes:], dtype=np.float32)
                check = gguf_py_dequantize(name, blocks) if deq.any() else None
                note = "no gguf-py dequantizer"
                if check is not None:
                    note = f"gguf-py max |diff| {float(np.max(np.abs(check - deq))):.3g}"
                path = OUT / f"{name}{suffix}.bin"
                if imatrix is None:
                    path.write_bytes(b"MQFX" + struct.pack("<III", 1, type_id, n) + x.tobytes() + blocks + deq.tobytes())
                else:
                    path.write_bytes(b"MQFX" + struct.pack("<III", 2, type_id, n) + x.tobytes() + imatrix.tobytes() + blocks + deq.tobytes())
                print(f"{os.path.relpath(path, REPO)}: {path.stat().st_size} bytes ({note})")

            if name in BLOCK_FIXTURES:
                rng = np.random.default_rng(40240 + type_id + 100000 * SEED)
                qb = grid_blocks(name, BLOCK_FIXTURES[name], rng)
                n = len(qb) // size * block
                (work / "blocks.bin").write_bytes(qb)
                (work / "zeros.bin").write_bytes(bytes(4 * n))
                subprocess.run([str(exe), str(type_id), str(n), str(work / "zeros.bin"), str(work / "out.bin"), "-",
                                str(work / "blocks.bin")], check=True)
                out = (work / "out.bin").read_bytes()
                assert out[:len(qb)] == qb and len(out) == len(qb) + 4 * n, name
                deq = np.frombuffer(out[len(qb):], dtype=np.float32)
                check = gguf_py_dequantize(name, qb)
                note = "no gguf-py dequantizer"
                if check is not None:
                    note = f"gguf-py max |diff| {float(np.max(np.abs(check - deq))):.3g}"
                path = OUT / f"{name}-blocks.bin"
                path.write_bytes(b"MQFX" + struct.pack("<III", 3, type_id, n) + qb + deq.tobytes())
                print(f"{os.path.relpath(path, REPO)}: {path.stat().st_size} bytes, {n // block} blocks ({note})")


if __name__ == "__main__":
    main()
