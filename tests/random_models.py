"""Small random Hugging Face checkpoints (llama, qwen2 with q/k/v bias, qwen3 with q/k norms, gemma3
with (1 + w) norms, sandwich norms, GeGLU and sliding-window layers, phi3 with fused qkv and gate_up, opt with LayerNorm weights and biases, biases everywhere and learned positions) for tests. Sizes are deliberately not powers of two: hidden 96 = 12·8, head_dim 24 = 12·2,
intermediate 160 = 20·8, so rotations exercise non-Sylvester Hadamard orders. Deterministic per seed."""
import json, os
import numpy as np
from safetensors.numpy import load_file, save_file

DIMS = dict(hidden=96, heads=4, kv_heads=2, head_dim=24, intermediate=160, layers=2, vocab=128)


def make(arch, out_dir, seed=0, tied=False, dims=None):
    if arch == "opt":
        return make_opt(out_dir, seed=seed, tied=tied, dims=dims)
    d = dict(DIMS, **(dims or {}))
    rng = np.random.default_rng(seed)
    h, nh, nkv, hd, ff, L, V = d["hidden"], d["heads"], d["kv_heads"], d["head_dim"], d["intermediate"], d["layers"], d["vocab"]
    w = lambda *s, scale=None: (rng.standard_normal(s) * (scale or 1 / np.sqrt(s[-1]))).astype(np.float32)
    gemma = arch == "gemma3"
    if gemma and "layers" not in (dims or {}):
        L = 6  # llama.cpp's pattern: 5 local layers, then a global one
    # not 1: fusion must matter (Gemma stores w of its (1 + w) norms)
    norm = lambda n=h: ((0 if gemma else 1) + 0.3 * rng.standard_normal(n)).astype(np.float32)
    # Gemma multiplies the embedding by sqrt(hidden): rows of norm ~1 keep its logits moderate
    t = {"model.embed_tokens.weight": w(V, h, scale=h ** -0.5 if gemma else 1.0), "model.norm.weight": norm()}
    if not tied:
        t["lm_head.weight"] = w(V, h)
    for l in range(L):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = norm()
        t[p + "post_attention_layernorm.weight"] = norm()
        t[p + "self_attn.o_proj.weight"] = w(h, nh * hd)
        t[p + "mlp.down_proj.weight"] = w(h, ff)
        if arch == "phi3":
            t[p + "self_attn.qkv_proj.weight"] = w((nh + 2 * nkv) * hd, h)
            t[p + "mlp.gate_up_proj.weight"] = w(2 * ff, h)
        else:
            t[p + "self_attn.q_proj.weight"] = w(nh * hd, h)
            t[p + "self_attn.k_proj.weight"] = w(nkv * hd, h)
            t[p + "self_attn.v_proj.weight"] = w(nkv * hd, h)
            t[p + "mlp.gate_proj.weight"] = w(ff, h)
            t[p + "mlp.up_proj.weight"] = w(ff, h)
            if arch == "qwen2":
                for n, rows in (("q", nh * hd), ("k", nkv * hd), ("v", nkv * hd)):
                    t[p + f"self_attn.{n}_proj.bias"] = (0.5 * rng.standard_normal(rows)).astype(np.float32)
            if arch in ("qwen3", "gemma3"):
                t[p + "self_attn.q_norm.weight"], t[p + "self_attn.k_norm.weight"] = norm(hd), norm(hd)
            if gemma:
                t[p + "pre_feedforward_layernorm.weight"] = norm()
                t[p + "post_feedforward_layernorm.weight"] = norm()
    hf_arch = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "phi3": "Phi3ForCausalLM",
               "qwen3": "Qwen3ForCausalLM", "gemma3": "Gemma3ForCausalLM"}[arch]
    cfg = {"architectures": [hf_arch], "model_type": arch, "hidden_size": h, "intermediate_size": ff,
           "num_hidden_layers": L, "num_attention_heads": nh, "num_key_value_heads": nkv, "head_dim": hd,
           "vocab_size": V, "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
           "tie_word_embeddings": tied, "hidden_act": "silu", "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}
    if arch in ("qwen2", "qwen3"):
        cfg["use_sliding_window"] = False
    if gemma:  # a window of 16 so that 64-token checks cross it; the rest as Gemma 3 270M
        cfg.update(model_type="gemma3_text", hidden_act=None, hidden_activation="gelu_pytorch_tanh", sliding_window=16,
                   sliding_window_pattern=6, rope_local_base_freq=10000.0, query_pre_attn_scalar=hd,
                   final_logit_softcapping=None, attn_logit_softcapping=None, num_hidden_layers=L)
    if arch == "phi3":
        cfg["pad_token_id"] = 0  # transformers' Phi3Config default (32000) exceeds the small vocabulary
    os.makedirs(out_dir, exist_ok=True)
    save_file(t, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return out_dir


OPT_DIMS = dict(hidden=96, heads=4, ffn=160, layers=2, vocab=128, max_pos=64)


def make_opt(out_dir, seed=0, tied=True, dims=None, activation="relu"):
    """OPTForCausalLM: pre-LayerNorm (weight != 1, bias != 0 so that fusion matters), biases on every
    linear, learned positions (HF's table has max_position_embeddings + 2 rows), lm_head tied by
    default. Embeddings and biases get a common offset so that centring the stream matters too."""
    d = dict(OPT_DIMS, **(dims or {}))
    rng = np.random.default_rng(seed)
    h, nh, ff, L, V, P = d["hidden"], d["heads"], d["ffn"], d["layers"], d["vocab"], d["max_pos"]
    w = lambda *s, scale=None: (rng.standard_normal(s) * (scale or 1 / np.sqrt(s[-1]))).astype(np.float32)
    vec = lambda n, scale=0.3, mean=0.0: (mean + scale * rng.standard_normal(n)).astype(np.float32)
    t = {"model.decoder.embed_tokens.weight": w(V, h, scale=1.0) + np.float32(0.5),
         "model.decoder.embed_positions.weight": w(P + 2, h, scale=0.3) - np.float32(0.2),
         "model.decoder.final_layer_norm.weight": vec(h, mean=1.0),
         "model.decoder.final_layer_norm.bias": vec(h, 0.2, 0.1)}
    if not tied:
        t["lm_head.weight"] = w(V, h)
    for l in range(L):
        p = f"model.decoder.layers.{l}."
        for n in ("self_attn_layer_norm", "final_layer_norm"):
            t[p + n + ".weight"] = vec(h, mean=1.0)
            t[p + n + ".bias"] = vec(h, 0.2, 0.1)
        for n in ("q", "k", "v"):
            t[p + f"self_attn.{n}_proj.weight"] = w(h, h)
            t[p + f"self_attn.{n}_proj.bias"] = vec(h, 0.3)
        t[p + "self_attn.out_proj.weight"] = w(h, h)
        t[p + "self_attn.out_proj.bias"] = vec(h, 0.3, 0.2)
        t[p + "fc1.weight"] = w(ff, h)
        t[p + "fc1.bias"] = vec(ff, 0.3)
        t[p + "fc2.weight"] = w(h, ff)
        t[p + "fc2.bias"] = vec(h, 0.3, -0.2)
    cfg = {"architectures": ["OPTForCausalLM"], "model_type": "opt", "hidden_size": h, "ffn_dim": ff,
           "num_hidden_layers": L, "num_attention_heads": nh, "vocab_size": V, "max_position_embeddings": P,
           "activation_function": activation, "do_layer_norm_before": True, "word_embed_proj_dim": h,
           "enable_bias": True, "layer_norm_elementwise_affine": True, "tie_word_embeddings": tied,
           "torch_dtype": "float32", "bos_token_id": 2, "eos_token_id": 2, "pad_token_id": 1,
           "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "layerdrop": 0.0}
    os.makedirs(out_dir, exist_ok=True)
    save_file(t, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return out_dir


def make_llama2c(folder, seed=0, dim=64, hidden=96, layers=2, heads=4, kv_heads=2):
    """A random llama2.c checkpoint with a byte-fallback tokenizer (printable ASCII pieces and
    <0xXX> bytes), for when ../shared's tinystories model is absent."""
    import struct

    import numpy as np
    rng = np.random.default_rng(seed)
    pieces = [b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % i for i in range(256)] + [bytes([c]) for c in range(32, 127)]
    with open(os.path.join(folder, "tokenizer.bin"), "wb") as f:
        f.write(struct.pack("<i", 16))
        for i, p in enumerate(pieces):
            f.write(struct.pack("<fi", -float(i), len(p)) + p)
    L, nh, nkv, V, seq = layers, heads, kv_heads, len(pieces), 256
    hd = dim // nh
    w = lambda *s: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32)
    norm = lambda *s: (1 + 0.2 * rng.standard_normal(s)).astype(np.float32)
    parts = [(0.1 * rng.standard_normal((V, dim))).astype(np.float32), norm(L, dim), w(L, dim, dim), w(L, nkv * hd, dim),
             w(L, nkv * hd, dim), w(L, dim, dim), norm(L, dim), w(L, hidden, dim), w(L, dim, hidden), w(L, hidden, dim),
             norm(dim), np.zeros((seq, hd // 2), np.float32), np.zeros((seq, hd // 2), np.float32)]
    with open(os.path.join(folder, "model.bin"), "wb") as f:
        f.write(struct.pack("<7i", dim, hidden, L, nh, nkv, V, seq))
        for a in parts:
            f.write(a.tobytes())
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "ran", "far", "away", "."]
    with open(os.path.join(folder, "text.txt"), "w") as f:
        f.write(" ".join(words[int(i)] for i in rng.integers(0, len(words), 1800)))
    return os.path.join(folder, "model.bin"), os.path.join(folder, "text.txt")


# ---- Qwen2-VL: a Qwen2 language model with M-RoPE and a vision tower -------------------------------

VL_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
               "<|video_pad|>"]


def byte_level_tokenizer(out_dir, specials):
    """A byte-level BPE tokenizer.json without merges (one token per byte, GPT-2's byte-to-unicode map)
    plus special tokens after the 256 bytes, with Qwen2's pre-tokenizer: every text round-trips."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): b for b, c in zip(bs, cs)}
    added = [dict(id=256 + i, content=s, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
             for i, s in enumerate(specials)]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    pat = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
           r"\s+(?!\S)|\s+")
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": {"type": "NFC"},
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": pat}, "behavior": "Isolated", "invert": False}, bl]},
           "post_processor": bl, "decoder": bl,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                     "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab, "merges": []}}
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    cfg = {"tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
           "unk_token": None, "model_max_length": 32768, "clean_up_tokenization_spaces": False, "errors": "replace",
           "split_special_tokens": False,
           "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added}}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return {s: 256 + i for i, s in enumerate(specials)}


VL_DIMS = dict(hidden=96, heads=4, kv_heads=2, head_dim=24, intermediate=160, layers=2, vocab=272,
               v_embed=48, v_heads=4, v_depth=2, v_mlp_ratio=2, mrope=(2, 5, 5))


def make_qwen2_vl(out_dir, seed=0, dims=None, nested_config=True):
    """Qwen2VLForConditionalGeneration with random weights, as transformers 5 saves it (model.*,
    visual.*, lm_head; nested text_config unless nested_config is False: transformers 4's flat layout),
    with the byte-level tokenizer and a preprocessor_config.json. LayerNorm weights and biases are not
    1 and 0, so fusing them matters; M-RoPE sections are uneven."""
    d = dict(VL_DIMS, **(dims or {}))
    rng = np.random.default_rng(seed)
    h, nh, nkv, hd, ff, L, V = d["hidden"], d["heads"], d["kv_heads"], d["head_dim"], d["intermediate"], d["layers"], d["vocab"]
    E, vh, VL, vff = d["v_embed"], d["v_heads"], d["v_depth"], int(d["v_embed"] * d["v_mlp_ratio"])
    w = lambda *s, scale=None: (rng.standard_normal(s) * (scale or 1 / np.sqrt(s[-1]))).astype(np.float32)
    vec = lambda n, sd, mean=0.0: (mean + sd * rng.standard_normal(n)).astype(np.float32)
    t = {"model.embed_tokens.weight": w(V, h, scale=1.0), "model.norm.weight": vec(h, 0.3, 1.0), "lm_head.weight": w(V, h)}
    for l in range(L):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"], t[p + "post_attention_layernorm.weight"] = vec(h, 0.3, 1.0), vec(h, 0.3, 1.0)
        t[p + "self_attn.q_proj.weight"], t[p + "self_attn.q_proj.bias"] = w(nh * hd, h), vec(nh * hd, 0.5)
        t[p + "self_attn.k_proj.weight"], t[p + "self_attn.k_proj.bias"] = w(nkv * hd, h), vec(nkv * hd, 0.5)
        t[p + "self_attn.v_proj.weight"], t[p + "self_attn.v_proj.bias"] = w(nkv * hd, h), vec(nkv * hd, 0.5)
        t[p + "self_attn.o_proj.weight"] = w(h, nh * hd)
        t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"], t[p + "mlp.down_proj.weight"] = w(ff, h), w(ff, h), w(h, ff)
    t["visual.patch_embed.proj.weight"] = (rng.standard_normal((E, 3, 2, 14, 14)) / np.sqrt(3 * 2 * 14 * 14)).astype(np.float32)
    for l in range(VL):
        p = f"visual.blocks.{l}."
        t[p + "norm1.weight"], t[p + "norm1.bias"] = vec(E, 0.3, 1.0), vec(E, 0.2)
        t[p + "norm2.weight"], t[p + "norm2.bias"] = vec(E, 0.3, 1.0), vec(E, 0.2)
        t[p + "attn.qkv.weight"], t[p + "attn.qkv.bias"] = w(3 * E, E), vec(3 * E, 0.3)
        t[p + "attn.proj.weight"], t[p + "attn.proj.bias"] = w(E, E), vec(E, 0.2)
        t[p + "mlp.fc1.weight"], t[p + "mlp.fc1.bias"] = w(vff, E), vec(vff, 0.3)
        t[p + "mlp.fc2.weight"], t[p + "mlp.fc2.bias"] = w(E, vff), vec(E, 0.2)
    t["visual.merger.ln_q.weight"], t["visual.merger.ln_q.bias"] = vec(E, 0.3, 1.0), vec(E, 0.2)
    t["visual.merger.mlp.0.weight"], t["visual.merger.mlp.0.bias"] = w(4 * E, 4 * E), vec(4 * E, 0.3)
    t["visual.merger.mlp.2.weight"], t["visual.merger.mlp.2.bias"] = w(h, 4 * E), vec(h, 0.2)
    os.makedirs(out_dir, exist_ok=True)
    ids = byte_level_tokenizer(out_dir, VL_SPECIALS)
    text = {"hidden_size": h, "intermediate_size": ff, "num_hidden_layers": L, "num_attention_heads": nh,
            "num_key_value_heads": nkv, "vocab_size": V, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
            "hidden_act": "silu", "use_sliding_window": False, "sliding_window": None,
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "model_type": "qwen2_vl_text"}
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(d["mrope"])}
    vision = {"depth": VL, "embed_dim": E, "hidden_size": h, "hidden_act": "quick_gelu", "mlp_ratio": d["v_mlp_ratio"],
              "num_heads": vh, "in_channels": 3, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
              "model_type": "qwen2_vl_vision"}
    cfg = {"architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl", "tie_word_embeddings": False,
           "image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
           "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
           "vision_config": vision, "dtype": "float32"}
    if nested_config:
        cfg["text_config"] = dict(text, rope_parameters=rope)
    else:  # transformers 4: the language model's keys at the top, M-RoPE as rope_scaling of type "mrope"
        cfg.update(text, rope_theta=10000.0, rope_scaling={"type": "mrope", "mrope_section": list(d["mrope"])})
        del cfg["model_type"]
        cfg["model_type"] = "qwen2_vl"
    save_file(t, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    pre = {"image_processor_type": "Qwen2VLImageProcessor", "min_pixels": 3136, "max_pixels": 28 * 28 * 64,
           "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2, "resample": 3, "do_resize": True,
           "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "do_convert_rgb": True,
           "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
    return out_dir


def make_qwen2_5_vl(out_dir, seed=0, window_size=56, full_blocks=(1,)):
    """Qwen2_5_VLForConditionalGeneration with random weights: Qwen2-VL's language model and a tower with
    RMSNorms, a gated SiLU MLP with biases and windowed attention (window_size pixels: 56 = 2×2 merged
    patches; layers in full_blocks attend to the whole image)."""
    d = dict(VL_DIMS)
    rng = np.random.default_rng(seed)
    out = make_qwen2_vl(out_dir, seed=seed)
    t = dict(load_file(os.path.join(out, "model.safetensors")))
    for k in [k for k in t if k.startswith("visual.")]:
        del t[k]
    E, VL, vff = d["v_embed"], d["v_depth"], 80  # 80 = 20·4: R4 of a K·2^m order
    w = lambda *s: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32)
    vec = lambda n, sd, mean=0.0: (mean + sd * rng.standard_normal(n)).astype(np.float32)
    t["visual.patch_embed.proj.weight"] = (rng.standard_normal((E, 3, 2, 14, 14)) / np.sqrt(3 * 2 * 14 * 14)).astype(np.float32)
    for l in range(VL):
        p = f"visual.blocks.{l}."
        t[p + "norm1.weight"], t[p + "norm2.weight"] = vec(E, 0.3, 1.0), vec(E, 0.3, 1.0)
        t[p + "attn.qkv.weight"], t[p + "attn.qkv.bias"] = w(3 * E, E), vec(3 * E, 0.3)
        t[p + "attn.proj.weight"], t[p + "attn.proj.bias"] = w(E, E), vec(E, 0.2)
        for n in ("gate", "up"):
            t[p + f"mlp.{n}_proj.weight"], t[p + f"mlp.{n}_proj.bias"] = w(vff, E), vec(vff, 0.3)
        t[p + "mlp.down_proj.weight"], t[p + "mlp.down_proj.bias"] = w(E, vff), vec(E, 0.2)
    t["visual.merger.ln_q.weight"] = vec(E, 0.3, 1.0)
    t["visual.merger.mlp.0.weight"], t["visual.merger.mlp.0.bias"] = w(4 * E, 4 * E), vec(4 * E, 0.3)
    t["visual.merger.mlp.2.weight"], t["visual.merger.mlp.2.bias"] = w(d["hidden"], 4 * E), vec(d["hidden"], 0.2)
    save_file(t, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    cfg = json.load(open(os.path.join(out, "config.json")))
    cfg["architectures"], cfg["model_type"] = ["Qwen2_5_VLForConditionalGeneration"], "qwen2_5_vl"
    cfg["text_config"]["model_type"] = "qwen2_5_vl_text"
    cfg["vision_config"] = {"depth": VL, "hidden_size": E, "intermediate_size": vff, "out_hidden_size": d["hidden"],
                            "hidden_act": "silu", "num_heads": d["v_heads"], "in_channels": 3, "patch_size": 14,
                            "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": window_size,
                            "fullatt_block_indexes": list(full_blocks), "tokens_per_second": 4,
                            "model_type": "qwen2_5_vl_vision"}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return out


def write_png(path, px):
    """px: uint8 [H, W, C] with C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) → an 8-bit PNG (no
    filter), in pure Python."""
    import struct
    import zlib
    if px.ndim == 2:
        px = px[:, :, None]
    H, W, C = px.shape
    raw = b"".join(b"\x00" + px[y].tobytes() for y in range(H))
    chunk = lambda tag, data: struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    color = {1: 0, 2: 4, 3: 2, 4: 6}[C]
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, color, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def test_image(seed=0, width=100, height=70):
    """A smooth picture with edges and some noise: resampling must get every kind of pixel right."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.stack([128 + 100 * np.sin(x / 7.0 + y / 11.0), 255 * (x > width / 3) * (y < 2 * height / 3),
                    255 * x / width * (1 - y / height)], axis=-1)
    img += 20 * rng.standard_normal(img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
