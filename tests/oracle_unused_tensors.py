"""A checkpoint whose architecture gives some tensors no role is refused, not run without them (a
Qwen3 checkpoint read as Llama would silently ignore its q_norm/k_norm and give wrong logits):
 - an HF folder with q_norm/k_norm tensors the llama description does not know: every command fails
   before any work, naming them and --allow-unused; with --allow-unused it loads and warns;
 - the same through GGUF (written with --allow-unused, read back): refused the same way;
 - RoPE frequency buffers (rotary_emb.inv_freq) say nothing the config does not: loaded silently."""
import os, subprocess, sys, tempfile

import numpy as np
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
import random_models

ROTQ = os.environ.get("ROTQ", "build/rotq")
failures, checked = [], 0


def run(*args):
    return subprocess.run([ROTQ, *map(str, args)], capture_output=True, text=True)


def expect(label, cond, p):
    global checked
    checked += 1
    if not cond:
        failures.append(f"{label}: rc {p.returncode}, stderr {p.stderr.strip()[-300:]!r}")


def add_tensors(folder, extra):
    path = os.path.join(folder, "model.safetensors")
    t = load_file(path)
    t.update(extra)
    save_file(t, path, metadata={"format": "pt"})


with tempfile.TemporaryDirectory() as tmp:
    m = random_models.make("llama", os.path.join(tmp, "qk-norm"), seed=2)
    hd = random_models.DIMS["head_dim"]
    add_tensors(m, {f"model.layers.{l}.self_attn.{n}_norm.weight": np.ones(hd, np.float32)
                    for l in range(2) for n in ("q", "k")})
    for cmd in (["info", m], ["ppl", m, "--ids", "1,2,3", "--dump-logits", os.path.join(tmp, "x.f32"), "--force"],
                ["rotate", m, os.path.join(tmp, "never")]):
        p = run(*cmd)
        expect(f"{cmd[0]} refuses", p.returncode == 1 and "q_norm" in p.stderr and "--allow-unused" in p.stderr
               and "4 tensors have no role" in p.stderr, p)
    expect("nothing written", not os.path.exists(os.path.join(tmp, "never")), p)
    p = run("info", m, "--allow-unused")
    expect("--allow-unused loads and warns", p.returncode == 0 and "warning" in p.stderr and "k_norm" in p.stderr, p)
    gg = os.path.join(tmp, "qk-norm.gguf")
    p = run("convert", m, gg, "--allow-unused")
    expect("convert --allow-unused", p.returncode == 0 and os.path.exists(gg), p)
    p = run("info", gg)
    expect("GGUF refuses too", p.returncode == 1 and "--allow-unused" in p.stderr, p)

    b = random_models.make("llama", os.path.join(tmp, "inv-freq"), seed=3)
    add_tensors(b, {f"model.layers.{l}.self_attn.rotary_emb.inv_freq": np.ones(hd // 2, np.float32) for l in range(2)})
    p = run("info", b)
    expect("rotary_emb.inv_freq buffers load silently", p.returncode == 0 and "warning" not in p.stderr, p)

for f in failures:
    print("FAIL", f)
print(f"{checked - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
