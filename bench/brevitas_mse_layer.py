#!/usr/bin/env python3
"""One weight matrix, Brevitas' MSE scale search against rotq's `--w-scale mse`: Brevitas' per-channel
int weight quantizer with weight_param_method mse (Int8WeightPerChannelFloatMSE: 4 bits,
narrow_range off, as its LLM flow builds it) and rotq's RTN (tests/tool_quant rtn --scale mse
--range full) on the same W.

Not part of the test suite (it needs torch and brevitas, which CI does not install). Run it with

    pip install torch brevitas==0.13.4          # in a scratch virtual environment
    python3 bench/brevitas_mse_layer.py [--tool build/tests/tool_quant]

Prints, per shape, how many quantized weights differ (beyond float32 rounding of the scale) and the
two quantizers' summed squared errors. Measured 2026-12-05 (Brevitas 0.13.4, CPU torch): 0 of 1024, 0 of
110,592, 0 of 884,736 weights differ."""
import argparse
import os
import subprocess
import tempfile

import numpy as np
import torch
import brevitas.nn as qnn
from brevitas.quant.scaled_int import Int8WeightPerChannelFloatMSE


def case(rng, tool, rows, n, tmp):
    W = (0.1 * rng.standard_normal((rows, n)) * np.where(rng.random((rows, n)) < 0.01, 6, 1)).astype(np.float32)
    wq = Int8WeightPerChannelFloatMSE.let(bit_width=4, narrow_range=False)
    lin = qnn.QuantLinear(n, rows, bias=False, weight_quant=wq)
    lin.weight.data = torch.from_numpy(W.copy())
    lin.eval()
    with torch.no_grad():
        qb = lin.quant_weight().value.numpy().astype(np.float64)
    w, q = (os.path.join(tmp, f) for f in ("w.f32", "q.f32"))
    W.tofile(w)
    subprocess.run([tool, "rtn", "--in", w, "--rows", str(rows), "--cols", str(n), "--bits", "4", "--scale", "mse",
                    "--range", "full", "--out", q], check=True, capture_output=True)
    qr = np.fromfile(q, dtype=np.float32).reshape(rows, n).astype(np.float64)
    diff = np.abs(qb - qr) > 1e-6 * np.abs(W).max()
    eb, er = float(((qb - W) ** 2).sum()), float(((qr - W) ** 2).sum())
    print(f"rows {rows} x cols {n}: {int(diff.sum())} of {W.size} weights differ ({int(diff.any(axis=1).sum())} rows); "
          f"sum (w-q)^2 Brevitas {eb:.6g}, rotq {er:.6g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", default="build/tests/tool_quant")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp(prefix="rotq-brevitas-mse-")
    for rows, n in ((16, 64), (192, 576), (576, 1536)):
        case(rng, a.tool, rows, n, tmp)


if __name__ == "__main__":
    main()
