"""Several processes (mpirun -np 2 rotq ...) against one, on the same inputs: perplexity windows split across
ranks with their NLL summed, GPTQ calibration windows split with the Hessians summed, rotation-learning
batches split with the gradients summed. Each must give one process's result (perplexity to 1e-6
relative, GPTQ's weights and the learned rotations to 1e-5). Needs a build with -DROTQ_MPI=ON (ROTQ_BUILD)
and mpirun; skips, saying so, otherwise. On a random llama with a byte-level tokenizer, and on
tinystories-260k from ../shared when present."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import random_models as rm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("ROTQ_BUILD", os.path.join(ROOT, "build"))
ROTQ = os.environ.get("ROTQ_BIN", os.path.join(BUILD, "rotq"))
SHARED = os.environ.get("ROTQ_SHARED", os.path.join(ROOT, "..", "shared"))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
failures = []


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        failures.append(msg)


def run(args, ranks=1):
    cmd = (["mpirun", "-np", str(ranks), "--oversubscribe"] if ranks > 1 else []) + [str(a) for a in args] + ["--threads", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()[-800:]}")
    return r


def weights(folder):
    return load_file(os.path.join(folder, "model.safetensors"))


def case(label, model, text, tmp):
    # perplexity: windows split across ranks, NLL and counts summed
    p = [json.loads(run([ROTQ, "ppl", model, "--text", text, "--ctx", "64", "--json"], n).stdout)["perplexity"] for n in (1, 2)]
    check(abs(p[1] - p[0]) <= 1e-6 * p[0], f"{label}: perplexity, 2 ranks {p[1]!r} vs 1 {p[0]!r}")
    # GPTQ: calibration windows split, each layer's Hessian summed before the (identical) quantization
    outs = []
    for n in (1, 2):
        o = os.path.join(tmp, f"{label}-gptq-{n}")
        run([ROTQ, "quantize", model, o, "--rotate", "--w-bits", "4", "--w-quant", "gptq", "--calib", text, "--nsamples", "6",
             "--calib-ctx", "64", "--seed", "1"], n)
        outs.append(weights(o))
    d = max(float(np.abs(outs[0][k].astype(np.float64) - outs[1][k]).max() / max(np.abs(outs[0][k]).max(), 1e-30)) for k in outs[0])
    check(d <= 1e-5, f"{label}: GPTQ weights, 2 ranks vs 1: max relative difference {d:g}")
    # eval: the same GPTQ inside eval, then its perplexity, both split
    e = [json.loads(run([ROTQ, "eval", model, "--text", text, "--ctx", "64", "--rotate", "--w-bits", "4", "--w-quant", "gptq",
                         "--calib", text, "--nsamples", "6", "--calib-ctx", "64", "--a-bits", "8", "--json",
                         "--baseline-cache", "off"], n).stdout)["perplexity"] for n in (1, 2)]
    check(abs(e[1] - e[0]) <= 1e-6 * e[0], f"{label}: eval (GPTQ W4, A8), 2 ranks {e[1]!r} vs 1 {e[0]!r}")
    # learning: the batch split, gradients summed, the same Cayley step on every rank
    rots = []
    for n in (1, 2):
        o = os.path.join(tmp, f"{label}-learn-{n}")
        run([ROTQ, "learn", model, o, "--calib", text, "--steps", "10", "--batch", "4", "--seq-len", "64", "--n-seqs", "8"], n)
        rots.append({f: load_file(os.path.join(o, f)) for f in sorted(os.listdir(o)) if f.endswith(".safetensors")})
    d = max(float(np.abs(rots[0][f][k].astype(np.float64) - rots[1][f][k]).max()) for f in rots[0] for k in rots[0][f])
    check(len(rots[0]) > 1 and rots[0].keys() == rots[1].keys() and d <= 1e-5,
          f"{label}: rotations learned in 10 steps, 2 ranks vs 1: max |dR| {d:g} ({len(rots[0])} files)")


def main():
    if not os.access(ROTQ, os.X_OK):
        print(f"skip: build {ROTQ} first", file=sys.stderr)
        return 77
    v = subprocess.run([ROTQ, "--version"], capture_output=True, text=True).stdout
    if "MPI" not in v and "mpi" not in v:
        print(f"skip: {ROTQ} is built without MPI ({v.strip()}); build with -DROTQ_MPI=ON", file=sys.stderr)
        return 77
    if not shutil.which("mpirun"):
        print("skip: mpirun not found (Debian: openmpi-bin)", file=sys.stderr)
        return 77
    with tempfile.TemporaryDirectory(prefix="rotq-mpi-") as tmp:
        text = os.path.join(tmp, "text.txt")
        with open(text, "w") as f:
            f.write("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
                    "want of a wife. However little known the feelings or views of such a man may be on his first entering "
                    "a neighbourhood, this truth is so well fixed in the minds of the surrounding families. " * 12)
        model = rm.make("llama", os.path.join(tmp, "llama"), seed=8, dims=dict(vocab=272))
        rm.byte_level_tokenizer(model, ["<|endoftext|>"])
        case("random llama", model, text, tmp)
        ts = os.path.join(SHARED, "models", "tinystories-260k", "model.bin")
        if os.path.exists(ts):
            case("tinystories-260k", ts, text, tmp)
        else:
            print(f"skip tinystories: {ts} not found", file=sys.stderr)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all multi-process checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
