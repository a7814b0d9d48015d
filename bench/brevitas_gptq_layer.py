#!/usr/bin/env python3
"""One layer, identical inputs: Brevitas' GPTQ (brevitas.graph.gptq.GPTQ.single_layer_update, the
class its LLM flow runs) against rotq's (tests/tool_quant gptq) on the same weights W and Hessian H.

Not part of the test suite (it needs torch and brevitas, which CI does not install). Run it with

    pip install torch brevitas==0.13.4          # in a scratch virtual environment
    python3 bench/brevitas_gptq_layer.py [--tool build/tests/tool_quant] [--f32]

Brevitas' weight quantizer is its per-channel int quantizer as the LLM example builds it (4 bits,
narrow_range off, scale a parameter initialised from the weights' max |w|): scale max|w|/8, levels
-8..7, so rotq runs with --range full (rotq_sym_range FULL, no clip search). --f32 gives Brevitas
float32 buffers (its LLM default) instead of float64. Prints, per layer shape, how many of the codes
differ. Measured 2026-12-05: 0 of 1024, 0 of 18432, 0 of 24576, in float64 and in float32."""
import argparse
import os
import subprocess
import tempfile

import numpy as np
import torch
import brevitas.nn as qnn
from brevitas.graph.gptq import GPTQ
from brevitas.quant.scaled_int import Int8WeightPerChannelFloat


def case(rng, tool, dtype, rows, n, tokens, tmp):
    mix = rng.standard_normal((n, n)) / np.sqrt(n) + np.eye(n)
    X = (rng.standard_normal((tokens, n)) * np.where(np.arange(n) < 4, 6.0, 1.0)) @ mix  # a few outlier channels
    H = 2 * X.T @ X / tokens
    W = (0.1 * rng.standard_normal((rows, n))).astype(np.float32)
    wq = Int8WeightPerChannelFloat.let(bit_width=4, narrow_range=False, scaling_impl_type="parameter_from_stats")
    lin = qnn.QuantLinear(n, rows, bias=False, weight_quant=wq)
    lin.weight.data = torch.from_numpy(W.copy())
    lin.eval()
    with torch.no_grad():
        lin(torch.zeros(1, n))  # the scale parameter is initialised by the first forward
        g = GPTQ(lin, "layer", act_order=False, len_parallel_layers=1, create_weight_orig=False, num_blocks=100,
                 device="cpu", dtype=dtype)
        g.H[0] = torch.from_numpy(H)
        g.single_layer_update()
        qb = lin.quant_weight().value.numpy().astype(np.float64)
    w, h, q = (os.path.join(tmp, f) for f in ("w.f32", "h.f64", "q.f32"))
    W.tofile(w)
    H.tofile(h)
    subprocess.run([tool, "gptq", "--in", w, "--rows", str(rows), "--cols", str(n), "--hessian", h, "--bits", "4",
                    "--range", "full", "--out", q], check=True, capture_output=True)
    qr = np.fromfile(q, dtype=np.float32).reshape(rows, n).astype(np.float64)
    s = np.abs(W).max(axis=1, keepdims=True).astype(np.float64) / 8
    cb, cr = np.rint(qb / s), np.rint(qr / s)
    print(f"rows {rows} x cols {n}: {int((cb != cr).sum())} of {cb.size} codes differ; max |dw| {np.abs(qb - qr).max():.3g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", default="build/tests/tool_quant")
    ap.add_argument("--f32", action="store_true", help="Brevitas' buffers in float32 (its LLM default)")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp(prefix="rotq-brevitas-layer-")
    dtype = torch.float32 if a.f32 else torch.float64
    for rows, n, tokens in ((16, 64, 400), (32, 576, 4000), (16, 1536, 8000)):  # SmolLM2's d and ff
        case(rng, a.tool, dtype, rows, n, tokens, tmp)


if __name__ == "__main__":
    main()
