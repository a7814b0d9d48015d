"""examples/w4a4kv4_ppl.c — a W4A4KV4 perplexity computed through the public API alone (rotq.h and
the shared library) — gives exactly the numbers of `rotq eval --rotate --preset w4a4kv4` on the same
model, text and windows (an independent command path over the same library), and its quantized
session lists the online rotations before the quantizers. Runs on tinystories-260k, or on a random
llama2.c model with a byte tokenizer when ../shared is absent."""
import json, os, re, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(__file__))
from random_models import make_llama2c  # noqa: E402

ROTQ = os.environ.get("ROTQ", "build/rotq")
BUILD = os.environ.get("ROTQ_BUILD", "build")
SHARED = os.environ.get("ROTQ_SHARED", "../shared")
EXAMPLE = os.path.join(BUILD, "examples", "example_w4a4kv4")

if not os.path.exists(EXAMPLE):
    print(f"skip: {EXAMPLE} not built")
    sys.exit(77)
model = os.path.join(SHARED, "models/tinystories-260k/model.bin")
text = os.path.join(SHARED, "data/tinystories/valid-excerpt.txt")
if not os.path.exists(model) or not os.path.exists(text):
    print(f"{model} or {text} is absent: using a random llama2.c model and a generated text instead")
    model, text = make_llama2c(tempfile.mkdtemp(prefix="rotq-l2c-"))

failures = []
p = subprocess.run([EXAMPLE, model, text, "256", "6"], capture_output=True, text=True)
if p.returncode != 0:
    print(f"FAIL example: rc {p.returncode}: {p.stderr}")
    sys.exit(1)
out = p.stdout
print(out)
got = {k: float(v) for k, v in re.findall(r"^(float|W4A4KV4) perplexity ([0-9.]+)$", out, re.M)}

q = subprocess.run([ROTQ, "eval", model, "--rotate", "--preset", "w4a4kv4", "--text", text, "--ctx", "256",
                    "--max-windows", "6", "--baseline-cache", "off", "--json", "--quiet"], capture_output=True, text=True)
if q.returncode != 0:
    print(f"FAIL rotq eval: {q.stderr}")
    sys.exit(1)
j = json.loads(q.stdout)
for key, want in (("float", j["baseline_perplexity"]), ("W4A4KV4", j["perplexity"])):
    if key not in got:
        failures.append(f"the example printed no {key} perplexity")
    elif abs(got[key] - want) > 1e-6 * want:
        failures.append(f"{key}: example {got[key]:.6f}, rotq eval {want:.6f}")
if not (j["perplexity"] > j["baseline_perplexity"] > 1):
    failures.append(f"implausible: float {j['baseline_perplexity']}, W4A4KV4 {j['perplexity']}")
# the quantized session: R3 before the K quantizer at qk_rope, R4 at down_proj's input, integer products
lines = out.splitlines()
qk = next((l for l in lines if l.startswith("qk_rope:")), "")
if not re.match(r"qk_rope: R3 online Hadamard \d+ -> fake-quant K4", qk):
    failures.append(f"qk_rope transforms: {qk!r}")
if not any(l.startswith("down_input: R4 online") for l in lines):
    failures.append("no R4 at down_input")
if "products: int" not in out or "transforms" not in j or j["transforms"] not in out:
    failures.append(f"products / transforms differ from rotq eval's: {j.get('products')} / {j.get('transforms')!r}")

# the shared library exports the public API and nothing else
lib = next((os.path.join(BUILD, f) for f in sorted(os.listdir(BUILD)) if f.startswith("librotq.so")), None)
header = open(os.path.join(os.environ.get("ROTQ_SOURCE", "."), "include", "rotq.h")).read()
declared = set(re.findall(r"\b(rotq_[a-z0-9_]+)\s*\(", header))
if lib:
    nm = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True).stdout
    exported = {l.split()[-1] for l in nm.splitlines() if len(l.split()) == 3 and l.split()[1] in "TDBRVW"}
    exported = {e for e in exported if not e.startswith("_")}
    extra, missing = sorted(exported - declared), sorted(declared - exported)
    if extra:
        failures.append(f"{lib} exports {len(extra)} symbols rotq.h does not declare: {extra[:12]}")
    if missing:
        failures.append(f"{lib} lacks {len(missing)} functions rotq.h declares: {missing[:12]}")
    print(f"{lib}: {len(exported)} exported symbols, all declared in rotq.h")
else:
    failures.append(f"no librotq.so in {BUILD}")

for f in failures:
    print("FAIL", f)
print(f"{2 + 4 + 2 - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
