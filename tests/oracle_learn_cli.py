"""`rotq learn` end to end on tinystories-260k with the Austen calibration text (or, when ../shared is
absent, a random llama2.c model whose generated text is split: the first half to learn on, the
second to score):
 - a fixed-seed run on one fixed batch lowers the training loss (the objective it reports), with
   float weights and with the weights rounded in the loop (which start from a larger KL);
 - the files: R1 and every R2 read back with numpy are orthogonal to rounding, they moved away from
   the random Hadamard they started from (`rotq rotate --save-rotations` writes that start), and
   learn.json records the settings and one loss per step;
 - `rotq eval --rotations DIR` and `--r1 FILE --r2 DIR` run with them and name them; the same
   settings give the same numbers either way;
 - the same seed gives the same rotations bit for bit;
 - bad input is refused before any work: an existing output, --text, weight quantization, no --calib,
   zero steps, a rotations folder without its files."""
import json, os, struct, subprocess, sys, tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from random_models import make_llama2c  # noqa: E402

ROTQ = os.environ.get("ROTQ", "build/rotq")
SHARED = os.environ.get("ROTQ_SHARED", "../shared")
model = os.path.join(SHARED, "models/tinystories-260k/model.bin")
tokenizer = os.path.join(SHARED, "models/tinystories-260k/tokenizer.bin")
evaltext = os.path.join(SHARED, "data/tinystories/valid-excerpt.txt")
calib = os.path.join(SHARED, "data/calibration/austen-pride-and-prejudice.txt")
work = tempfile.mkdtemp(prefix="rotq-learn-")
tok_args = ["--tokenizer", tokenizer]
if not all(os.path.exists(p) for p in (model, tokenizer, evaltext, calib)):
    print("tinystories-260k or the calibration text is absent: using a random llama2.c model and a generated text")
    os.mkdir(os.path.join(work, "l2c"))
    model, text = make_llama2c(os.path.join(work, "l2c"))
    data = open(text, "rb").read()
    calib, evaltext = os.path.join(work, "calib.txt"), os.path.join(work, "eval.txt")
    open(calib, "wb").write(data[: len(data) // 2])
    open(evaltext, "wb").write(data[len(data) // 2:])
    tok_args = []

failures = []


def rotq(*args, ok=True):
    p = subprocess.run([ROTQ, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        print(f"FAIL rotq {' '.join(args)}:\n{p.stderr}")
        sys.exit(1)
    return p


def load_st(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8:8 + n])
    info = head["rotation"]
    assert info["dtype"] == "F64", info
    a, b = info["data_offsets"]
    return np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float64).reshape(info["shape"])


learn_args = ["--calib", calib, "--steps", "12", "--batch", "2", "--seq-len", "128", "--n-seqs", "2", "--seed", "3",
              "--loss", "kl", "--quiet", *tok_args]
out = os.path.join(work, "rot")
j = json.loads(rotq("learn", model, out, *learn_args, "--json").stdout)
rec = json.load(open(os.path.join(out, "learn.json")))
curve = rec["loss_per_step"]
if len(curve) != 12 or rec["steps"] != 12 or rec["seq_len"] != 128 or rec["loss"] != "kl-to-float":
    failures.append(f"learn.json: {len(curve)} losses, settings {rec}")
if not (curve[-1] < curve[0] and j["last_loss"] < j["first_loss"]):
    failures.append(f"the loss on one fixed batch did not go down: {curve}")
print(f"loss on the fixed batch: {curve[0]:.5f} -> {curve[-1]:.5f}")

# weights in the loop (W4 RTN on the rotated weights): the same fixed batch, its loss goes down too
w4 = os.path.join(work, "rot_w4")
jw = json.loads(rotq("learn", model, w4, *learn_args, "--w-bits", "4", "--json").stdout)
rec4 = json.load(open(os.path.join(w4, "learn.json")))
if not rec4["quantization_while_learning"].startswith("W4 RTN") or not jw["last_loss"] < jw["first_loss"]:
    failures.append(f"W4 in the loop: {rec4['quantization_while_learning']!r}, loss {jw['first_loss']} -> {jw['last_loss']}")
if jw["first_loss"] <= j["first_loss"]:
    failures.append(f"rounding the weights too should cost more at the start: {jw['first_loss']} vs {j['first_loss']}")
print(f"W4 in the loop: {jw['first_loss']:.5f} -> {jw['last_loss']:.5f}")

# the starting point, as rotq rotate builds it with the same seed
start = os.path.join(work, "start")
os.mkdir(start)
rotq("rotate", model, os.path.join(work, "rotated"), "--seed", "3", "--save-rotations", start)
n_layers = len([f for f in os.listdir(out) if f.startswith("r2.layer")])
for name in ["r1"] + [f"r2.layer{l}" for l in range(n_layers)]:
    R = load_st(os.path.join(out, name + ".safetensors"))
    R0 = load_st(os.path.join(start, name + ".safetensors"))
    err = np.abs(R.T @ R - np.eye(len(R))).max()
    moved = np.abs(R - R0).max()
    if err > 1e-12:
        failures.append(f"{name}: max |R^T R - I| = {err:.3g}")
    if moved < 1e-4:
        failures.append(f"{name}: moved only {moved:.3g} from its random Hadamard start")
print(f"{n_layers} layers: R1 and R2 orthogonal, moved from the start")

# reproducible: the same seed gives the same bytes
again = os.path.join(work, "again")
rotq("learn", model, again, *learn_args)
for name in ["r1.safetensors", "r2.layer0.safetensors"]:
    if open(os.path.join(out, name), "rb").read() != open(os.path.join(again, name), "rb").read():
        failures.append(f"{name} differs between two runs with the same seed")


def ev(*args):
    p = rotq("eval", model, "--text", evaltext, "--ctx", "128", "--max-windows", "8", "--preset", "w4a4kv4", "--w-bits", "16",
             "--json", "--quiet", *tok_args, *args)
    return json.loads(p.stdout)


learned = ev("--rotations", out, "--seed", "3")
by_file = ev("--r1", os.path.join(out, "r1.safetensors"), "--r2", out, "--seed", "3")
random = ev("--rotate", "--seed", "3")
if out not in learned["rotation"]:
    failures.append(f"eval does not name the learned rotations: {learned['rotation']}")
if learned["perplexity"] != by_file["perplexity"]:
    failures.append(f"--rotations DIR {learned['perplexity']} != --r1 FILE --r2 DIR {by_file['perplexity']}")
if learned["perplexity"] == random["perplexity"]:
    failures.append("the learned rotations give exactly the random Hadamards' perplexity")
print(f"W16A4KV4 perplexity: random Hadamard {random['perplexity']:.4f}, learned {learned['perplexity']:.4f} "
      f"(float {learned['baseline_perplexity']:.4f}; 8 windows of 128)")

# bad input
bad = [
    (["learn", model, out, *learn_args], "exists"),
    (["learn", model, os.path.join(work, "x1"), *learn_args, "--text", evaltext], "--text"),
    (["learn", model, os.path.join(work, "x2"), *learn_args, "--w-quant", "gptq"], "RTN"),
    (["learn", model, os.path.join(work, "x3"), "--steps", "3", *tok_args], "--calib"),
    (["learn", model, os.path.join(work, "x4"), *learn_args, "--steps", "0"], "--steps"),
    (["learn", model, os.path.join(work, "x5"), *learn_args, "--loss", "mse"], "--loss"),
    (["eval", model, "--text", evaltext, "--max-windows", "1", "--rotations", start, *tok_args], "has no r1.safetensors"),
]
os.remove(os.path.join(start, "r1.safetensors"))
for args, want in bad:
    p = rotq(*args, ok=False)
    if p.returncode == 0 or want not in p.stderr:
        failures.append(f"rotq {' '.join(args[:3])} ... {args[-2:]}: exit {p.returncode}, wanted an error naming {want!r}: {p.stderr[-300:]}")
    for x in ("x1", "x2", "x3", "x4", "x5"):
        if os.path.exists(os.path.join(work, x)):
            failures.append(f"a refused run left {x} behind")

if failures:
    print("\n".join("FAIL " + f for f in failures))
    sys.exit(1)
print("oracle_learn_cli: ok")
