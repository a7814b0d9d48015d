"""Quantized GGUF export (issue 14): `rotq quantize --format gguf:T --pure` for every block type rotq
writes: Q4_0, Q5_0, Q8_0 (float16 scales), Q4_1, Q5_1 (a float16 min: −d·z with d of 7/6 mantissa
bits), Q3_K, Q6_K (float16 d times 6/8-bit sub-scales), Q2_K, Q4_K, Q5_K (float16 d and dmin times
4/6-bit sub-scales and mins), with RTN and GPTQ, on a random llama2.c model (with a tokenizer, so GPTQ
calibrates):
- the file's decoder linears have type T, and PyPI gguf's dequantizer reads them back to exactly the
  values of the same quantization exported as float32 (`--w-grid t`):
  the blocks hold the codes the quantizer chose, bit for bit;
- rotq's own runner gives identical logits on the block file and on the float file;
- with --pure alone the token embedding and output matrix take the type too.
With SmolLM2 and llama-cpp-python present: the rotated Q4_0 file (fused rotations only) runs in
llama.cpp, whose logits agree with rotq's on the same file (llama.cpp multiplies Q4_0 by Q8_0
activations, so within a tolerance), and a file with online rotations is not what --format writes."""
import json, os, subprocess, sys, tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import random_models  # noqa: E402

ROTQ = os.environ.get("ROTQ", "build/rotq")
MODELS = os.environ.get("ROTQ_MODELS", "models")
failures, checked = [], 0

try:
    import gguf
except ImportError as e:
    print(f"skip: the gguf package is missing ({e})")
    sys.exit(77)


def check(ok, label):
    global checked
    checked += 1
    print(("ok   " if ok else "FAIL ") + label)
    if not ok:
        failures.append(label)


def rotq(*args):
    p = subprocess.run([ROTQ, *args], capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"rotq {' '.join(args)}: {p.stderr.strip()[-600:]}")
    return p


def logits(model, ids, out):
    rotq("ppl", model, "--ids", ",".join(map(str, ids)), "--dump-logits", out, "--force", "--threads", "2")
    return np.fromfile(out, dtype="<f4")


# (type, hidden, intermediate): Q6_K's blocks of 256 need rows of whole blocks
TYPES = [("Q4_0", 64, 96), ("Q4_1", 64, 96), ("Q5_0", 64, 96), ("Q5_1", 64, 96), ("Q8_0", 64, 96), ("Q2_K", 256, 512),
         ("Q3_K", 256, 512), ("Q4_K", 256, 512), ("Q5_K", 256, 512), ("Q6_K", 256, 512)]


def random_model_checks(tmp):
    ids = list(range(3, 40))
    for t, dim, hidden in TYPES:
        folder = os.path.join(tmp, f"l2c-{dim}")
        if not os.path.isdir(folder):
            os.mkdir(folder)
            random_models.make_llama2c(folder, dim=dim, hidden=hidden)
        model, text = os.path.join(folder, "model.bin"), os.path.join(folder, "text.txt")
        linears_only = ["--pure", "--embedding-type", "f32", "--output-type", "f32"]
        for meth in (linears_only, ["--w-quant", "gptq", "--calib", text, "--nsamples", "4", "--calib-ctx", "64"] + linears_only,
                     ["--pure"]):
            name = f"{t} {'GPTQ' if '--calib' in meth else 'RTN'}{'' if '--embedding-type' in meth else ' embeddings too'}"
            blocks, floats = os.path.join(tmp, "q.gguf"), os.path.join(tmp, "f.gguf")
            rotq("quantize", model, blocks, "--format", "gguf:" + t, "--rotate", "--quiet", "--force", *meth)
            rotq("quantize", model, floats, "--rotate", "--r3", "off", "--r4", "off", "--w-grid", t.lower(),
                 "--quiet", "--force", *meth)
            a, b = gguf.GGUFReader(blocks), gguf.GGUFReader(floats)
            ref = {x.name: x for x in b.tensors}
            linears = [x for x in a.tensors if x.name.startswith("blk.") and x.name.endswith(".weight") and len(x.shape) == 2]
            check(len(linears) == 14 and all(x.tensor_type.name == t for x in linears),
                  f"{name}: the 14 decoder linears are {t} ({sorted({x.tensor_type.name for x in linears})})")
            globals_ = {x.name: x.tensor_type.name for x in a.tensors if x.name in ("token_embd.weight", "output.weight")}
            want_g = "F32" if "--embedding-type" in meth else t
            check(len(globals_) == 2 and set(globals_.values()) == {want_g}, f"{name}: token_embd and output are {want_g} ({globals_})")
            worst = 0.0
            for x in a.tensors:
                got = gguf.quants.dequantize(x.data, x.tensor_type)
                want = np.array(ref[x.name].data, dtype=np.float32).reshape(got.shape)
                worst = max(worst, float(np.abs(got - want).max()))
            check(worst == 0.0, f"{name}: gguf's dequantizer gives exactly the quantized float export (max |diff| {worst:g})")
            if meth == linears_only:
                info = json.loads(rotq("info", blocks, "--json").stdout)
                want = 8.0 * sum(int(x.n_bytes) for x in a.tensors) / sum(int(x.n_elements) for x in a.tensors)
                check(abs(info["file_bits_per_weight"] - want) < 1e-6 * want and info["file_dtypes"].get(t.lower()) == 14,
                      f"{name}: rotq info says {info['file_bits_per_weight']:.4f} bits per weight and 14 {t} tensors (gguf: {want:.4f})")
            la, lb = logits(blocks, ids, os.path.join(tmp, "a.f32")), logits(floats, ids, os.path.join(tmp, "b.f32"))
            check(np.array_equal(la, lb), f"{name}: rotq's logits on the block file equal those on the float file")


def smollm2_in_llamacpp(tmp):
    smol = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(smol):
        print(f"note: {smol} absent: the llama.cpp part is skipped (scripts/fetch_model.sh)")
        return
    try:
        from oracle_nn_llamacpp import llama_logits, load_llama
    except ImportError as e:
        print(f"note: llama_cpp missing ({e}): the llama.cpp part is skipped")
        return
    q40, same = os.path.join(tmp, "smol-q4_0.gguf"), os.path.join(tmp, "smol-same-f32.gguf")
    rotq("quantize", smol, q40, "--format", "gguf:Q4_0", "--pure", "--rotate", "--dtype", "f32", "--quiet", "--force")
    # the same quantization written as float32: what the Q4_0 blocks must decode to
    rotq("quantize", smol, same, "--rotate", "--r3", "off", "--r4", "off", "--w-grid", "q4_0", "--pure",
         "--dtype", "f32", "--quiet", "--force")
    r = gguf.GGUFReader(q40)
    n_q40 = sum(x.tensor_type.name == "Q4_0" for x in r.tensors)
    check(n_q40 == 7 * 30 + 2, f"SmolLM2: 210 linears, token_embd and output written as Q4_0 ({n_q40})")
    rec = r.fields.get("rotq.record")
    rec = bytes(rec.parts[rec.data[0]]).decode() if rec else ""
    check("r1" in rec and '"r3"' not in rec and '"r4"' not in rec,
          f"SmolLM2: R1 recorded, no online rotation in the file (llama.cpp could not run it): {rec[:160]}")
    llm_q, llm_f = load_llama(q40, 256), load_llama(same, 256)
    text = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    ids = llm_q.tokenize(text[:3000].encode(), add_bos=True)[:160]
    lq, lf = llama_logits(llm_q, ids), llama_logits(llm_f, ids)
    got = logits(q40, ids, os.path.join(tmp, "smol.f32")).reshape(len(ids), -1).astype(np.float64)
    err, scale = float(np.abs(got - lf).max()), float(np.abs(lf).max())
    check(err <= 2e-4 * scale, f"SmolLM2 Q4_0 file in rotq = the same weights as float32 in llama.cpp: max|dlogit| {err:.3g} (max|logit| {scale:.3g})")

    def nll(lg):
        m = lg.max(1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(lg - m).sum(1))
        return float(np.mean(lse[:-1] - lg[np.arange(len(ids) - 1), ids[1:]]))
    nq, nf = nll(lq), nll(lf)
    check(abs(nq - nf) < 0.01 * nf, f"SmolLM2 Q4_0 file in llama.cpp (Q4_0 x Q8_0 products): mean NLL {nq:.4f} vs {nf:.4f} for "
          f"the same weights in float32 ({len(ids)} tokens of README.md)")


with tempfile.TemporaryDirectory() as tmp:
    random_model_checks(tmp)
    smollm2_in_llamacpp(tmp)

for f in failures:
    print("FAIL", f)
print(f"{checked - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
