"""Mistakes are reported before any work (issue 12, item 5): a mistyped rotation kind ("bogus", "7",
read as a file name before) and an output folder that does not exist fail at once, naming what is
valid — checked with a model path that does not exist either, so an error about the option (not the
model) proves nothing was loaded first — for rotate, quantize, convert and eval."""
import os, subprocess, sys, tempfile

ROTQ = os.environ.get("ROTQ", "build/rotq")
failures, checked = [], 0


def expect(label, args, *needles, rc=1):
    global checked
    checked += 1
    p = subprocess.run([ROTQ, *args], capture_output=True, text=True, timeout=60)
    if p.returncode != rc or not all(n in p.stderr for n in needles) or "no-such-model" in p.stderr:
        failures.append(f"{label}: rc {p.returncode}, stderr {p.stderr.strip()!r}")


with tempfile.TemporaryDirectory() as tmp:
    model = os.path.join(tmp, "no-such-model")
    out = os.path.join(tmp, "out")
    kinds = "random-hadamard, hadamard, orthogonal, none"
    for kind in ("bogus", "7"):
        # a bad option value is a usage error: exit 2
        expect(f"rotate --r1 {kind}", ["rotate", model, out, "--r1", kind], f"--r1 {kind}", kinds, "no such file", rc=2)
        expect(f"rotate --r2 {kind}", ["rotate", model, out, "--r2", kind], f"--r2 {kind}", kinds, rc=2)
        expect(f"eval --r1 {kind}", ["eval", model, "--text", model, "--r1", kind], f"--r1 {kind}", kinds, rc=2)
        expect(f"quantize --r1 {kind}", ["quantize", model, out, "--preset", "w4a16", "--r1", kind], kinds, rc=2)
    # the scale search: a bad name, and the Hessian search without calibration text
    expect("eval --w-scale bogus", ["eval", model, "--text", model, "--preset", "w4a16", "--w-scale", "bogus"],
           "--w-scale bogus", "clip, mse or hessian", rc=2)
    expect("quantize --w-scale hessian without --calib", ["quantize", model, out, "--preset", "w4a16", "--w-scale", "hessian"],
           "--w-scale hessian needs calibration text", rc=2)
    expect("rotate --r1 a folder without rotations", ["rotate", model, out, "--r1", tmp], "has no r1.safetensors", rc=2)
    expect("eval --rotations a folder without rotations", ["eval", model, "--text", model, "--rotations", tmp], "has no r1.safetensors", rc=2)
    expect("learn without --calib", ["learn", model, out], "--calib FILE is required", rc=2)
    # number formats, block rotations and the rotation comparison
    expect("eval --w-dtype fp4", ["eval", model, "--text", model, "--w-dtype", "fp4"], "--w-dtype fp4", "int, mxfp4, nvfp4 or fp8", rc=2)
    expect("eval --a-dtype e2m1", ["eval", model, "--text", model, "--a-dtype", "e2m1"], "--a-dtype e2m1", "mxfp4", rc=2)
    expect("eval --preset fp4", ["eval", model, "--text", model, "--preset", "fp4"], "unknown preset fp4", "nvfp4", "w2a16g128")
    expect("eval --compare-rotations bogus", ["eval", model, "--text", model, "--preset", "mxfp4", "--compare-rotations", "none,bogus"],
           "--compare-rotations bogus", "none, full, block", rc=2)
    expect("eval --compare-rotations block on an integer preset", ["eval", model, "--text", model, "--preset", "w4a4kv4",
           "--compare-rotations", "full,block"], "no float format gives a block size", rc=2)
    expect("rotate --r1-block -1", ["rotate", model, out, "--r1-block", "-1"], "--r1-block", rc=2)
    expect("rotate --layerwise bogus", ["rotate", model, out, "--layerwise", "qkv,bogus"], "unknown site bogus", "lm_head", rc=2)
    expect("eval --layerwise-kind bogus", ["eval", model, "--text", model, "--layerwise-kind", "bogus"], "random-hadamard", rc=2)
    missing = os.path.join(tmp, "missing", "out")
    for cmd in (["rotate", model, missing], ["quantize", model, missing, "--preset", "w4a16"], ["convert", model, missing]):
        expect(f"{cmd[0]} into a missing folder", cmd, "does not exist", "nothing was loaded")

for f in failures:
    print("FAIL", f)
print(f"{checked - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
