#!/usr/bin/env python3
"""`rotq hadamard N --write` checked with numpy and the safetensors package: the file holds an
orthogonal R whose entries are ±1/sqrt(N), so H = sqrt(N)·R is an exact Hadamard matrix (H·Hᵀ = N·I in
integers); the seed changes only column-independent row signs (R = D·H/sqrt(N)); unknown orders exit
non-zero and say what is used instead."""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from safetensors.numpy import load_file
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(77)

ROTQ = os.environ.get("ROTQ")
if not ROTQ or not os.path.exists(ROTQ):
    print("skip: ROTQ (path of the rotq binary) is not set")
    sys.exit(77)

failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg)


def run(*args):
    return subprocess.run([ROTQ, "hadamard", *map(str, args)], capture_output=True, text=True)


with tempfile.TemporaryDirectory() as tmp:
    # sizes from each construction (Sylvester, Paley I/II incl. prime powers, twin primes,
    # Goethals–Seidel) and model widths that need a base K > 1
    for n in [1, 2, 64, 12, 28, 52, 100, 144, 92, 188, 236, 576, 896, 1536]:
        unsigned = os.path.join(tmp, f"h{n}.safetensors")
        signed = os.path.join(tmp, f"s{n}.safetensors")
        r = run(n, "--write", unsigned, "--json")
        check(r.returncode == 0, f"rotq hadamard {n}: rc {r.returncode}: {r.stderr}")
        if r.returncode != 0:
            continue
        info = json.loads(r.stdout)
        check(info["n"] == n and info["known"] and info["K"] << info["m"] == n, f"json for {n}: {info}")
        R = load_file(unsigned)["rotation"].astype(np.float64)
        check(R.shape == (n, n), f"shape {R.shape}")
        H = np.rint(R * np.sqrt(n))
        check(np.abs(R * np.sqrt(n) - H).max() < 1e-9, f"{n}: entries are not ±1/sqrt(n)")
        check(set(np.unique(H)) <= {-1.0, 1.0}, f"{n}: entries not ±1")
        Hi = H.astype(np.int64)
        check((Hi @ Hi.T == n * np.eye(n, dtype=np.int64)).all(), f"{n}: H·Hᵀ != n·I")
        r = run(n, "--write", signed, "--seed", 7, "--dtype", "f32")
        check(r.returncode == 0, f"rotq hadamard {n} --seed: {r.stderr}")
        S = load_file(signed)["rotation"]
        check(S.dtype == np.float32, f"{n}: --dtype f32 wrote {S.dtype}")
        S = S.astype(np.float64)
        check(np.abs(S @ S.T - np.eye(n)).max() < 1e-5, f"{n}: signed rotation not orthogonal")
        # R_signed = D·R: each row equals ± the unsigned row
        ratio = np.sign(S[:, :1] * R[:, :1])
        check(np.abs(S - ratio * R).max() < 1e-6, f"{n}: signed matrix is not D·H/sqrt(n)")
        if n >= 64:
            check((ratio < 0).any() and (ratio > 0).any(), f"{n}: seed gave no mix of signs")

    # the example, verbatim
    r = run(4864)
    check(r.returncode == 0 and "Paley II q=37 ⊗ Sylvester 2^6" in r.stdout, f"4864: {r.stdout} {r.stderr}")
    # every multiple of 4 up to 256 is known
    r = run("--list", 256, "--json")
    check(r.returncode == 0 and json.loads(r.stdout)["unknown"] == [], f"--list 256: {r.stdout}")
    # no Hadamard: non-zero exit and the fallback named
    for n in [6, 10, 2 * 3 * 5]:
        r = run(n)
        check(r.returncode != 0 and "random orthogonal" in r.stderr, f"order {n}: rc {r.returncode}, {r.stderr}")
    r = run("abc")
    check(r.returncode != 0, "non-numeric N accepted")
    # a number on the command line does not decide how much memory rotq takes: an order whose base
    # matrix would need tens of GB is refused at once, under a 1.5 GB address-space limit
    import resource
    limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (1500 << 20, 1500 << 20))
    r = subprocess.run([ROTQ, "hadamard", "1000000"], capture_output=True, text=True, preexec_fn=limit, timeout=30)
    check(r.returncode == 1 and "base matrix" in r.stderr and "GB" in r.stderr and "4096" in r.stderr,
          f"hadamard 1000000: rc {r.returncode}, {r.stderr}")

print("oracle_hadamard:", "FAILED" if failures else "ok")
sys.exit(1 if failures else 0)
