#!/usr/bin/env python3
"""Oracle for rotq's forward pass: independent numpy implementations, compared on logits.

1. Small random models written here as HF folders (config.json + model.safetensors, fixed seeds):
   llama (GQA, untied, llama3 RoPE scaling, f32), qwen2 (q/k/v biases, tied, linear RoPE scaling,
   bf16) and phi3 (fused qkv/gate_up, partial rotary, f16). The reference follows transformers'
   semantics (rotate-half RoPE on the first rotary_dim dims, float RMSNorm, SwiGLU), in float64.
   OPT (random_models.make_opt: LayerNorm weight and bias, biases everywhere, learned positions at
   row p + 2, q scaled by head_dim^-0.5 before the product, ReLU or GELU MLP), tied and untied,
   against transformers' OPTForCausalLM written out here in numpy; configs that rotq's OPT does not
   cover (post-norm, word_embed_proj_dim != hidden_size, an unknown activation) must be refused.
2. tinystories-260k (../shared): numpy of llama2.c's run.c on the raw checkpoint (interleaved RoPE
   pairs on the file's own Q/K rows, so the loader's Q/K permutation is checked too): logits,
   greedy generation through rotq's KV cache, and perplexity under every BOS policy and both
   protocols, the windows rebuilt here from the protocol's definition.
3. SmolLM2-135M Q4_1 GGUF (ROTQ_MODELS): llama.cpp semantics on the raw GGUF tensors read and
   dequantized by the gguf package (interleaved RoPE on llama.cpp's permuted Q/K rows).
Pass: max |Δlogit| <= 1e-4 · max(1, max |logit|). Exit 77 when nothing could run.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import random_models  # noqa: E402

ROTQ = os.environ.get("ROTQ", "rotq")
SHARED = os.environ.get("ROTQ_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
MODELS = os.environ.get("ROTQ_MODELS", os.path.join(os.path.dirname(__file__), "..", "models"))
REL_TOL = 1e-4
failures = []


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        failures.append(msg)


def run(args, **kw):
    r = subprocess.run([ROTQ] + args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("rotq %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr[-2000:]))
    return r.stdout


def rotq_logits(model, ids, tmp, vocab, extra=()):
    out = os.path.join(tmp, "logits.f32")
    run(["ppl", model, "--ids", ",".join(str(i) for i in ids), "--dump-logits", out, "--force", "--threads", "2"] + list(extra))
    return np.fromfile(out, dtype="<f4").reshape(len(ids), vocab)


def compare(name, got, ref):
    err = float(np.max(np.abs(got.astype(np.float64) - ref)))
    scale = max(1.0, float(np.max(np.abs(ref))))
    same_argmax = float(np.mean(np.argmax(got, -1) == np.argmax(ref, -1)))
    check(err <= REL_TOL * scale, "%s: max|dlogit| %.3g (max|logit| %.3g, rel %.2g), argmax agree %.3f"
          % (name, err, scale, err / scale, same_argmax))
    return err


# ---- transformers semantics (float64) -------------------------------------------------------------

def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def hf_inv_freq(cfg, rot):
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (np.arange(0, rot, 2, dtype=np.float64) / rot))
    sc = cfg.get("rope_scaling")
    if not sc:
        return inv
    kind = sc.get("rope_type", sc.get("type"))
    if kind == "linear":
        return inv / sc["factor"]
    assert kind == "llama3"
    factor, lo, hi = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"]
    old = sc["original_max_position_embeddings"]
    out = []
    for f in inv:
        wavelen = 2 * np.pi / f
        if wavelen < old / hi:
            out.append(f)
        elif wavelen > old / lo:
            out.append(f / factor)
        else:
            s = (old / wavelen - lo) / (hi - lo)
            out.append((1 - s) * f / factor + s * f)
    return np.array(out)


def rope_rotate_half(x, pos, inv):
    """x [T, H, hd]: rotate-half over the first 2*len(inv) dims of each head."""
    rot = 2 * len(inv)
    ang = pos[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :]
    xr, xp = x[..., :rot], x[..., rot:]
    half = rot // 2
    rotated = np.concatenate([-xr[..., half:], xr[..., :half]], -1)
    return np.concatenate([xr * cos + rotated * sin, xp], -1)


def rope_interleaved(x, pos, inv):
    """x [T, H, hd]: llama2.c / llama.cpp pairs (2i, 2i+1) rotated by pos * inv[i]."""
    ang = pos[:, None] * inv[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def attention(q, k, v, scale=None, window=0):
    """q [T, H, hd], k/v [T, KV, hd], causal (and, with window > 0, only the last `window` positions,
    as transformers' sliding-window mask q - k < window); returns [T, H*hd]."""
    T, H, hd = q.shape
    grp = H // k.shape[1]
    out = np.empty_like(q)
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    if window:
        mask |= np.tril(np.ones((T, T), dtype=bool), -window)
    for h in range(H):
        s = q[:, h, :] @ k[:, h // grp, :].T * (scale if scale else 1 / np.sqrt(hd))
        s[mask] = -np.inf
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        out[:, h, :] = s @ v[:, h // grp, :]
    return out.reshape(T, H * hd)


def silu(x):
    return x / (1.0 + np.exp(-x))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def decoder(ids, emb, layers, final_norm, lm_head, eps, rope, n_heads, n_kv, hd, off=0.0, embed_scale=1.0,
            scale=None, act=silu):
    """Generic pre-norm decoder; `layers` gives per-layer callables/weights in HF orientation. Optional
    per layer: q_norm/k_norm (per head, before RoPE), post_attn/post_mlp (sandwich norms), window and
    its own "rope"; off is the norms' offset ((1 + w) for Gemma)."""
    x = emb[np.asarray(ids)] * embed_scale
    pos = np.arange(len(ids), dtype=np.float64)
    for L in layers:
        h = rms_norm(x, L["attn_norm"] + off, eps)
        q = h @ L["wq"].T + L.get("bq", 0)
        k = h @ L["wk"].T + L.get("bk", 0)
        v = h @ L["wv"].T + L.get("bv", 0)
        T = len(ids)
        q, k = q.reshape(T, n_heads, hd), k.reshape(T, n_kv, hd)
        if "q_norm" in L:
            q, k = rms_norm(q, L["q_norm"] + off, eps), rms_norm(k, L["k_norm"] + off, eps)
        r = L.get("rope", rope)
        q, k = r(q, pos), r(k, pos)
        a = attention(q, k, v.reshape(T, n_kv, hd), scale, L.get("window", 0)) @ L["wo"].T
        x = x + (rms_norm(a, L["post_attn"] + off, eps) if "post_attn" in L else a)
        h = rms_norm(x, L["mlp_norm"] + off, eps)
        m = (act(h @ L["wgate"].T) * (h @ L["wup"].T)) @ L["wdown"].T
        x = x + (rms_norm(m, L["post_mlp"] + off, eps) if "post_mlp" in L else m)
    return rms_norm(x, final_norm + off, eps) @ lm_head.T


def hf_forward(cfg, W, ids):
    arch = cfg["architectures"][0]
    d, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim") or d // nh
    ff = cfg["intermediate_size"]
    rot = int(round(cfg.get("partial_rotary_factor", 1.0) * hd))
    inv = hf_inv_freq(cfg, rot)
    layers = []
    gemma = arch == "Gemma3ForCausalLM"
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        L = {"attn_norm": W[p + "input_layernorm.weight"], "mlp_norm": W[p + "post_attention_layernorm.weight"],
             "wo": W[p + "self_attn.o_proj.weight"], "wdown": W[p + "mlp.down_proj.weight"]}
        if p + "self_attn.q_norm.weight" in W:
            L["q_norm"], L["k_norm"] = W[p + "self_attn.q_norm.weight"], W[p + "self_attn.k_norm.weight"]
        if gemma:  # transformers' Gemma3DecoderLayer: sandwich norms; local layers by layer_types
            L["post_attn"], L["mlp_norm"] = W[p + "post_attention_layernorm.weight"], W[p + "pre_feedforward_layernorm.weight"]
            L["post_mlp"] = W[p + "post_feedforward_layernorm.weight"]
            if cfg["layer_types"][i] == "sliding_attention":
                L["window"] = cfg["sliding_window"]
                inv_l = hf_inv_freq({"rope_theta": cfg["rope_local_base_freq"]}, rot)
                L["rope"] = lambda x, pos, inv_l=inv_l: rope_rotate_half(x, pos, inv_l)
        if arch == "Phi3ForCausalLM":
            qkv = W[p + "self_attn.qkv_proj.weight"]
            L["wq"], L["wk"], L["wv"] = qkv[:nh * hd], qkv[nh * hd:(nh + nkv) * hd], qkv[(nh + nkv) * hd:]
            gu = W[p + "mlp.gate_up_proj.weight"]
            L["wgate"], L["wup"] = gu[:ff], gu[ff:]
        else:
            for r in "qkv":
                L["w" + r] = W[p + "self_attn.%s_proj.weight" % r]
                if p + "self_attn.%s_proj.bias" % r in W:
                    L["b" + r] = W[p + "self_attn.%s_proj.bias" % r]
            L["wgate"], L["wup"] = W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"]
        layers.append(L)
    lm = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    extra = {}
    if gemma:
        # transformers: sqrt(hidden) cast to the weights' dtype before the product
        es = np.float32(np.sqrt(d))
        if cfg.get("torch_dtype") == "bfloat16":
            es = from_bf16_bits(to_bf16_bits(np.array([es])))[0]
        extra = dict(off=1.0, embed_scale=float(es), scale=cfg["query_pre_attn_scalar"] ** -0.5, act=gelu_tanh)
    return decoder(ids, W["model.embed_tokens.weight"], layers, W["model.norm.weight"], lm, cfg["rms_norm_eps"],
                   lambda x, pos: rope_rotate_half(x, pos, inv), nh, nkv, hd, **extra)


# ---- random HF models --------------------------------------------------------------------------

def to_bf16_bits(a):
    """float32 → bfloat16 bits, round to nearest even (as torch)."""
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors, dtype):
    """Own writer (numpy has no bfloat16). Returns the tensors as stored, in float64."""
    header, blobs, stored, off = {}, [], {}, 0
    for name, a in tensors.items():
        if dtype == "F32":
            raw = a.astype("<f4")
            stored[name] = raw.astype(np.float64)
        elif dtype == "F16":
            raw = a.astype("<f2")
            stored[name] = raw.astype(np.float64)
        else:
            raw = to_bf16_bits(a)
            stored[name] = from_bf16_bits(raw).astype(np.float64)
        b = raw.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return stored


def random_model(folder, cfg, dtype, seed):
    rng = np.random.default_rng(seed)
    arch = cfg["architectures"][0]
    d, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim") or d // nh
    ff, V = cfg["intermediate_size"], cfg["vocab_size"]

    def lin(o, i):
        return rng.standard_normal((o, i)) / np.sqrt(i)

    gemma = arch == "Gemma3ForCausalLM"

    def norm(n=d):  # Gemma stores w of (1 + w): near 0
        return (0.0 if gemma else 1.0) + 0.2 * rng.standard_normal(n)

    T = {"model.embed_tokens.weight": rng.standard_normal((V, d)), "model.norm.weight": norm()}
    if not cfg.get("tie_word_embeddings", False):
        T["lm_head.weight"] = lin(V, d)
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        T[p + "input_layernorm.weight"] = norm()
        T[p + "post_attention_layernorm.weight"] = norm()
        if arch == "Phi3ForCausalLM":
            T[p + "self_attn.qkv_proj.weight"] = lin((nh + 2 * nkv) * hd, d)
            T[p + "mlp.gate_up_proj.weight"] = lin(2 * ff, d)
        else:
            T[p + "self_attn.q_proj.weight"] = lin(nh * hd, d)
            T[p + "self_attn.k_proj.weight"] = lin(nkv * hd, d)
            T[p + "self_attn.v_proj.weight"] = lin(nkv * hd, d)
            if arch == "Qwen2ForCausalLM":
                T[p + "self_attn.q_proj.bias"] = 0.5 * rng.standard_normal(nh * hd)
                T[p + "self_attn.k_proj.bias"] = 0.5 * rng.standard_normal(nkv * hd)
                T[p + "self_attn.v_proj.bias"] = 0.5 * rng.standard_normal(nkv * hd)
            T[p + "mlp.gate_proj.weight"] = lin(ff, d)
            T[p + "mlp.up_proj.weight"] = lin(ff, d)
        T[p + "self_attn.o_proj.weight"] = lin(d, nh * hd)
        T[p + "mlp.down_proj.weight"] = lin(d, ff)
        if arch in ("Qwen3ForCausalLM", "Gemma3ForCausalLM"):
            T[p + "self_attn.q_norm.weight"], T[p + "self_attn.k_norm.weight"] = norm(hd), norm(hd)
        if gemma:
            T[p + "pre_feedforward_layernorm.weight"] = norm()
            T[p + "post_feedforward_layernorm.weight"] = norm()
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return write_safetensors(os.path.join(folder, "model.safetensors"), T, dtype)


RANDOM_MODELS = [
    ("llama-gqa-llama3rope-f32", "F32", 1, {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 103,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 32}}),
    ("qwen2-bias-tied-linearrope-bf16", "BF16", 2, {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 48, "intermediate_size": 80,
        "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 2, "vocab_size": 97,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
        "rope_scaling": {"type": "linear", "factor": 2.0}}),
    ("phi3-fused-partialrope-f16", "F16", 3, {
        "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 64, "intermediate_size": 72,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 89,
        "max_position_embeddings": 256, "original_max_position_embeddings": 256, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": False, "partial_rotary_factor": 0.5, "rope_scaling": None}),
    ("qwen3-qknorm-tied-bf16", "BF16", 4, {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 48, "intermediate_size": 80,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 97,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
        "attention_bias": False, "use_sliding_window": False, "hidden_act": "silu"}),
    # Gemma 3: a window of 40 over 150 tokens, every 3rd layer global, query_pre_attn_scalar != head_dim,
    # linear RoPE scaling on the global layers only; bf16, so the embedding scale is bf16(sqrt(48))
    ("gemma3-sandwich-sliding-bf16", "BF16", 5, {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 48, "intermediate_size": 96,
        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32, "vocab_size": 101,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 4.0}, "sliding_window": 40, "sliding_window_pattern": 3,
        "layer_types": ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
        "query_pre_attn_scalar": 48, "hidden_activation": "gelu_pytorch_tanh", "final_logit_softcapping": None,
        "attn_logit_softcapping": None, "tie_word_embeddings": True, "torch_dtype": "bfloat16"}),
]


def test_random_models(tmp):
    for name, dtype, seed, cfg in RANDOM_MODELS:
        folder = os.path.join(tmp, name)
        W = random_model(folder, cfg, dtype, seed)
        ids = list(np.random.default_rng(100 + seed).integers(0, cfg["vocab_size"], 150))
        ref = hf_forward(cfg, W, ids)
        got = rotq_logits(folder, ids, tmp, cfg["vocab_size"])
        compare("%s (150 tokens)" % name, got, ref)


# ---- OPT (transformers' modeling_opt, float64) -----------------------------------------------------

def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def opt_act(name, x):
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "gelu":
        from math import erf
        return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))
    assert name == "gelu_new"
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def opt_forward(cfg, W, ids):
    """OPTForCausalLM.forward without padding: positions are cumsum(mask) - 1, looked up at + 2."""
    g = lambda n: W[n].astype(np.float64)
    d, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd, T = d // nh, len(ids)
    pos = np.arange(T) + 2
    x = g("model.decoder.embed_tokens.weight")[np.asarray(ids)] + g("model.decoder.embed_positions.weight")[pos]
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.decoder.layers.%d." % l
        h = layer_norm(x, g(p + "self_attn_layer_norm.weight"), g(p + "self_attn_layer_norm.bias"))
        lin = lambda a, n: a @ g(p + n + ".weight").T + g(p + n + ".bias")
        q = lin(h, "self_attn.q_proj") * hd ** -0.5
        k, v = lin(h, "self_attn.k_proj"), lin(h, "self_attn.v_proj")
        out = np.empty((T, d))
        for i in range(nh):
            sl = slice(i * hd, (i + 1) * hd)
            s = q[:, sl] @ k[:, sl].T
            s[mask] = -np.inf
            s = np.exp(s - s.max(-1, keepdims=True))
            out[:, sl] = (s / s.sum(-1, keepdims=True)) @ v[:, sl]
        x = x + lin(out, "self_attn.out_proj")
        h = layer_norm(x, g(p + "final_layer_norm.weight"), g(p + "final_layer_norm.bias"))
        x = x + lin(opt_act(cfg.get("activation_function", "relu"), lin(h, "fc1")), "fc2")
    x = layer_norm(x, g("model.decoder.final_layer_norm.weight"), g("model.decoder.final_layer_norm.bias"))
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.decoder.embed_tokens.weight"]
    return x @ head.astype(np.float64).T


def test_opt(tmp):
    from safetensors.numpy import load_file
    for name, seed, tied, act in [("opt-tied-relu", 21, True, "relu"), ("opt-untied-gelu", 22, False, "gelu"),
                                  ("opt-tied-gelu_new", 23, True, "gelu_new")]:
        folder = random_models.make_opt(os.path.join(tmp, name), seed=seed, tied=tied, activation=act)
        W = load_file(os.path.join(folder, "model.safetensors"))
        cfg = json.load(open(os.path.join(folder, "config.json")))
        ids = list(np.random.default_rng(seed).integers(0, cfg["vocab_size"], cfg["max_position_embeddings"]))
        compare("%s (%d tokens, every learned position)" % (name, len(ids)), rotq_logits(folder, ids, tmp, cfg["vocab_size"]),
                opt_forward(cfg, W, ids))
    # a rotated, LayerNorm-fused and then 4-bit quantized OPT: quantizing the centred writers (out_proj, fc2)
    # puts a small mean back into the stream, and the written checkpoint's LayerNorms take it out; rotq must
    # compute what the file means (LayerNorm), not the RMSNorm that equals it only on an exactly centred stream
    src = os.path.join(tmp, "opt-tied-relu")
    q = os.path.join(tmp, "opt-rotated-w4")
    subprocess.run([ROTQ, "quantize", src, q, "--rotate", "--r3", "off", "--r4", "off", "--w-bits", "4"], check=True,
                   capture_output=True)
    W = load_file(os.path.join(q, "model.safetensors"))
    cfg = json.load(open(os.path.join(q, "config.json")))
    ids = list(np.random.default_rng(5).integers(0, cfg["vocab_size"], 48))
    compare("opt rotated, LayerNorm fused, W4 RTN, read back (48 tokens; numpy runs the file's LayerNorms)",
            rotq_logits(q, ids, tmp, cfg["vocab_size"]), opt_forward(cfg, W, ids))
    # past the learned positions: refused, not wrapped around
    folder = os.path.join(tmp, "opt-tied-relu")
    r = subprocess.run([ROTQ, "ppl", folder, "--ids", ",".join(["5"] * 65), "--dump-logits", os.path.join(tmp, "x.f32")],
                       capture_output=True, text=True)
    check(r.returncode != 0 and "learned positions" in r.stderr, "OPT: 65 tokens past 64 learned positions refused (%s)"
          % r.stderr.strip()[-160:])
    # variants rotq's OPT description does not cover are refused, naming the file and the key
    for key, value, word in [("do_layer_norm_before", False, "do_layer_norm_before"),
                             ("word_embed_proj_dim", 48, "word_embed_proj_dim"),
                             ("activation_function", "silu", "activation_function")]:
        bad = random_models.make_opt(os.path.join(tmp, "opt-bad-" + key), seed=1)
        cfg = json.load(open(os.path.join(bad, "config.json")))
        cfg[key] = value
        json.dump(cfg, open(os.path.join(bad, "config.json"), "w"))
        r = subprocess.run([ROTQ, "info", bad], capture_output=True, text=True)
        check(r.returncode != 0 and word in r.stderr and "config.json" in r.stderr,
              "OPT with %s = %r refused: %s" % (key, value, r.stderr.strip()[-200:]))


# ---- llama2.c run.c semantics ---------------------------------------------------------------------

def llama2c_read(path):
    raw = open(path, "rb").read()
    dim, hidden, L, nh, nkv, vocab, seq = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // nh
    f = np.frombuffer(raw, dtype="<f4", offset=28).astype(np.float64)
    o = 0

    def take(*shape):
        nonlocal o
        n = int(np.prod(shape))
        a = f[o:o + n].reshape(shape)
        o += n
        return a

    w = {"emb": take(vocab, dim), "rms_att": take(L, dim), "wq": take(L, dim, dim), "wk": take(L, nkv * hs, dim),
         "wv": take(L, nkv * hs, dim), "wo": take(L, dim, dim), "rms_ffn": take(L, dim),
         "w1": take(L, hidden, dim), "w2": take(L, dim, hidden), "w3": take(L, hidden, dim), "rms_final": take(dim)}
    take(seq, hs // 2)
    take(seq, hs // 2)
    w["wcls"] = w["emb"] if shared else take(vocab, dim)
    assert o == len(f), "llama2.c file size mismatch"
    return w, dict(dim=dim, hidden=hidden, L=L, nh=nh, nkv=nkv, vocab=vocab, seq=seq, hs=hs)


def llama2c_forward(w, h, ids):
    # run.c: rmsnorm with eps 1e-5; RoPE frequency 1/10000^((i % head_size)/head_size) on pairs (i, i+1)
    hs = h["hs"]
    inv = 1.0 / (10000.0 ** (np.arange(0, hs, 2) / hs))
    layers = [{"attn_norm": w["rms_att"][l], "mlp_norm": w["rms_ffn"][l], "wq": w["wq"][l], "wk": w["wk"][l],
               "wv": w["wv"][l], "wo": w["wo"][l], "wgate": w["w1"][l], "wup": w["w3"][l], "wdown": w["w2"][l]}
              for l in range(h["L"])]
    return decoder(ids, w["emb"], layers, w["rms_final"], w["wcls"], 1e-5,
                   lambda x, pos: rope_interleaved(x, pos, inv), h["nh"], h["nkv"], hs)


def ppl_reference(logits_fn, text_ids, ctx, bos_id, protocol, bos, add_bos, max_windows):
    """Windows and scored rows straight from the protocol definitions (see rotq ppl --help)."""
    if protocol == "papers":
        if bos == "every":
            step = ctx - 1
            wins = [[bos_id] + text_ids[i * step:(i + 1) * step] for i in range(len(text_ids) // step)]
        else:
            stream = ([bos_id] if bos == "first" else []) + text_ids
            wins = [stream[i * ctx:(i + 1) * ctx] for i in range(len(stream) // ctx)]
        first = 0
    else:
        stream = ([bos_id] if add_bos else []) + text_ids
        wins = [stream[i * ctx:(i + 1) * ctx] for i in range(len(stream) // ctx)]
        if add_bos:
            wins = [[bos_id] + wnd[1:] for wnd in wins]
        first = ctx // 2
    wins = wins[:max_windows]
    nll, n = 0.0, 0
    for wnd in wins:
        lg = logits_fn(wnd)
        for s in range(first, ctx - 1):
            row = lg[s]
            m = row.max()
            nll += m + np.log(np.exp(row - m).sum()) - row[wnd[s + 1]]
            n += 1
    return float(np.exp(nll / n)), n


def test_tinystories(tmp):
    model = os.path.join(SHARED, "models", "tinystories-260k", "model.bin")
    if not os.path.exists(model):
        print("skip tinystories-260k: %s absent" % model)
        return False
    w, h = llama2c_read(model)
    rng = np.random.default_rng(7)
    ids = [1] + list(rng.integers(3, h["vocab"], 199))
    compare("tinystories-260k vs llama2.c run.c (200 tokens)", rotq_logits(model, ids, tmp, h["vocab"]),
            llama2c_forward(w, h, ids))

    # greedy generation through the KV cache against full recomputation here
    prompt = [1, 403, 407, 261, 378]  # BOS + "Once upon a time" pieces need not be exact: any ids do
    seq = list(prompt)
    for _ in range(40):
        seq.append(int(np.argmax(llama2c_forward(w, h, seq)[-1])))
    out = run(["generate", model, "--ids", ",".join(map(str, prompt)), "-n", "40", "--print-ids", "--ignore-eos",
               "--threads", "2"])
    got = [int(t) for t in out.strip().split(",")]
    check(got == seq[len(prompt):], "tinystories greedy 40 tokens through the KV cache match full recomputation"
          + ("" if got == seq[len(prompt):] else " (got %s, want %s)" % (got, seq[len(prompt):])))

    # perplexity bookkeeping: every BOS policy and both protocols, windows rebuilt here
    text = os.path.join(SHARED, "data", "tinystories", "valid-excerpt.txt")
    tj = json.loads(run(["tokenize", model, "--text", text, "--json"]))
    text_ids = tj["ids"]
    cases = [("papers", "none"), ("papers", "first"), ("papers", "every"), ("llama.cpp", "every"),
             ("llama.cpp", "none")]
    for protocol, bos in cases:
        ctx, mw = 128, 3
        res = json.loads(run(["ppl", model, "--text", text, "--ctx", str(ctx), "--protocol", protocol, "--bos", bos,
                              "--max-windows", str(mw), "--json", "--quiet", "--threads", "2"]))
        ref, n = ppl_reference(lambda wnd: llama2c_forward(w, h, wnd), text_ids, ctx, 1, protocol, bos,
                               bos != "none", mw)
        rel = abs(res["perplexity"] - ref) / ref
        check(rel < 1e-5 and res["scored_tokens"] == n,
              "tinystories ppl %s/bos=%s: rotq %.6f (%d scored) vs numpy %.6f (%d scored), rel %.1e"
              % (protocol, bos, res["perplexity"], res["scored_tokens"], ref, n, rel))
    return True


# ---- SmolLM2 GGUF, llama.cpp semantics on the raw file ------------------------------------------

def test_smollm2(tmp):
    path = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        print("skip SmolLM2: %s absent (scripts/fetch_model.sh fetches it)" % path)
        return False
    try:
        import gguf
        from gguf.quants import dequantize
    except ImportError:
        print("skip SmolLM2: python package gguf absent")
        return False
    r = gguf.GGUFReader(path)

    def meta(key):
        f = r.fields[key]
        return f.parts[f.data[0]].tolist()[0]

    d = meta("llama.embedding_length")
    nh = meta("llama.attention.head_count")
    nkv = meta("llama.attention.head_count_kv")
    eps = meta("llama.attention.layer_norm_rms_epsilon")
    base = meta("llama.rope.freq_base")
    L = meta("llama.block_count")
    W = {}
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type)
        W[t.name] = np.asarray(a, dtype=np.float64).reshape([int(x) for x in reversed(t.shape.tolist())])
    hd = d // nh
    inv = 1.0 / (base ** (np.arange(0, hd, 2) / hd))
    layers = [{"attn_norm": W["blk.%d.attn_norm.weight" % l], "mlp_norm": W["blk.%d.ffn_norm.weight" % l],
               "wq": W["blk.%d.attn_q.weight" % l], "wk": W["blk.%d.attn_k.weight" % l],
               "wv": W["blk.%d.attn_v.weight" % l], "wo": W["blk.%d.attn_output.weight" % l],
               "wgate": W["blk.%d.ffn_gate.weight" % l], "wup": W["blk.%d.ffn_up.weight" % l],
               "wdown": W["blk.%d.ffn_down.weight" % l]} for l in range(L)]
    emb = W["token_embd.weight"]
    lm = W.get("output.weight", emb)
    ids = list(np.random.default_rng(11).integers(0, emb.shape[0], 64))
    ref = decoder(ids, emb, layers, W["output_norm.weight"], lm, eps, lambda x, pos: rope_interleaved(x, pos, inv),
                  nh, nkv, hd)
    compare("SmolLM2-135M Q4_1 GGUF vs llama.cpp semantics (64 tokens)", rotq_logits(path, ids, tmp, emb.shape[0]), ref)
    return True


def main():
    try:
        subprocess.run([ROTQ, "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        print("skip: rotq binary %s not runnable" % ROTQ)
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        test_random_models(tmp)
        test_opt(tmp)
        test_tinystories(tmp)
        test_smollm2(tmp)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
