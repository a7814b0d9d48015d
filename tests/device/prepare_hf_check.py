"""Prepares the HF transformers cross-check (run on a machine with torch + transformers):
small random llama (tied) / qwen2 (q/k/v bias) / qwen3 (q/k norms) / gemma3 (sandwich norms, GeGLU,
a 16-token sliding window over the 24 ids) / phi3 (fused) / opt (LayerNorm with bias, learned
positions, tied) models and tinystories-260k as HF folders, their fused-only rotated versions (R1 + R2;
gemma3: R2 only, its R1 is not fusable; transformers cannot run online R3/R4), and
rotq's logits on fixed token ids. usage: prepare_hf_check.py ROTQ OUT_DIR [SHARED]"""
import json, os, subprocess, sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import random_models

rotq, out = sys.argv[1], sys.argv[2]
shared = sys.argv[3] if len(sys.argv) > 3 else "../shared"
os.makedirs(out, exist_ok=True)
ids = [1, 17, 42, 99, 3, 64, 5, 120, 77, 8, 33, 101, 2, 56, 90, 11, 63, 7, 88, 14, 27, 110, 45, 9]
cases = []
for arch in ["llama", "qwen2", "qwen3", "gemma3", "phi3", "opt"]:
    src = random_models.make(arch, os.path.join(out, arch), seed=21, tied=(arch in ("llama", "opt")))
    cases.append(src)
ts = os.path.join(shared, "models/tinystories-260k/model.bin")
if os.path.exists(ts):
    subprocess.run([rotq, "convert", ts, os.path.join(out, "tinystories"), "--to", "hf"], check=True)
    cases.append(os.path.join(out, "tinystories"))
manifest = []
for src in cases:
    name = os.path.basename(src)
    rot = src + "-rotated"
    r1 = ["--r1", "none"] if name == "gemma3" else []
    subprocess.run([rotq, "rotate", src, rot, "--r3", "off", "--r4", "off", "--seed", "4", "--quiet"] + r1, check=True)
    for d in (src, rot):
        subprocess.run([rotq, "ppl", d, "--ids", ",".join(map(str, ids)), "--dump-logits", d + ".rotq_logits.f32"], check=True,
                       capture_output=True)
    manifest.append({"name": name, "original": os.path.basename(src), "rotated": os.path.basename(rot)})
json.dump({"ids": ids, "cases": manifest}, open(os.path.join(out, "manifest.json"), "w"), indent=1)
print(f"prepared {len(manifest)} cases in {out}")
