"""Every command that runs a model answers the same on a rotated model as on the original, through
the CLI as a user runs it (the runtime issue's repro: `rotq rotate M R` with defaults, then
`rotq ppl R` scored ~12,600 instead of ~13.4 and `rotq generate R` printed "time time whararar"):
 - random llama / qwen2 (q/k/v bias) / phi3 (fused) / opt (LayerNorm, learned positions) models,
   every combination of R1-R4: perplexity from `rotq ppl --dump-logits` within 1e-4 relative,
   `rotq generate --print-ids` the same greedy tokens;
 - tinystories-260k (../shared): `rotq ppl --text` within 1e-4, `rotq generate --prompt` the same text,
   `rotq stats` of the stored rotated model equal to `rotq stats --rotate`'s "after" columns;
 - SmolLM2-135M (when fetched): one 256-token window of a text, within 1e-4."""
import itertools, json, os, subprocess, sys, tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import random_models

ROTQ = os.environ.get("ROTQ", "build/rotq")
SHARED = os.environ.get("ROTQ_SHARED", "../shared")
MODELS = os.environ.get("ROTQ_MODELS", "models")
failures, checked = [], 0


def run(*args):
    p = subprocess.run([ROTQ, *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"rotq {' '.join(map(str, args))}: {p.stderr.strip()[-400:]}")
    return p.stdout


def ppl_of_logits(path, ids, vocab):
    z = np.fromfile(path, dtype=np.float32).reshape(len(ids), vocab).astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(np.exp(-np.mean(lp[np.arange(len(ids) - 1), ids[1:]])))


def same(label, a, b, tol=1e-4):
    global checked
    checked += 1
    if not (abs(a - b) <= tol * abs(a)):
        failures.append(f"{label}: {b!r} on the rotated model, {a!r} on the original")


with tempfile.TemporaryDirectory() as tmp:
    rng = np.random.default_rng(5)
    for arch in ["llama", "qwen2", "phi3", "opt"]:
        src = random_models.make(arch, os.path.join(tmp, arch), seed=3, tied=(arch == "opt"))
        vocab = json.load(open(os.path.join(src, "config.json")))["vocab_size"]
        ids = rng.integers(0, vocab, 48).astype(np.int32)
        ids_path = os.path.join(tmp, "ids.i32")
        ids.tofile(ids_path)
        base_logits = os.path.join(tmp, f"{arch}-orig.f32")
        run("ppl", src, "--ids-file", ids_path, "--dump-logits", base_logits, "--force")
        base_ppl = ppl_of_logits(base_logits, ids, vocab)
        base_gen = run("generate", src, "--ids", ",".join(map(str, ids[:6])), "-n", 12, "--print-ids").strip()
        for r1, r2, r3, r4 in itertools.product(["none", "random-hadamard"], ["none", "random-hadamard"], ["off", "on"], ["off", "on"]):
            r = ["--r1", r1, "--r2", r2, "--r3", r3, "--r4", r4]
            out = os.path.join(tmp, f"{arch}-rot-{r1}-{r2}-{r3}-{r4}")
            run("rotate", src, out, *r, "--seed", 7, "--quiet")
            logits = os.path.join(tmp, f"{arch}-rot.f32")
            run("ppl", out, "--ids-file", ids_path, "--dump-logits", logits, "--force")
            same(f"{arch} {' '.join(r)}: ppl", base_ppl, ppl_of_logits(logits, ids, vocab))
            gen = run("generate", out, "--ids", ",".join(map(str, ids[:6])), "-n", 12, "--print-ids").strip()
            checked += 1
            if gen != base_gen:
                failures.append(f"{arch} {' '.join(r)}: generate gave {gen}, the original {base_gen}")
        print(f"checked {arch}", flush=True)

    ts = os.path.join(SHARED, "models/tinystories-260k/model.bin")
    text = os.path.join(SHARED, "data/tinystories/valid-excerpt.txt")
    if os.path.exists(ts) and os.path.exists(text):
        rot = os.path.join(tmp, "ts-rot")
        run("rotate", ts, rot, "--quiet")  # the defaults: R1-R4, as the repro did
        a = json.loads(run("ppl", ts, "--text", text, "--ctx", 256, "--json", "--quiet"))
        b = json.loads(run("ppl", rot, "--text", text, "--ctx", 256, "--json", "--quiet"))
        same("tinystories rotate defaults: ppl", a["perplexity"], b["perplexity"])
        if "R3" not in b.get("transforms", "") or "R4" not in b.get("transforms", ""):
            failures.append(f"tinystories: the rotated model's ppl does not report R3/R4: {b.get('transforms')!r}")
        ga = run("generate", ts, "--prompt", "Once upon a time", "-n", 32)
        gb = run("generate", rot, "--prompt", "Once upon a time", "-n", 32)
        checked += 1
        if ga != gb:
            failures.append(f"tinystories: generate gave {gb!r}, the original {ga!r}")
        sa = json.loads(run("stats", ts, "--text", text, "--tokens", 256, "--rotate", "--json"))
        sb = json.loads(run("stats", rot, "--text", text, "--tokens", 256, "--json"))
        for x, y in zip(sa["sites"], sb["sites"]):
            for k_after, k in (("max_over_rms_rotated", "max_over_rms"), ("kurtosis_rotated", "kurtosis")):
                same(f"tinystories stats layer {x['layer']} {x['site']} {k}", x[k_after], y[k], 1e-3)
            if not (y["max_over_rms"] >= 1 and y["kurtosis"] > 0):
                failures.append(f"tinystories stats: implausible {y}")
        print(f"checked tinystories-260k (ppl {a['perplexity']:.5f} / {b['perplexity']:.5f})", flush=True)
    else:
        print(f"skip tinystories-260k: {ts} or {text} is absent")

    smol = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(smol):
        words = ["the", "model", "rotates", "its", "weights", "and", "then", "quantizes", "them", "to", "four", "bits", "."]
        sample = os.path.join(tmp, "sample.txt")
        with open(sample, "w") as f:
            f.write(" ".join(words[int(i)] for i in rng.integers(0, len(words), 400)))
        rot = os.path.join(tmp, "smol-rot")
        run("rotate", smol, rot, "--quiet")
        a = json.loads(run("ppl", smol, "--text", sample, "--ctx", 256, "--max-windows", 1, "--json", "--quiet"))
        b = json.loads(run("ppl", rot, "--text", sample, "--ctx", 256, "--max-windows", 1, "--json", "--quiet"))
        same("SmolLM2 rotate defaults: ppl", a["perplexity"], b["perplexity"])
        print(f"checked SmolLM2-135M (ppl {a['perplexity']:.5f} / {b['perplexity']:.5f})", flush=True)
    else:
        print(f"skip SmolLM2: {smol} is absent")

for f in failures:
    print("FAIL", f)
print(f"{checked - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
