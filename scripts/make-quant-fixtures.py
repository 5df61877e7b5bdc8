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

File layout (little endian): b"MQFX", u32 version (1), u32 ggml type id, u32 n, f32 src[n],
u8 blocks[row bytes] (llama.cpp's quantization of src), f32 deq[n] (llama.cpp's dequantization of
blocks; all zero when llama.cpp has no dequantizer for the type, as for Q8_1).
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
OUT = REPO / "test" / "fixtures" / "quant"
N = 1024  # elements per fixture: 32 blocks of 32 or 4 super-blocks of 256

# name: (ggml type id, block size, bytes per block)
TYPES = {
    "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24),
    "Q8_0": (8, 32, 34), "Q8_1": (9, 32, 36),
    "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110), "Q4_K": (12, 256, 144), "Q5_K": (13, 256, 176),
    "Q6_K": (14, 256, 210), "Q8_K": (15, 256, 292),
    "IQ4_NL": (20, 32, 18), "IQ4_XS": (23, 256, 136),
}

# The driver: reads src (f32[n]) from argv[3], quantizes with what llama-quantize uses
# (ggml_quantize_chunk, no importance matrix) or, for the activation types, the reference row
# quantizers; dequantizes with ggml's to_float; writes blocks then deq to argv[4].
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
    if (type == GGML_TYPE_Q8_1) {
        quantize_row_q8_1_ref(src, q, n);
    } else if (type == GGML_TYPE_Q8_K) {
        quantize_row_q8_K_ref(src, q, n);
        dequantize_row_q8_K(q, deq, n);
    } else {
        ggml_quantize_init((enum ggml_type) type);
        ggml_quantize_chunk((enum ggml_type) type, src, q, 0, 1, n, NULL);
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


def build_driver(workdir: Path) -> Path:
    lib = GGML_BUILD / "ggml" / "src" / "libggml-base.a"
    if not lib.exists():
        sys.exit(f"make-quant-fixtures: {lib} not found; build ggml-base first (see the docstring)")
    src = workdir / "quant_fixture_driver.c"
    exe = workdir / "quant_fixture_driver"
    src.write_text(DRIVER)
    cmd = ["cc", "-O2", "-o", str(exe), str(src), f"-I{LLAMA_CPP / 'ggml' / 'include'}", str(lib),
           "-lstdc++", "-lm", "-lpthread", "-fopenmp"]
    subprocess.run(cmd, check=True)
    return exe


def source_data(type_id: int) -> np.ndarray:
    """Per 32-element block, Gaussian data at a random scale (1e-3..10), plus edge-case blocks:
    all zero, one dominant outlier, constant, all negative, tiny values, uniform."""
    rng = np.random.default_rng(20240 + type_id)
    x = np.empty(N, dtype=np.float32)
    for b in range(N // 32):
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


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        exe = build_driver(work)
        for name, (type_id, block, size) in TYPES.items():
            x = source_data(type_id)
            (work / "src.bin").write_bytes(x.tobytes())
            subprocess.run([str(exe), str(type_id), str(N), str(work / "src.bin"), str(work / "out.bin")], check=True)
            out = (work / "out.bin").read_bytes()
            nbytes = N // block * size
            assert len(out) == nbytes + 4 * N, (name, len(out))
            blocks, deq = out[:nbytes], np.frombuffer(out[nbytes:], dtype=np.float32)
            check = gguf_py_dequantize(name, blocks) if deq.any() else None
            note = "no gguf-py dequantizer"
            if check is not None:
                note = f"gguf-py max |diff| {float(np.max(np.abs(check - deq))):.3g}"
            path = OUT / f"{name}.bin"
            path.write_bytes(b"MQFX" + struct.pack("<III", 1, type_id, N) + x.tobytes() + blocks + deq.tobytes())
            print(f"{path.relative_to(REPO)}: {path.stat().st_size} bytes ({note})")


if __name__ == "__main__":
    main()
