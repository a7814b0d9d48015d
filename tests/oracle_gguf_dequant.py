#!/usr/bin/env python3
"""rotq_dequantize against the PyPI gguf package, bit for bit.

For every block type rotq reads from GGUF files: random blocks (random bytes, with the fp16
scale fields made finite) and real blocks (SmolLM2's own Q4_1/Q8_0 tensors, plus its weights
re-quantized by gguf.quants for the other 32-element types). rotq's side runs through
build/tests/tool_dequant (raw blocks in, float32 out). Q8_K is not dequantized by the gguf
package; it is checked against the block definition written out in numpy here.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf.quants import dequantize, quantize
except ImportError as e:
    print(f"skip: the gguf package is missing ({e})")
    sys.exit(77)

BUILD = os.environ.get("ROTQ_BUILD", os.path.join(os.path.dirname(__file__), "..", "build"))
TOOL = os.environ.get("ROTQ_TOOL_DEQUANT", os.path.join(BUILD, "tests", "tool_dequant"))
MODELS = os.environ.get("ROTQ_MODELS", os.path.join(os.path.dirname(__file__), "..", "models"))
SMOL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")

# Byte offsets of the fp16 scale fields inside each block (see ggml's block_* structs).
HALF_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
PLAIN = [T.F32, T.F16, T.BF16]

failures = []
tmp = tempfile.mkdtemp(prefix="rotq-dequant-")


def rotq_dequant(qtype, raw):
    src = os.path.join(tmp, "in.bin")
    dst = os.path.join(tmp, "out.f32")
    raw.tofile(src)
    r = subprocess.run([TOOL, str(int(qtype)), src, dst], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tool_dequant {qtype.name} failed: {r.stderr.strip()}")
    return np.fromfile(dst, dtype=np.float32)


def compare(label, got, want, nan_bits_free=False):
    want = np.ascontiguousarray(want, dtype=np.float32).ravel()
    if got.shape != want.shape:
        failures.append(f"{label}: {got.size} values, reference {want.size}")
        print(f"FAIL {label}: size {got.size} vs {want.size}")
        return
    gb, wb = got.view(np.uint32), want.view(np.uint32)
    same = gb == wb
    if nan_bits_free:  # F16 NaN payloads may be quieted by hardware conversion in numpy
        same |= np.isnan(got) & np.isnan(want)
    bad = np.flatnonzero(~same)
    if bad.size:
        i = bad[0]
        failures.append(label)
        print(f"FAIL {label}: {bad.size}/{got.size} differ; first at {i}: rotq {got[i]!r} ({gb[i]:#010x}) "
              f"gguf {want[i]!r} ({wb[i]:#010x})")
    else:
        print(f"ok   {label}: {got.size} values bit-identical")


def random_blocks(rng, qtype, n_blocks):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in HALF_FIELDS.get(qtype, []):
        h = raw[:, off:off + 2].copy().view(np.uint16).ravel()
        h = np.where((h & 0x7C00) == 0x7C00, h & ~np.uint16(0x4000), h)  # exponent 31 (inf/nan) → finite
        raw[:, off:off + 2] = h.astype(np.uint16).view(np.uint8).reshape(n_blocks, 2)
    return raw


def main():
    if not os.access(TOOL, os.X_OK):
        print(f"FAIL: {TOOL} not built (it is part of the CMake build)")
        return 1
    rng = np.random.default_rng(20240607)

    for qtype in list(HALF_FIELDS) + PLAIN:
        n_blocks = 2048 if qtype in HALF_FIELDS else 1 << 16
        raw = random_blocks(rng, qtype, n_blocks)
        got = rotq_dequant(qtype, raw)
        want = dequantize(raw.ravel(), qtype)
        compare(f"{qtype.name} random", got, want, nan_bits_free=qtype == T.F16)

    # Edge values: zero and subnormal fp16 scales, extreme nibbles.
    for qtype in HALF_FIELDS:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        raw = random_blocks(rng, qtype, 256)
        special = np.array([0x0000, 0x8000, 0x0001, 0x83FF, 0x7BFF, 0xFBFF, 0x3C00], dtype=np.uint16)
        for off in HALF_FIELDS[qtype]:
            pick = special[rng.integers(0, special.size, 256)]
            raw[:, off:off + 2] = pick.view(np.uint8).reshape(256, 2)
        compare(f"{qtype.name} edge scales", rotq_dequant(qtype, raw), dequantize(raw.ravel(), qtype))

    # Q8_K: f32 d, 256 int8, 16 int16 sums; y = d * q.
    n_blocks = 512
    raw = rng.integers(0, 256, size=(n_blocks, 292), dtype=np.uint8)
    d = rng.standard_normal(n_blocks).astype(np.float32)
    raw[:, :4] = d.view(np.uint8).reshape(n_blocks, 4)
    want = d[:, None] * raw[:, 4:260].view(np.int8).astype(np.float32)
    compare("Q8_K random (numpy block definition)", rotq_dequant(T.Q8_K, raw), want)

    if not os.path.exists(SMOL):
        print(f"skip real blocks: {SMOL} is absent (run scripts/fetch_model.sh)")
    else:
        reader = gguf.GGUFReader(SMOL)
        seen = set()
        for t in reader.tensors:
            qtype = T(t.tensor_type)
            if qtype in seen or qtype not in HALF_FIELDS:
                continue
            seen.add(qtype)
            raw = np.asarray(t.data).view(np.uint8).ravel()
            raw = raw[: min(raw.size, 4096 * gguf.GGML_QUANT_SIZES[qtype][1])]
            compare(f"{qtype.name} real ({t.name})", rotq_dequant(qtype, raw), dequantize(raw, qtype))
        # Real weights re-quantized by the gguf package for the other 32-element types.
        w = None
        for t in reader.tensors:
            if t.name == "blk.0.ffn_gate.weight":
                w = dequantize(np.asarray(t.data), T(t.tensor_type)).reshape(-1, 576)
        for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
            raw = np.asarray(quantize(w, qtype)).view(np.uint8).ravel()
            compare(f"{qtype.name} re-quantized SmolLM2 weights", rotq_dequant(qtype, raw), dequantize(raw, qtype))
        for qtype in (T.F16, T.BF16):
            raw = np.asarray(quantize(w, qtype)).view(np.uint8).ravel()
            compare(f"{qtype.name} SmolLM2 weights", rotq_dequant(qtype, raw), dequantize(raw, qtype))

    if failures:
        print(f"{len(failures)} comparison(s) failed")
        return 1
    print("all dequantizations match the gguf package bit for bit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
