#!/usr/bin/env python3
"""HF folder round trips through `rotq convert ... --to hf`, checked against the PyPI safetensors
package and numpy's own float16 conversion (bfloat16: a numpy round-to-nearest-even written here).

Inputs are small random Llama folders in F32, F16, BF16 (BF16 written by hand: numpy has no bf16)
and a sharded one with an index. Checks: bit-identical tensors HF->HF, dtype conversions equal to
the reference, sharded output consistent, tokenizer files carried byte-identical, inputs unchanged,
writing onto the input refused.
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

try:
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file
except ImportError:
    print("skip: the safetensors package is not installed (pip install safetensors)")
    sys.exit(77)

ROTQ = os.environ.get("ROTQ", "")
if not ROTQ or not os.access(ROTQ, os.X_OK):
    print("skip: $ROTQ does not name the rotq binary")
    sys.exit(77)

HIDDEN, LAYERS, HEADS, KV_HEADS, INTER, VOCAB = 64, 2, 4, 2, 128, 256
HEAD_DIM = HIDDEN // HEADS
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def llama_shapes():
    shapes = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (HIDDEN,)
        shapes[p + "self_attn.q_proj.weight"] = (HEADS * HEAD_DIM, HIDDEN)
        shapes[p + "self_attn.k_proj.weight"] = (KV_HEADS * HEAD_DIM, HIDDEN)
        shapes[p + "self_attn.v_proj.weight"] = (KV_HEADS * HEAD_DIM, HIDDEN)
        shapes[p + "self_attn.o_proj.weight"] = (HIDDEN, HEADS * HEAD_DIM)
        shapes[p + "post_attention_layernorm.weight"] = (HIDDEN,)
        shapes[p + "mlp.gate_proj.weight"] = (INTER, HIDDEN)
        shapes[p + "mlp.up_proj.weight"] = (INTER, HIDDEN)
        shapes[p + "mlp.down_proj.weight"] = (HIDDEN, INTER)
    shapes["model.norm.weight"] = (HIDDEN,)
    shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    return shapes


def hard_values():
    """float32 values on or near the rounding boundaries of f16 and bf16."""
    one = np.float32(1.0)
    vals = [
        1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-11 + 2.0**-20,   # f16 ties (to even / up) and just above
        1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 + 2.0**-8 + 2.0**-20,      # bf16 ties and just above
        65504.0, 65519.0, 65520.0, 1e6, -1e6, np.inf, -np.inf,       # f16 max, overflow boundary
        2.0**-24, 2.0**-25, 3 * 2.0**-26, 2.0**-26, 1e-8, 6.1e-5,    # f16 subnormals / underflow
        -0.0, 0.0, 3.4e38, -3.4e38, 1.17549435e-38, 1e-45,          # bf16 extremes
    ]
    return np.array(vals, dtype=np.float32) * one


def random_tensors(seed):
    rng = np.random.default_rng(seed)
    ts = {}
    for name, shape in llama_shapes().items():
        a = rng.standard_normal(shape).astype(np.float32) * np.float32(0.05)
        if name.endswith("layernorm.weight") or name == "model.norm.weight":
            a += np.float32(1.0)
        ts[name] = a
    hv = hard_values()
    ts["lm_head.weight"].reshape(-1)[: hv.size] = hv
    ts["model.layers.0.self_attn.q_proj.weight"].reshape(-1)[: hv.size] = -hv
    return ts


def bf16_bits(a32):
    """float32 -> bfloat16 bit patterns, round to nearest even (no NaN in these tensors)."""
    u = np.ascontiguousarray(a32, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return r.astype(np.uint16)


def write_raw_safetensors(path, entries):
    """entries: list of (name, dtype string, shape, raw bytes), written in this order."""
    header, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, dt, shape, raw in entries:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_raw_safetensors(path):
    """Independent reader: {name: (dtype, shape, raw bytes)} plus names in data order."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        out[name] = (e["dtype"], tuple(e["shape"]), data[base + b : base + en])
    order = sorted(out, key=lambda k: header[k]["data_offsets"][0])
    return out, order, header.get("__metadata__"), n


def read_folder(folder):
    """All tensors of an HF folder (single file or index) with the independent reader."""
    idx = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(os.path.join(folder, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    tensors, order = {}, []
    for fn in files:
        t, o, _, _ = read_raw_safetensors(os.path.join(folder, fn))
        tensors.update(t)
        order += o
    return tensors, order


CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
    "intermediate_size": INTER, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
    "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB, "max_position_embeddings": 128,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False, "hidden_act": "silu",
    "bos_token_id": 1, "eos_token_id": 2, "attention_bias": False, "torch_dtype": "float32",
}

CARRIED = {
    "tokenizer.json": json.dumps({"model": {"type": "BPE", "vocab": {"a": 0, "é": 1}}}, ensure_ascii=False).encode(),
    "tokenizer_config.json": b'{"bos_token": "<s>", "chat_template": "{{ x }}"}\n',
    "generation_config.json": b'{"do_sample": false}',
    "special_tokens_map.json": b'{"eos_token": "</s>"}',
    "tokenizer.model": bytes(range(256)) * 3,
    "merges.txt": b"#version: 0.2\na b\n",
}


def make_folder(path, tensors, dtype, shard_files=0):
    """dtype: 'F32', 'F16' (safetensors.numpy) or 'BF16' (hand-written). shard_files>1 adds an index."""
    os.makedirs(path)
    cfg = dict(CONFIG, torch_dtype={"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype])
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for name, data in CARRIED.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    names = list(tensors)
    groups = [names] if shard_files <= 1 else [names[i::shard_files] for i in range(shard_files)]
    files = ["model.safetensors"] if shard_files <= 1 else [
        f"model-{i + 1:05d}-of-{shard_files:05d}.safetensors" for i in range(shard_files)]
    for fn, group in zip(files, groups):
        if dtype == "BF16":
            write_raw_safetensors(os.path.join(path, fn),
                                  [(n, "BF16", tensors[n].shape, bf16_bits(tensors[n]).tobytes()) for n in group])
        else:
            np_dt = np.float32 if dtype == "F32" else np.float16
            save_file({n: tensors[n].astype(np_dt) for n in group}, os.path.join(path, fn), metadata={"format": "pt"})
    if shard_files > 1:
        wm = {n: fn for fn, group in zip(files, groups) for n in group}
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f)


def tree_hash(folder):
    h = {}
    for root, _, files in os.walk(folder):
        for fn in files:
            p = os.path.join(root, fn)
            with open(p, "rb") as f:
                h[os.path.relpath(p, folder)] = hashlib.sha256(f.read()).hexdigest()
    return h


def rotq(*args):
    r = subprocess.run([ROTQ, *args], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


def convert(src, dst, *extra):
    before = tree_hash(src)
    rc, out = rotq("convert", src, dst, "--to", "hf", *extra)
    check(rc == 0, f"convert {os.path.basename(src)} -> {os.path.basename(dst)} {extra}: rc {rc}: {out.strip()[:400]}")
    check(tree_hash(src) == before, f"input {src} changed during conversion")
    return rc == 0


def check_package_reads(folder, expect):
    """The PyPI safetensors package opens every output file; numeric dtypes compare exactly."""
    idx = os.path.join(folder, "model.safetensors.index.json")
    files = ["model.safetensors"] if not os.path.exists(idx) else sorted(set(json.load(open(idx))["weight_map"].values()))
    seen = set()
    for fn in files:
        with safe_open(os.path.join(folder, fn), "numpy") as f:
            check(f.metadata() == {"format": "pt"}, f"{fn}: __metadata__ is {f.metadata()}")
            for k in f.keys():
                seen.add(k)
                if expect[k][0] in ("F32", "F16"):
                    got = f.get_tensor(k)
                    ref = np.frombuffer(expect[k][2], dtype=np.float32 if expect[k][0] == "F32" else np.float16)
                    check(got.tobytes() == ref.tobytes() and got.shape == expect[k][1],
                          f"{folder}/{fn}: safetensors reads {k} differently")
    check(seen == set(expect), f"{folder}: tensor set differs: {sorted(seen ^ set(expect))[:5]}")


def check_config(folder, torch_dtype):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    check(cfg.get("torch_dtype") == torch_dtype, f"{folder}: torch_dtype {cfg.get('torch_dtype')} != {torch_dtype}")
    check(cfg.get("tie_word_embeddings") is False, f"{folder}: tie_word_embeddings {cfg.get('tie_word_embeddings')}")
    for k in ("architectures", "hidden_size", "num_hidden_layers", "num_key_value_heads", "vocab_size", "rope_theta"):
        check(cfg.get(k) == CONFIG[k], f"{folder}: config {k} = {cfg.get(k)!r}, input had {CONFIG[k]!r}")


def check_carried(folder):
    for name, data in CARRIED.items():
        p = os.path.join(folder, name)
        check(os.path.exists(p) and open(p, "rb").read() == data, f"{folder}: {name} not carried byte-identical")


def check_header_alignment(path):
    _, _, meta, n = read_raw_safetensors(path)
    check((8 + n) % 8 == 0, f"{path}: data block starts at {8 + n}, not 8-byte aligned")


def main():
    np.seterr(over="ignore")  # the hard values overflow float16 on purpose
    work = tempfile.mkdtemp(prefix="rotq-hf-oracle-")
    try:
        ts = random_tensors(1234)
        names = list(ts)
        inputs = {}
        for dt in ("F32", "F16", "BF16"):
            inputs[dt] = os.path.join(work, f"in-{dt.lower()}")
            make_folder(inputs[dt], ts, dt)
        inputs["sharded"] = os.path.join(work, "in-sharded")
        make_folder(inputs["sharded"], ts, "F32", shard_files=3)
        n_checked = 0

        # 1. HF -> HF keeps every tensor bit for bit, in the input's order.
        for key, src in inputs.items():
            dst = os.path.join(work, f"same-{key}")
            if not convert(src, dst):
                continue
            want, want_order = read_folder(src)
            got, got_order = read_folder(dst)
            check(set(got) == set(want), f"{key}: tensor names differ")
            for n in want:
                check(n in got and got[n] == want[n], f"{key}: tensor {n} not bit-identical")
                n_checked += 1
            if key != "sharded":
                check(got_order == want_order, f"{key}: tensor order changed")
            check(os.path.exists(os.path.join(dst, "model.safetensors")), f"{key}: single-file output expected")
            check_header_alignment(os.path.join(dst, "model.safetensors"))
            check_package_reads(dst, got)
            check_config(dst, {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "sharded": "float32"}[key])
            check_carried(dst)

        # 2. dtype conversions equal numpy's round-to-nearest-even.
        f32_ref = {n: np.ascontiguousarray(ts[n], dtype=np.float32) for n in names}
        f16_of_f32 = {n: f32_ref[n].astype(np.float16).tobytes() for n in names}
        bf16_of_f32 = {n: bf16_bits(f32_ref[n]).tobytes() for n in names}
        f16_in = {n: f32_ref[n].astype(np.float16) for n in names}
        bf16_in = {n: bf16_bits(f32_ref[n]) for n in names}
        cases = [
            ("F32", "f16", "F16", f16_of_f32),
            ("F32", "bf16", "BF16", bf16_of_f32),
            ("F16", "f32", "F32", {n: f16_in[n].astype(np.float32).tobytes() for n in names}),
            ("F16", "bf16", "BF16", {n: bf16_bits(f16_in[n].astype(np.float32)).tobytes() for n in names}),
            ("BF16", "f32", "F32", {n: (bf16_in[n].astype(np.uint32) << 16).view(np.float32).tobytes() for n in names}),
            ("BF16", "f16", "F16", {n: (bf16_in[n].astype(np.uint32) << 16).view(np.float32).astype(np.float16).tobytes()
                                    for n in names}),
            ("F32", "f32", "F32", {n: f32_ref[n].tobytes() for n in names}),
        ]
        for src_key, flag, st_dt, ref in cases:
            dst = os.path.join(work, f"conv-{src_key.lower()}-{flag}")
            if not convert(inputs[src_key], dst, "--dtype", flag):
                continue
            got, _ = read_folder(dst)
            bad = [n for n in names if got.get(n, (None,))[0] != st_dt or got[n][2] != ref[n]
                   or got[n][1] != tuple(ts[n].shape)]
            check(not bad, f"{src_key} -> {flag}: {len(bad)} tensors differ from the numpy reference, e.g. {bad[:3]}")
            n_checked += len(names)
            check_config(dst, {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[flag])
            check_package_reads(dst, got)

        # 3. Sharded output: several files, index consistent, every tensor where the index says.
        shard_limit = 40000
        dst = os.path.join(work, "sharded-out")
        if convert(inputs["F32"], dst, "--shard-size", str(shard_limit)):
            idx_path = os.path.join(dst, "model.safetensors.index.json")
            check(os.path.exists(idx_path), "sharded output: no index")
            check(not os.path.exists(os.path.join(dst, "model.safetensors")), "sharded output also has model.safetensors")
            if os.path.exists(idx_path):
                idx = json.load(open(idx_path))
                wm = idx["weight_map"]
                files = sorted(set(wm.values()))
                nf = len(files)
                check(nf > 1, f"sharded output has {nf} shard(s)")
                check(files == [f"model-{i + 1:05d}-of-{nf:05d}.safetensors" for i in range(nf)], f"shard names {files}")
                check(set(wm) == set(names), "index weight_map does not list exactly the model's tensors")
                total = 0
                for fn in files:
                    p = os.path.join(dst, fn)
                    t, _, _, _ = read_raw_safetensors(p)
                    check_header_alignment(p)
                    check(all(wm[n] == fn for n in t), f"{fn} holds tensors the index places elsewhere")
                    size = sum(len(v[2]) for v in t.values())
                    check(size <= shard_limit or len(t) == 1, f"{fn}: {size} bytes of tensors > limit {shard_limit}")
                    total += size
                    loaded = load_file(p)
                    for n, a in loaded.items():
                        check(a.tobytes() == f32_ref[n].tobytes(), f"{fn}: {n} differs after sharding")
                check(idx.get("metadata", {}).get("total_size") == total,
                      f"index total_size {idx.get('metadata')} != {total}")
                _, order = read_folder(dst)
                check(order == read_folder(inputs["F32"])[1], "sharded output does not keep the input's tensor order")
            check_carried(dst)
            # ... and rotq reads its own shards back bit for bit.
            back = os.path.join(work, "sharded-back")
            if convert(dst, back):
                got, _ = read_folder(back)
                check(all(got[n][2] == f32_ref[n].tobytes() for n in names), "sharded -> single not bit-identical")

        # 4. Refusals: onto the input, into the input, into a non-empty folder; nothing left behind.
        for key in ("F32", "sharded"):
            src = inputs[key]
            before = tree_hash(src)
            for target in (src, src + "/", os.path.join(src, "sub")):
                rc, out = rotq("convert", src, target, "--to", "hf")
                check(rc != 0, f"writing onto the input {target} was not refused")
                check(out.strip() != "", f"refusal of {target} printed no message")
            check(tree_hash(src) == before, f"{key}: input changed by a refused conversion")
        nonempty = os.path.join(work, "nonempty")
        os.makedirs(nonempty)
        open(os.path.join(nonempty, "keep.txt"), "w").write("x")
        rc, out = rotq("convert", inputs["F16"], nonempty, "--to", "hf")
        check(rc != 0 and "not empty" in out, f"non-empty output folder not refused: rc {rc} {out.strip()[:200]}")
        check(os.listdir(nonempty) == ["keep.txt"], "non-empty output folder was modified")
        empty = os.path.join(work, "empty")
        os.makedirs(empty)
        if convert(inputs["F16"], empty):
            check(os.path.exists(os.path.join(empty, "model.safetensors")), "empty output folder not filled")
        leftovers = [d for d in os.listdir(work) if ".tmp-" in d]
        check(not leftovers, f"temporary folders left behind: {leftovers}")

        print(f"checked {n_checked} tensors across {len(inputs)} inputs and {len(cases)} dtype conversions")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
