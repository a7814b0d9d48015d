"""GGUF mixtures (issue 14): `rotq quantize --format gguf:MIX` gives every tensor the type llama.cpp's
own quantizer (llama-cpp-python's llama_model_quantize) gives it for the same mixture and the same
float model, and rotq reads the blocks llama.cpp wrote to exactly PyPI gguf's values: Q4_0, Q2_K, Q2_K_S, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M, Q6_K, on a 16-layer model whose rows
are whole blocks of 256 (the per-layer rules: more bits for attn_v and ffn_down in chosen layers,
the output's Q6_K) and on one whose rows are not (llama.cpp's fallbacks: Q4_K -> Q5_0, Q6_K -> Q8_0, ...).
Then, on the rotated model, a mixed file:
- PyPI gguf dequantizes every tensor to exactly the values of the same quantization exported as
  float32 (`--w-grid MIX`), whatever its type; rotq's logits agree on both files;
- --tensor-type / --embedding-type / --output-type override the mixture;
- llama.cpp runs the file and its logits agree with rotq's (within llama.cpp's Q8 activations);
- the file records how it was made (rotq.quantization)."""
import ctypes, os, subprocess, sys, tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import random_models  # noqa: E402

ROTQ = os.environ.get("ROTQ", "build/rotq")
failures, checked = [], 0

try:
    import gguf
except ImportError as e:
    print(f"skip: the gguf package is missing ({e})")
    sys.exit(77)
try:
    import llama_cpp
except ImportError as e:
    llama_cpp = None
    print(f"note: llama_cpp is missing ({e}): the mixtures are not compared with llama.cpp's quantizer")


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


def types_of(path):
    return {x.name: x.tensor_type.name for x in gguf.GGUFReader(path).tensors}


MIXES = ["Q4_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K"]


def llamacpp_types(f32, mix, out):
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + mix)
    p.nthread = 2
    rc = llama_cpp.llama_model_quantize(f32.encode(), out.encode(), ctypes.byref(p))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize {mix}: {rc}")
    return types_of(out)


def mixture_types(tmp):
    for dim, hidden, layers in ((256, 512, 16), (64, 96, 8)):
        folder = os.path.join(tmp, f"l2c-{dim}-{layers}")
        os.mkdir(folder)
        model, _ = random_models.make_llama2c(folder, dim=dim, hidden=hidden, layers=layers, heads=4, kv_heads=1)
        f32 = os.path.join(folder, "f32.gguf")
        rotq("convert", model, f32, "--dtype", "f32")
        for mix in MIXES:
            llama_file = os.path.join(folder, "llama.gguf")
            want = llamacpp_types(f32, mix, llama_file)
            # real blocks, as llama.cpp's quantizer writes them: rotq reads them as PyPI gguf does
            back = os.path.join(folder, "back.gguf")
            rotq("convert", llama_file, back, "--dtype", "f32", "--force")
            ref = {x.name: x for x in gguf.GGUFReader(back).tensors}
            worst = 0.0
            for x in gguf.GGUFReader(llama_file).tensors:
                a = gguf.quants.dequantize(x.data, x.tensor_type)
                worst = max(worst, float(np.abs(a - np.array(ref[x.name].data, dtype=np.float32).reshape(a.shape)).max()))
            check(worst == 0.0, f"dim {dim}, {mix}: rotq reads llama.cpp's blocks ({', '.join(sorted(set(want.values())))}) "
                  f"to exactly gguf's values (max |diff| {worst:g})")
            got_path = os.path.join(folder, "rotq.gguf")
            rotq("quantize", f32, got_path, "--format", "gguf:" + mix, "--quiet", "--force", "--dtype", "f32")
            got = types_of(got_path)
            diff = sorted(f"{k}: llama.cpp {want.get(k)}, rotq {got.get(k)}" for k in set(want) | set(got) if want.get(k) != got.get(k))
            kinds = sorted(set(want.values()))
            check(not diff, f"dim {dim}, {layers} layers, {mix}: all {len(want)} tensor types as llama.cpp's quantizer chooses "
                  f"them ({', '.join(kinds)}){'; ' + '; '.join(diff[:4]) if diff else ''}")


def mixed_file(tmp):
    folder = os.path.join(tmp, "l2c-mixed")
    os.mkdir(folder)
    model, text = random_models.make_llama2c(folder, dim=256, hidden=512, layers=8, heads=4, kv_heads=1)
    ids = list(range(3, 60))
    for meth in ([], ["--w-quant", "gptq", "--calib", text, "--nsamples", "4", "--calib-ctx", "64"]):
        name = "GPTQ" if meth else "RTN"
        blocks, floats = os.path.join(tmp, "q.gguf"), os.path.join(tmp, "f.gguf")
        extra = ["--tensor-type", r"blk\.[0-3]\.ffn_up\.weight=q5_k", "--tensor-type", r"attn_q\.=q8_0", "--embedding-type", "q4_k"]
        rotq("quantize", model, blocks, "--format", "gguf:Q3_K_M", "--rotate", "--quiet", "--force", *extra, *meth)
        rotq("quantize", model, floats, "--w-grid", "Q3_K_M", "--rotate", "--r3", "off", "--r4", "off", "--quiet", "--force",
             "--to", "gguf", *extra, *meth)
        r, ref = gguf.GGUFReader(blocks), {x.name: x for x in gguf.GGUFReader(floats).tensors}
        t = {x.name: x.tensor_type.name for x in r.tensors}
        check(all(t[f"blk.{i}.ffn_up.weight"] == ("Q5_K" if i < 4 else "Q3_K") for i in range(8)) and
              all(t[f"blk.{i}.attn_q.weight"] == "Q8_0" for i in range(8)) and t["token_embd.weight"] == "Q4_K" and
              t["output.weight"] == "Q6_K" and t["blk.0.attn_v.weight"] == "Q5_K" and t["blk.5.attn_v.weight"] == "Q4_K" and
              t["blk.3.attn_output.weight"] == "Q4_K" and t["blk.3.ffn_gate.weight"] == "Q3_K",
              f"{name}: rules, embedding type and the Q3_K_M mixture give {sorted(set(t.values()))} as asked")
        worst = 0.0
        for x in r.tensors:
            got = gguf.quants.dequantize(x.data, x.tensor_type)
            want = np.array(ref[x.name].data, dtype=np.float32).reshape(got.shape)
            worst = max(worst, float(np.abs(got - want).max()))
        check(worst == 0.0, f"{name}: gguf dequantizes the mixed file to exactly the --w-grid float export (max |diff| {worst:g})")
        rec = r.fields.get("rotq.quantization")
        rec = bytes(rec.parts[rec.data[0]]).decode() if rec else ""
        check("Q3_K_M" in rec and name in rec and "q5_k" in rec, f"{name}: rotq.quantization records the settings: {rec[:120]}")
        la, lb = [np.fromfile(p, dtype="<f4") for p in (logit_file(blocks, ids, tmp, "a"), logit_file(floats, ids, tmp, "b"))]
        check(np.array_equal(la, lb), f"{name}: rotq's logits on the mixed file equal those on the float export")
        if llama_cpp is not None and not meth:
            from oracle_nn_llamacpp import llama_logits, load_llama
            lq = llama_logits(load_llama(blocks, 128), ids)
            got = la.reshape(len(ids), -1)
            err, scale = float(np.abs(got - lq).max()), float(np.abs(lq).max())
            check(err <= 0.05 * scale, f"{name}: llama.cpp runs the mixed rotated file: max|dlogit| {err:.3g} against rotq "
                  f"(max|logit| {scale:.3g}; llama.cpp multiplies by Q8 activations)")


def logit_file(model, ids, tmp, tag):
    out = os.path.join(tmp, tag + ".f32")
    rotq("ppl", model, "--ids", ",".join(map(str, ids)), "--dump-logits", out, "--force", "--threads", "2")
    return out


with tempfile.TemporaryDirectory() as tmp:
    if llama_cpp is not None:
        mixture_types(tmp)
    mixed_file(tmp)

for f in failures:
    print("FAIL", f)
print(f"{checked - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
