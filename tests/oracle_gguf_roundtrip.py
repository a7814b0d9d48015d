#!/usr/bin/env python3
"""GGUF round trips through rotq, checked with the PyPI gguf package.

x.gguf (random llama models written here with gguf.GGUFWriter, F32/F16/BF16, tied and untied;
and SmolLM2 when models/ has it) → `rotq convert x out_dir --to hf` → `rotq convert out_dir
y.gguf --to gguf`: y must hold the same tensors as x (names, shapes, types, bytes; quantized
ones as their exact F32 dequantization) and the same llama.cpp hyper-parameter keys.
Direct GGUF → GGUF conversion must also carry every tokenizer.* key, and --dtype f16/bf16 must
round each value as numpy (f16) and the gguf package (bf16) do, keeping 1-D tensors in F32.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

try:
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf import GGUFValueType as V
    from gguf.quants import dequantize, quantize
except ImportError as e:
    print(f"skip: the gguf package is missing ({e})")
    sys.exit(77)

ROTQ = os.environ.get("ROTQ", os.path.join(os.path.dirname(__file__), "..", "build", "rotq"))
MODELS = os.environ.get("ROTQ_MODELS", os.path.join(os.path.dirname(__file__), "..", "models"))
SMOL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
HP_KEYS = ["context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count",
           "attention.head_count_kv", "attention.layer_norm_rms_epsilon", "rope.freq_base",
           "rope.dimension_count", "vocab_size"]
FLOATS = (T.F32, T.F16, T.BF16)

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL", msg)
    return cond


def run(*args):
    r = subprocess.run([ROTQ, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"rotq {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def field_value(f):
    if f.types[0] == V.ARRAY:
        if f.types[1] == V.STRING:
            return [bytes(f.parts[i]) for i in f.data]
        return [f.parts[i].tolist() for i in f.data]
    if f.types[0] == V.STRING:
        return bytes(f.parts[f.data[0]])
    return f.parts[f.data[0]].tolist()


def write_random_llama(path, tied, seed):
    rng = np.random.default_rng(seed)
    H, L, NH, NKV, FF, VOC = 64, 2, 4, 2, 128, 48
    HD = H // NH
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(f"random-llama-{'tied' if tied else 'untied'}")
    w.add_context_length(256)
    w.add_embedding_length(H)
    w.add_block_count(L)
    w.add_feed_forward_length(FF)
    w.add_head_count(NH)
    w.add_head_count_kv(NKV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(50000.0)
    w.add_rope_dimension_count(HD)
    w.add_vocab_size(VOC)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(VOC)])
    w.add_token_types([1] * VOC)
    w.add_token_merges(["t o", "to k"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template("{{ messages }}")

    def add(name, shape, dtype):
        x = rng.standard_normal(shape).astype(np.float32)
        if dtype == T.F32:
            w.add_tensor(name, x)
        elif dtype == T.F16:
            w.add_tensor(name, x.astype(np.float16))
        else:
            w.add_tensor(name, quantize(x, T.BF16), raw_dtype=T.BF16)

    add("token_embd.weight", (VOC, H), T.F16)
    for i in range(L):
        add(f"blk.{i}.attn_norm.weight", (H,), T.F32)
        add(f"blk.{i}.attn_q.weight", (NH * HD, H), T.F32)
        add(f"blk.{i}.attn_k.weight", (NKV * HD, H), T.BF16)
        add(f"blk.{i}.attn_v.weight", (NKV * HD, H), T.F16)
        add(f"blk.{i}.attn_output.weight", (H, NH * HD), T.BF16)
        add(f"blk.{i}.ffn_norm.weight", (H,), T.F32)
        add(f"blk.{i}.ffn_gate.weight", (FF, H), T.F32)
        add(f"blk.{i}.ffn_up.weight", (FF, H), T.F16)
        add(f"blk.{i}.ffn_down.weight", (H, FF), T.BF16)
    add("output_norm.weight", (H,), T.F32)
    if not tied:
        add("output.weight", (VOC, H), T.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def as_f32(t):
    return dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32, copy=False).ravel()


def compare_tensors(label, x, y, out_dtype=None):
    """y must hold x's tensors: same bytes for float tensors (out_dtype None), exact F32 for quantized."""
    tx = {t.name: t for t in x.tensors}
    ty = {t.name: t for t in y.tensors}
    check(set(tx) == set(ty), f"{label}: tensor names differ: only in x {sorted(set(tx) - set(ty))[:5]}, "
                              f"only in y {sorted(set(ty) - set(tx))[:5]}")
    bad = []
    for name, a in tx.items():
        b = ty.get(name)
        if b is None:
            continue
        if list(a.shape) != list(b.shape):
            bad.append(f"{name} shape {list(a.shape)} vs {list(b.shape)}")
            continue
        ref = as_f32(a)
        if out_dtype is None and a.tensor_type in FLOATS:
            ok = b.tensor_type == a.tensor_type and np.array_equal(
                np.asarray(a.data).view(np.uint8).ravel(), np.asarray(b.data).view(np.uint8).ravel())
        elif out_dtype is None:  # quantized in x: rotq writes its exact dequantization
            ok = b.tensor_type == T.F32 and np.array_equal(ref.view(np.uint32), as_f32(b).view(np.uint32))
        else:
            want_type = T.F32 if len(a.shape) == 1 else out_dtype
            if want_type == T.F32:
                want = ref.view(np.uint8)
            elif want_type == T.F16:
                want = ref.astype(np.float16).view(np.uint8)
            else:
                want = np.asarray(quantize(ref, T.BF16)).view(np.uint8).ravel()
            ok = b.tensor_type == want_type and np.array_equal(want, np.asarray(b.data).view(np.uint8).ravel())
        if not ok:
            bad.append(f"{name} ({a.tensor_type.name} -> {T(b.tensor_type).name})")
    check(not bad, f"{label}: {len(bad)} tensors differ: {bad[:5]}")
    if not bad:
        print(f"ok   {label}: {len(tx)} tensors identical")


def compare_hparams(label, x, y):
    arch = field_value(x.fields["general.architecture"]).decode()
    check(field_value(y.fields["general.architecture"]).decode() == arch, f"{label}: architecture changed")
    for k in HP_KEYS:
        key = f"{arch}.{k}"
        if key not in x.fields:
            continue
        fy = y.fields.get(key)
        if check(fy is not None, f"{label}: {key} missing"):
            check(field_value(fy) == field_value(x.fields[key]), f"{label}: {key} = {field_value(fy)}, "
                                                               f"input {field_value(x.fields[key])}")
    print(f"ok   {label}: hyper-parameter keys checked")


def compare_tokenizer(label, x, y):
    keys = [k for k in x.fields if k.startswith("tokenizer.")]
    for k in keys:
        fy = y.fields.get(k)
        if check(fy is not None, f"{label}: {k} missing"):
            check(fy.types == x.fields[k].types and field_value(fy) == field_value(x.fields[k]),
                  f"{label}: {k} differs")
    print(f"ok   {label}: {len(keys)} tokenizer keys checked")


def round_trip(label, src, tmp):
    hf = os.path.join(tmp, f"{label}-hf")
    y = os.path.join(tmp, f"{label}-back.gguf")
    z = os.path.join(tmp, f"{label}-direct.gguf")
    run("convert", src, hf, "--to", "hf")
    run("convert", hf, y, "--to", "gguf")
    run("convert", src, z)
    x = gguf.GGUFReader(src)
    gy, gz = gguf.GGUFReader(y), gguf.GGUFReader(z)
    compare_tensors(f"{label} gguf->hf->gguf", x, gy)
    compare_hparams(f"{label} gguf->hf->gguf", x, gy)
    compare_tensors(f"{label} gguf->gguf", x, gz)
    compare_hparams(f"{label} gguf->gguf", x, gz)
    compare_tokenizer(f"{label} gguf->gguf", x, gz)
    check(field_value(gz.fields["general.name"]) == field_value(x.fields["general.name"]), f"{label}: general.name changed")
    check(os.path.getsize(y) % 32 == 0, f"{label}: output size not a multiple of the alignment")
    leftovers = [f for f in os.listdir(tmp) if ".tmp-" in f]
    check(not leftovers, f"{label}: temporary files left: {leftovers}")
    shutil.rmtree(hf)
    for p in (y, z):
        os.remove(p)


def main():
    if not os.access(ROTQ, os.X_OK):
        print(f"FAIL: rotq binary {ROTQ} not found")
        return 1
    tmp = tempfile.mkdtemp(prefix="rotq-gguf-rt-")
    try:
        for tied in (False, True):
            src = os.path.join(tmp, f"random-{'tied' if tied else 'untied'}.gguf")
            write_random_llama(src, tied, seed=7 + tied)
            round_trip(f"random-{'tied' if tied else 'untied'}", src, tmp)
        src = os.path.join(tmp, "random-untied.gguf")
        x = gguf.GGUFReader(src)
        for name, qt in (("f16", T.F16), ("bf16", T.BF16), ("f32", T.F32)):
            out = os.path.join(tmp, f"as-{name}.gguf")
            run("convert", src, out, "--dtype", name)
            y = gguf.GGUFReader(out)
            compare_tensors(f"random --dtype {name}", x, y, out_dtype=qt)
            ft = field_value(y.fields["general.file_type"])[0] if "general.file_type" in y.fields else None
            check(ft == {"f32": 0, "f16": 1, "bf16": 32}[name], f"--dtype {name}: general.file_type {ft}")
            os.remove(out)

        if os.path.exists(SMOL):
            round_trip("smollm2", SMOL, tmp)
        else:
            print(f"skip SmolLM2 round trip: {SMOL} is absent (run scripts/fetch_model.sh)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("GGUF round trips exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
