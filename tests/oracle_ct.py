"""compressed-tensors export (rotq quantize --format compressed-tensors:SCHEME) against the format's
definition, on small random checkpoints made here (and tinystories-260k from ../shared when present):

  * the folder decodes, in numpy by compressed-tensors' rules (pack-quantized: element i of a row at bit
    i*b of its int32 words, code + 2^(b-1); int-quantized: int8 codes; weight = code * scale), to exactly
    the weights rotq's own fake-quantized export of the same quantization holds — RTN and GPTQ, groups
    and per channel, 4 and 8 bits, float32 and bfloat16 models;
  * quantization_config says what the file holds (format, bits, strategy, group, dynamic per-token
    activations, lm_head ignored) and the tensors have the shapes and dtypes vLLM expects;
  * rotq reads the folder back: weight-only schemes give the float export's logits; a file with
    activations makes rotq's sessions quantize them as the runtime would;
  * refusals: groups that do not divide, asymmetric weights, KV-cache quantization, online rotations.
With ROTQ_TRANSFORMERS_PYTHON naming a Python with torch, transformers and compressed-tensors, transformers
loads every folder (no missing or unexpected tensors) and its logits are compared with rotq's on the
same file (else skipped, said on stderr)."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import random_models as rm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("ROTQ_BUILD", os.path.join(ROOT, "build"))
ROTQ = os.environ.get("ROTQ_BIN", os.path.join(BUILD, "rotq"))
SHARED = os.environ.get("ROTQ_SHARED", os.path.join(ROOT, "..", "shared"))
IDS = [1, 17, 42, 99, 3, 64, 5, 120, 77, 8, 33, 101, 2, 56, 90, 11]
failures = []


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        failures.append(msg)


def run(args, ok=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if ok and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed: {r.stderr.strip()}")
    return r


def bf16_to_f32(a):
    return (a.astype(np.uint32) << 16).view(np.float32) if a.dtype == np.uint16 else a


def load_tensors(folder):
    """safetensors → numpy, bfloat16 as float32 (safetensors.numpy cannot hold bf16: read raw)."""
    path = os.path.join(folder, "model.safetensors")
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        head = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for k, v in head.items():
            if k == "__metadata__":
                continue
            f.seek(base + v["data_offsets"][0])
            raw = f.read(v["data_offsets"][1] - v["data_offsets"][0])
            dt = {"F32": np.float32, "BF16": np.uint16, "F16": np.float16, "I32": np.int32, "I64": np.int64, "I8": np.int8}[v["dtype"]]
            a = np.frombuffer(raw, dt).reshape(v["shape"])
            out[k] = (bf16_to_f32(a), v["dtype"])
    return out


def decode(folder):
    """compressed-tensors' decompression written out: {module.weight: float64 weights} and the config."""
    cfg = json.load(open(os.path.join(folder, "config.json")))
    qc = cfg["quantization_config"]
    grp = next(iter(qc["config_groups"].values()))
    bits = grp["weights"]["num_bits"]
    T = load_tensors(folder)
    W = {}
    for name, (a, dt) in T.items():
        if name.endswith(".weight_packed"):
            base = name[:-len("_packed")]
            rows, cols = (int(x) for x in T[base + "_shape"][0])
            words = a.view(np.uint32).astype(np.uint64)
            bitpos = np.arange(cols) * bits
            w_i, off = bitpos // 32, bitpos % 32
            v = (words[:, w_i] >> off.astype(np.uint64))
            spill = off + bits > 32
            v[:, spill] |= words[:, w_i[spill] + 1] << (32 - off[spill]).astype(np.uint64)
            q = (v & ((1 << bits) - 1)).astype(np.int64) - (1 << (bits - 1))
        elif name.endswith(".weight") and dt == "I8":
            base, q = name, a.astype(np.int64)
        else:
            continue
        s, sdt = T[base + "_scale"]
        g = q.shape[1] // s.shape[1]
        W[base] = (q * np.repeat(s.astype(np.float64), g, axis=1), sdt)
    return cfg, T, W


def logits(model, tmp, tag, extra=()):
    out = os.path.join(tmp, tag + ".f32")
    if os.path.exists(out):
        os.remove(out)
    run([ROTQ, "ppl", model, "--ids", ",".join(map(str, IDS)), "--dump-logits", out, *extra])
    return np.fromfile(out, np.float32).reshape(len(IDS), -1)


CASES = [  # (label, fixture, scheme, extra quantize options)
    ("w4a16 groups of 32, RTN", "llama", "w4a16", ["--w-group", "32"]),
    ("w4a16 per channel, RTN, qwen2 (biases)", "qwen2", "w4a16", ["--w-group", "-1"]),
    ("w8a16 groups of 32, phi3 (fused qkv, gate_up)", "phi3", "w8a16", ["--w-group", "32"]),
    ("w4a16 groups of 32, GPTQ", "llama-tok", "w4a16", ["--w-group", "32", "--w-quant", "gptq", "--nsamples", "4",
                                                         "--calib-ctx", "64"]),
    ("w8a8, RTN", "llama", "w8a8", []),
    ("w4a8, GPTQ", "llama-tok", "w4a8", ["--w-quant", "gptq", "--nsamples", "4", "--calib-ctx", "64"]),
    ("w4a4, RTN", "llama", "w4a4", []),
    ("w4a16 groups of 32, bfloat16 model", "llama-bf16", "w4a16", ["--w-group", "32"]),
]


def make_fixtures(tmp):
    fx = {a: rm.make(a, os.path.join(tmp, a), seed=5) for a in ("llama", "qwen2", "phi3")}
    tok = rm.make("llama", os.path.join(tmp, "llama-tok"), seed=6, dims=dict(vocab=272))
    rm.byte_level_tokenizer(tok, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    fx["llama-tok"] = tok
    run([ROTQ, "convert", fx["llama"], os.path.join(tmp, "llama-bf16"), "--dtype", "bf16"])
    fx["llama-bf16"] = os.path.join(tmp, "llama-bf16")
    calib = os.path.join(tmp, "calib.txt")
    with open(calib, "w") as f:
        f.write("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
                "want of a wife. However little known the feelings or views of such a man may be. " * 20)
    ts = os.path.join(SHARED, "models", "tinystories-260k", "model.bin")
    if os.path.exists(ts):
        run([ROTQ, "convert", ts, os.path.join(tmp, "tinystories"), "--to", "hf"])
        fx["tinystories"] = os.path.join(tmp, "tinystories")
        CASES.append(("w4a16 per channel, GPTQ, tinystories-260k (real)", "tinystories", "w4a16",
                      ["--w-group", "-1", "--w-quant", "gptq", "--nsamples", "4", "--calib-ctx", "64"]))
    else:
        print(f"skip tinystories: {ts} not found", file=sys.stderr)
    return fx, calib


def test_case(label, src, scheme, extra, calib, tmp):
    ct, fl = os.path.join(tmp, "ct-" + label.replace(" ", "_").replace(",", "")), os.path.join(tmp, "fl-" + label.replace(" ", "_").replace(",", ""))
    common = ["--rotate", "--r3", "off", "--r4", "off", "--seed", "3"] + extra + (["--calib", calib] if "gptq" in extra else [])
    run([ROTQ, "quantize", src, ct, "--format", f"compressed-tensors:{scheme}", *common])
    # the same quantization written as fake-quantized floats: its weights are what the codes must decode to
    wb, ab = int(scheme[1]), int(scheme[3:])
    acts = ["--a-bits", str(ab), "--a-range", "half", "--a-clip", "1"] if ab < 16 else []
    dt = "bf16" if "bf16" in src else "f32"
    # (the float export chooses its codes with scales rounded as the file stores them: --w-scale-store)
    run([ROTQ, "quantize", src, fl, "--w-bits", str(wb), *([] if "--w-group" in extra else ["--w-group", "128" if ab == 16 else "-1"]),
         *common, *acts, "--dtype", dt, "--w-scale-store", dt])
    cfg, T, W = decode(ct)
    F = load_file(os.path.join(fl, "model.safetensors")) if dt == "f32" else {k: v for k, (v, _) in load_tensors(fl).items()}
    worst, n = 0.0, 0
    for base, (w, sdt) in W.items():
        ref = F[base].astype(np.float64)
        got = w.astype(np.float32)
        if sdt == "BF16":  # compressed-tensors multiplies in bfloat16: the product rounded to it
            x = w.astype(np.float32).view(np.uint32)
            got = ((x + 0x7FFF + ((x >> 16) & 1)) & 0xFFFF0000).view(np.float32)
        worst = max(worst, float(np.abs(got.astype(np.float64) - ref).max()))
        n += 1
    check(n > 0 and worst == 0.0, f"{label}: {n} linears decode (numpy, compressed-tensors' rules) to the float export's "
                                  f"weights exactly (max |diff| {worst:g})")
    qc = cfg["quantization_config"]
    g = next(iter(qc["config_groups"].values()))
    fmt = "pack-quantized" if ab == 16 else "int-quantized"
    group = int(extra[extra.index("--w-group") + 1]) if "--w-group" in extra else (128 if ab == 16 else -1)
    ok = (qc["quant_method"] == "compressed-tensors" and qc["format"] == fmt == g["format"] and g["weights"]["num_bits"] == wb
          and g["weights"]["symmetric"] and g["weights"]["strategy"] == ("group" if group > 0 else "channel")
          and (g["weights"]["group_size"] == (group if group > 0 else None)) and "lm_head" in qc["ignore"]
          and ((g["input_activations"] is None) if ab == 16 else (g["input_activations"]["num_bits"] == ab and
                                                                  g["input_activations"]["strategy"] == "token" and
                                                                  g["input_activations"]["dynamic"])))
    check(ok, f"{label}: quantization_config says {fmt}, W{wb} {'group ' + str(group) if group > 0 else 'channel'}"
              f"{', A' + str(ab) + ' dynamic per token' if ab < 16 else ''}, lm_head ignored")
    sdt_want = "BF16" if dt == "bf16" else "F32"
    shapes_ok = all(T[b + "_scale"][1] == sdt_want for b in W) and all(
        (T[b + "_packed"][1] == "I32" and T[b + "_shape"][1] == "I64") if ab == 16 else T[b][1] == "I8" for b in W)
    check(shapes_ok, f"{label}: codes as {'int32 words' if ab == 16 else 'int8'}, scales {sdt_want}")
    lc, lf = logits(ct, tmp, "ct"), logits(fl, tmp, "fl")
    lcf = logits(ct, tmp, "ctf", ["--float-activations"])
    if ab == 16 and dt == "f32":
        d = float(np.abs(lc - lf).max())
        check(d == 0.0, f"{label}: rotq reading the folder back gives the float export's logits (max |diff| {d:g})")
    elif ab == 16:  # the float export holds the products rounded to bfloat16; the folder read back, the exact ones
        d = float(np.abs(lc - lf).max() / np.abs(lf).max())
        check(d < 2e-2, f"{label}: rotq reading the folder back (exact q*scale) is the bfloat16 float export's function "
                        f"to its rounding ({d:.1e})")
    else:
        d = float(np.abs(lc - lcf).max() / np.abs(lcf).max())
        check(d > 1e-4 and np.abs(lcf - lf).max() == 0.0,
              f"{label}: read back, the weights give the float export's logits and rotq applies the file's A{ab} (logits "
              f"move {d:.1e} with it)")
    return ct, lc, lcf


TF_SCRIPT = r"""
import json, sys, numpy as np, torch
from transformers import AutoModelForCausalLM
folder, ids, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
m, info = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
bad = {k: [str(x) for x in v][:5] for k, v in info.items() if v}
with torch.no_grad():
    lq = m(torch.tensor([ids])).logits[0].double().numpy()
    for mod in m.modules():
        mod.quantization_enabled = False
    lf = m(torch.tensor([ids])).logits[0].double().numpy()
np.save(out, np.stack([lq, lf]))
print(json.dumps(bad))
"""


def test_transformers(folders, tmp):
    py = os.environ.get("ROTQ_TRANSFORMERS_PYTHON")
    if not py:
        print("skip transformers: set ROTQ_TRANSFORMERS_PYTHON to a Python with torch, transformers and compressed-tensors",
              file=sys.stderr)
        return
    script = os.path.join(tmp, "tf.py")
    with open(script, "w") as f:
        f.write(TF_SCRIPT)
    for label, (folder, lr, lrf) in folders.items():
        out = os.path.join(tmp, "tf.npy")
        r = run([py, script, folder, json.dumps(IDS), out])
        bad = json.loads(r.stdout.strip().splitlines()[-1])
        lq, lf = np.load(out)
        check(not bad, f"transformers + compressed-tensors load {label} with every tensor in place {bad or ''}")
        d = float(np.abs(lrf - lf).max() / np.abs(lf).max())
        check(d < 1e-5, f"transformers on {label}: logits equal rotq's on the same file, activations float on both "
                        f"(max |diff| / max|logit| {d:.1e})")
        if "a16" in label:
            continue
        # with the runtime's activation quantization on both sides: a code flips where a value sits within
        # float rounding of a step boundary (each linear's quantizer is checked alone in oracle_qwen2vl/test_quant_act)
        dq = float(np.abs(lr - lq).max() / np.abs(lq).max())
        agree = float((lr.argmax(-1) == lq.argmax(-1)).mean())
        bound = 0.75 if "a4," in label else 1.0
        check(agree >= bound and (dq < 1e-2 or "a4," in label),
              f"transformers on {label} with its dynamic activation quantization: argmax agrees at {agree:.0%} of "
              f"positions, max |dlogit| / max|logit| {dq:.1e} (activation rounding flips)")


def test_convert_back(folder, lr, tmp):
    out = os.path.join(tmp, "back-to-float")
    run([ROTQ, "convert", folder, out])
    cfg = json.load(open(os.path.join(out, "config.json")))
    lb = logits(out, tmp, "back")
    check("quantization_config" not in cfg and np.abs(lb - lr).max() == 0.0,
          "rotq convert of a compressed-tensors folder writes a float folder (no quantization_config) with the same logits")


def test_refusals(fx, tmp):
    r = run([ROTQ, "quantize", fx["llama"], os.path.join(tmp, "x1"), "--format", "compressed-tensors:w4a16"], ok=False)
    check(r.returncode != 0 and "groups of 128" in r.stderr and "--w-group" in r.stderr,
          f"groups that do not divide an input width are refused: {r.stderr.strip()[-160:]}")
    r = run([ROTQ, "quantize", fx["llama"], os.path.join(tmp, "x2"), "--format", "compressed-tensors:w4a16", "--w-asym"], ok=False)
    check(r.returncode != 0 and "symmetric" in r.stderr, f"asymmetric weights are refused: {r.stderr.strip()}")
    r = run([ROTQ, "quantize", fx["llama"], os.path.join(tmp, "x3"), "--format", "compressed-tensors:w8a8", "--kv-bits", "8"], ok=False)
    check(r.returncode != 0 and "KV" in r.stderr, f"KV-cache quantization is refused: {r.stderr.strip()}")
    rot = os.path.join(tmp, "with-r4")
    run([ROTQ, "rotate", fx["llama"], rot])
    r = run([ROTQ, "quantize", rot, os.path.join(tmp, "x4"), "--format", "compressed-tensors:w8a8"], ok=False)
    check(r.returncode != 0 and "online rotations" in r.stderr and not os.path.exists(os.path.join(tmp, "x4")),
          f"a model recording online R3/R4 is refused: {r.stderr.strip()[-160:]}")


def main():
    if not os.access(ROTQ, os.X_OK):
        print(f"skip: build {ROTQ} first", file=sys.stderr)
        return 77
    with tempfile.TemporaryDirectory(prefix="rotq-ct-") as tmp:
        fx, calib = make_fixtures(tmp)
        folders = {}
        for label, src, scheme, extra in CASES:
            folders[label] = test_case(label, fx[src], scheme, extra, calib, tmp)
        first = next(iter(folders.values()))
        test_convert_back(first[0], first[1], tmp)
        test_refusals(fx, tmp)
        test_transformers(folders, tmp)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all compressed-tensors checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
