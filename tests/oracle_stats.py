"""`rotq stats` against numpy: layer 0's attention input is RMSNorm(embedding rows), computable
straight from the raw llama2.c weights of tinystories-260k; after rotation the statistics of that
site must match the rotated activation (max/rms changes, the rms itself is invariant)."""
import json, os, struct, subprocess, sys
import numpy as np

ROTQ = os.environ.get("ROTQ", "build/rotq")
SHARED = os.environ.get("ROTQ_SHARED", "../shared")
model = os.path.join(SHARED, "models/tinystories-260k/model.bin")
text = os.path.join(SHARED, "data/tinystories/valid-excerpt.txt")
if not os.path.exists(model):
    print(f"skip: {model} is absent")
    sys.exit(77)

tok = subprocess.run([ROTQ, "tokenize", model, "--text", text, "--bos", "--json"], capture_output=True, text=True)
ids = json.loads(tok.stdout)["ids"] if tok.returncode == 0 else None
if ids is None:
    print(f"FAIL tokenize: {tok.stderr}")
    sys.exit(1)
T = 96
ids = ids[:T]
with open(model, "rb") as f:
    dim, hidden, layers, heads, kv, vocab, seq = struct.unpack("<7i", f.read(28))
    w = np.frombuffer(f.read(), dtype=np.float32)
emb = w[: abs(vocab) * dim].reshape(abs(vocab), dim)
norm0 = w[abs(vocab) * dim: abs(vocab) * dim + dim]
x = emb[ids].astype(np.float64)
xn = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * norm0
ref_ratio = np.abs(xn).max() / np.sqrt((xn * xn).mean())
ref_kurt = (xn ** 4).mean() / (xn * xn).mean() ** 2

p = subprocess.run([ROTQ, "stats", model, "--text", text, "--tokens", str(T), "--json"], capture_output=True, text=True)
j = json.loads(p.stdout)
site = next(s for s in j["sites"] if s["layer"] == 0 and s["site"] == "attn_in")
failures = []
if j["tokens"] != T:
    failures.append(f"stats ran {j['tokens']} tokens, expected {T}")
for name, got, ref in [("max/rms", site["max_over_rms"], ref_ratio), ("kurtosis", site["kurtosis"], ref_kurt)]:
    if abs(got - ref) > 1e-4 * abs(ref):
        failures.append(f"layer 0 attn_in {name}: rotq {got}, numpy {ref}")
for s in j["sites"]:
    if not (s["max_over_rms"] >= 1 and s["kurtosis"] >= 1):
        failures.append(f"impossible statistics {s}")
for f in failures:
    print("FAIL", f)
print(f"oracle_stats: {len(failures)} failures")
sys.exit(1 if failures else 0)
