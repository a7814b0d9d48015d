"""Qwen2-VL end to end against independent references, on small random checkpoints made here.

  * images: rotq's decoder + resize + normalisation + patch order against Pillow and numpy (the HF
    processor's PIL backend, written out: smart_resize, BICUBIC, x/255, (x - mean)/std, merge order),
    for RGB, RGBA (composited onto white), grey, JPEG, and sizes that resize up, down and both ways;
    the bicubic resize alone bit for bit against Pillow;
  * the vision tower (2-D RoPE, bidirectional attention, LayerNorm blocks, quick GELU, patch merger)
    against a float64 numpy forward;
  * the language model's greedy steps with the image in the prompt (M-RoPE positions, merged patch
    embeddings in place of the image tokens) against a float64 numpy decoder, token by token;
  * rotation invariance of both towers (LayerNorm fusion, R1, R2, R4 in the vision tower; R1-R4 in the
    language model; the merger's output turned by the language model's R1): logits of rotated
    models against the original's, and the fused-only export through the numpy references (what
    transformers would load);
  * RTN of both towers, and clear errors.
With ROTQ_TRANSFORMERS_PYTHON naming a Python that has torch and transformers, the same checks run
against transformers' Qwen2VLForConditionalGeneration and its PIL image processor too (else skipped,
said on stderr)."""
import json
import math
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
TOOL = os.path.join(BUILD, "tests", "tool_vision")
failures = []


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        failures.append(msg)


def run(args, ok=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if ok and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed: {r.stderr.strip()}")
    return r


# ---- the image processor (Qwen2VLImageProcessorPil, written out) ---------------------------------

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def smart_resize(h, w, factor, min_pixels, max_pixels):
    hb, wb = round(h / factor) * factor, round(w / factor) * factor
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb, wb = max(factor, math.floor(h / beta / factor) * factor), max(factor, math.floor(w / beta / factor) * factor)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb, wb = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return hb, wb


def processor(path, pre):
    from PIL import Image
    im = Image.open(path)
    if "A" in im.getbands() or im.info.get("transparency") is not None:
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im.convert("RGBA")).convert("RGB")
    else:
        im = im.convert("RGB")
    P, M, Tp = pre["patch_size"], pre["merge_size"], pre["temporal_patch_size"]
    h, w = smart_resize(im.height, im.width, P * M, pre["min_pixels"], pre["max_pixels"])
    x = np.array(im.resize((w, h), Image.BICUBIC) if (w, h) != im.size else im).transpose(2, 0, 1)
    x = (x.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - MEAN[:, None, None]) / STD[:, None, None]
    gh, gw = h // P, w // P
    p = x.reshape(3, gh // M, M, P, gw // M, M, P).transpose(1, 4, 2, 5, 0, 3, 6)
    p = np.broadcast_to(p[:, :, :, :, :, None], (*p.shape[:5], Tp, P, P))
    return p.reshape(gh * gw, 3 * Tp * P * P), (1, gh, gw)


# ---- float64 references ---------------------------------------------------------------------------

def layer_norm(x, w, b, eps=1e-6):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rotate_half(x, cos, sin):
    """x [T, H, hd], cos/sin [T, hd/2] (the first half's angles; the second half repeats them)."""
    half = x.shape[-1] // 2
    c, s = np.concatenate([cos, cos], -1)[:, None, :], np.concatenate([sin, sin], -1)[:, None, :]
    return x * c + np.concatenate([-x[..., half:], x[..., :half]], -1) * s


ERF = np.vectorize(math.erf)


def window_order(lh, lw, ws):
    """Qwen2.5-VL's regrouping of merged patches window by window: the new order, and each window's length."""
    order, lens = [], []
    for wh in range(-(-lh // ws)):
        for ww in range(-(-lw // ws)):
            units = [i * lw + j for i in range(wh * ws, min((wh + 1) * ws, lh)) for j in range(ww * ws, min((ww + 1) * ws, lw))]
            order += units
            lens.append(len(units))
    return np.array(order), lens


def vision_ref(W, patches, grid, cfg):
    """Both towers: Qwen2-VL (LayerNorm, quick GELU, full attention) and Qwen2.5-VL (RMSNorm, SwiGLU with
    biases, windowed attention except in fullatt_block_indexes), float64."""
    vc = cfg["vision_config"]
    v25 = "out_hidden_size" in vc
    E, H, M = vc["hidden_size" if v25 else "embed_dim"], vc["num_heads"], vc["spatial_merge_size"]
    hd = E // H
    x = patches.astype(np.float64) @ W["visual.patch_embed.proj.weight"].reshape(E, -1).astype(np.float64).T
    _, gh, gw = grid
    hpos = np.arange(gh)[:, None].repeat(gw, 1).reshape(gh // M, M, gw // M, M).transpose(0, 2, 1, 3).ravel()
    wpos = np.arange(gw)[None, :].repeat(gh, 0).reshape(gh // M, M, gw // M, M).transpose(0, 2, 1, 3).ravel()
    T = len(x)
    segments = [(0, T)]
    if v25:  # regroup rows window by window (positions with them), attend per window, restore the order at the end
        ws = vc["window_size"] // M // vc["patch_size"]
        order, lens = window_order(gh // M, gw // M, ws)
        rows = (order[:, None] * M * M + np.arange(M * M)[None, :]).ravel()
        x, hpos, wpos = x[rows], hpos[rows], wpos[rows]
        ends = np.cumsum([n * M * M for n in lens])
        windows = [(int(a), int(b)) for a, b in zip(np.concatenate([[0], ends[:-1]]), ends) if b > a]
    dim = hd // 2
    inv = 1.0 / 10000.0 ** (np.arange(0, dim, 2) / dim)
    ang = np.concatenate([hpos[:, None] * inv, wpos[:, None] * inv], -1)
    cos, sin = np.cos(ang), np.sin(ang)
    g = lambda n: W[n].astype(np.float64)
    norm = (lambda x, p: rms_norm(x, g(p + ".weight"), 1e-6)) if v25 else (lambda x, p: layer_norm(x, g(p + ".weight"), g(p + ".bias")))
    for l in range(vc["depth"]):
        p = f"visual.blocks.{l}."
        h = norm(x, p + "norm1")
        qkv = (h @ g(p + "attn.qkv.weight").T + g(p + "attn.qkv.bias")).reshape(T, 3, H, hd)
        q, k, v = rotate_half(qkv[:, 0], cos, sin), rotate_half(qkv[:, 1], cos, sin), qkv[:, 2]
        out = np.empty((T, H, hd))
        for a0, a1 in (segments if not v25 or l in vc["fullatt_block_indexes"] else windows):
            for hh in range(H):
                s = q[a0:a1, hh] @ k[a0:a1, hh].T / np.sqrt(hd)
                s = np.exp(s - s.max(-1, keepdims=True))
                out[a0:a1, hh] = (s / s.sum(-1, keepdims=True)) @ v[a0:a1, hh]
        x = x + out.reshape(T, E) @ g(p + "attn.proj.weight").T + g(p + "attn.proj.bias")
        h = norm(x, p + "norm2")
        if v25:
            gt = h @ g(p + "mlp.gate_proj.weight").T + g(p + "mlp.gate_proj.bias")
            up = h @ g(p + "mlp.up_proj.weight").T + g(p + "mlp.up_proj.bias")
            x = x + (gt / (1 + np.exp(-gt)) * up) @ g(p + "mlp.down_proj.weight").T + g(p + "mlp.down_proj.bias")
        else:
            a = h @ g(p + "mlp.fc1.weight").T + g(p + "mlp.fc1.bias")
            x = x + (a / (1 + np.exp(-1.702 * a))) @ g(p + "mlp.fc2.weight").T + g(p + "mlp.fc2.bias")
    h = norm(x, "visual.merger.ln_q").reshape(T // (M * M), -1)
    a = h @ g("visual.merger.mlp.0.weight").T + g("visual.merger.mlp.0.bias")
    a = 0.5 * a * (1 + ERF(a / math.sqrt(2)))
    merged = a @ g("visual.merger.mlp.2.weight").T + g("visual.merger.mlp.2.bias")
    if v25:
        back = np.empty_like(merged)
        back[order] = merged
        merged = back
    return merged


def text_cfg(cfg):
    return cfg.get("text_config", cfg)


def llm_ref(W, cfg, x, pos3):
    """Qwen2 decoder with M-RoPE over embeddings x [T, d] at positions pos3 [3, T]: last row's logits."""
    tc = text_cfg(cfg)
    d, H, KV = tc["hidden_size"], tc["num_attention_heads"], tc["num_key_value_heads"]
    hd, eps = d // H, tc["rms_norm_eps"]
    rope = tc.get("rope_parameters") or tc.get("rope_scaling")
    sec = rope["mrope_section"]
    inv = 1.0 / 10000.0 ** (np.arange(0, hd, 2) / hd)
    comp = np.repeat(np.arange(3), sec)  # frequency i turns with component comp[i]
    ang = pos3[comp, :].T * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    g = lambda n: W[n].astype(np.float64)
    T = len(x)
    mask = np.triu(np.ones((T, T), bool), 1)
    for l in range(tc["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, g(p + "input_layernorm.weight"), eps)
        q = (h @ g(p + "self_attn.q_proj.weight").T + g(p + "self_attn.q_proj.bias")).reshape(T, H, hd)
        k = (h @ g(p + "self_attn.k_proj.weight").T + g(p + "self_attn.k_proj.bias")).reshape(T, KV, hd)
        v = (h @ g(p + "self_attn.v_proj.weight").T + g(p + "self_attn.v_proj.bias")).reshape(T, KV, hd)
        q, k = rotate_half(q, cos, sin), rotate_half(k, cos, sin)
        out = np.empty((T, H, hd))
        for hh in range(H):
            s = q[:, hh] @ k[:, hh // (H // KV)].T / np.sqrt(hd)
            s[mask] = -np.inf
            s = np.exp(s - s.max(-1, keepdims=True))
            out[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, hh // (H // KV)]
        x = x + out.reshape(T, d) @ g(p + "self_attn.o_proj.weight").T
        h = rms_norm(x, g(p + "post_attention_layernorm.weight"), eps)
        gt, up = h @ g(p + "mlp.gate_proj.weight").T, h @ g(p + "mlp.up_proj.weight").T
        x = x + (gt / (1 + np.exp(-gt)) * up) @ g(p + "mlp.down_proj.weight").T
    return rms_norm(x[-1:], g("model.norm.weight"), eps) @ g("lm_head.weight").T


def greedy_ref(model_dir, img, prompt_ids, n_new):
    """What rotq generate --image does, in numpy: processor, tower, expansion, M-RoPE, greedy steps."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    pre = json.load(open(os.path.join(model_dir, "preprocessor_config.json")))
    W = load_file(os.path.join(model_dir, "model.safetensors"))
    patches, grid = processor(img, pre)
    feats = vision_ref(W, patches, grid, cfg)
    M = cfg["vision_config"]["spatial_merge_size"]
    n_img, gh, gw = len(feats), grid[1] // M, grid[2] // M
    at = prompt_ids.index(cfg["image_token_id"])
    ids = prompt_ids[:at] + [cfg["image_token_id"]] * n_img + prompt_ids[at + 1:]
    emb = W["model.embed_tokens.weight"].astype(np.float64)
    x = emb[ids]
    x[at:at + n_img] = feats
    pos = [[t, t, t] for t in range(at)]
    pos += [[at, at + i // gw, at + i % gw] for i in range(n_img)]
    nxt = at + max(gh, gw)
    for t in range(at + n_img, len(ids)):
        pos.append([nxt] * 3)
        nxt += 1
    toks, logits = [], []
    for _ in range(n_new):
        lg = llm_ref(W, cfg, x, np.array(pos, np.float64).T)[0]
        tok = int(lg.argmax())
        toks.append(tok)
        logits.append(lg)
        x = np.concatenate([x, emb[tok][None]], 0)
        pos.append([nxt] * 3)
        nxt += 1
    return toks, np.array(logits), feats


# ---- rotq side -------------------------------------------------------------------------------------

def rotq_generate(model, img, prompt, n, tmp, extra=()):
    out = os.path.join(tmp, "logits.f32")
    if os.path.exists(out):
        os.remove(out)
    r = run([ROTQ, "generate", model, "--image", img, "--prompt", prompt, "-n", str(n), "--ignore-eos", "--print-ids",
             "--logits-out", out, *extra])
    toks = [int(t) for t in r.stdout.strip().split(",")]
    return toks, np.fromfile(out, np.float32).reshape(len(toks), -1)


def rotq_features(model, img, tmp):
    out = os.path.join(tmp, "feats.f32")
    n, d = map(int, run([TOOL, "features", model, img, out]).stdout.split())
    return np.fromfile(out, np.float32).reshape(n, d)


def rotq_patches(model, img, tmp):
    out = os.path.join(tmp, "patches.f32")
    rows, cols, t, h, w = map(int, run([TOOL, "patches", model, img, out]).stdout.split())
    return np.fromfile(out, np.float32).reshape(rows, cols), (t, h, w)


def rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


def kl_max(ref, got):
    def logp(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))
    lp, lq = logp(np.asarray(ref, np.float64)), logp(np.asarray(got, np.float64))
    return float((np.exp(lp) * (lp - lq)).sum(-1).max())


PROMPT = "Describe it."


def prompt_ids(cfg):
    sp = {s: 256 + i for i, s in enumerate(rm.VL_SPECIALS)}
    return [sp["<|vision_start|>"], cfg["image_token_id"], sp["<|vision_end|>"]] + list(PROMPT.encode())


def make_images(tmp):
    from PIL import Image
    imgs = {}
    imgs["rgb 100x70 (up, half-way rounding)"] = os.path.join(tmp, "rgb.png")
    rm.write_png(imgs["rgb 100x70 (up, half-way rounding)"], rm.test_image(0, 100, 70))
    rgba = np.concatenate([rm.test_image(1, 90, 60), np.random.default_rng(2).integers(0, 256, (60, 90, 1), dtype=np.uint8)], -1)
    rgba[:5, :, 3], rgba[5:10, :, 3] = 0, 255
    imgs["rgba 90x60 onto white"] = os.path.join(tmp, "rgba.png")
    rm.write_png(imgs["rgba 90x60 onto white"], rgba)
    imgs["grey 70x70"] = os.path.join(tmp, "grey.png")
    rm.write_png(imgs["grey 70x70"], rm.test_image(3, 70, 70)[:, :, 1])
    imgs["jpeg 50x150 (width up, height down)"] = os.path.join(tmp, "tall.jpg")
    Image.fromarray(rm.test_image(4, 50, 150)).save(imgs["jpeg 50x150 (width up, height down)"], quality=90)
    imgs["jpeg grey 400x300 (above max_pixels)"] = os.path.join(tmp, "big.jpg")
    Image.fromarray(rm.test_image(5, 400, 300)[:, :, 0]).save(imgs["jpeg grey 400x300 (above max_pixels)"], quality=85)
    return imgs


def test_images(model, tmp):
    from PIL import Image
    pre = json.load(open(os.path.join(model, "preprocessor_config.json")))
    imgs = make_images(tmp)
    for label, path in imgs.items():
        ref, grid = processor(path, pre)
        got, g2 = rotq_patches(model, path, tmp)
        check(g2 == grid and got.shape == ref.shape and np.abs(got - ref).max() <= 1e-6,
              f"pixel_values of {label}: grid {g2} vs {grid}, max |diff| {np.abs(got - ref).max() if got.shape == ref.shape else 'shape'}")
    src = imgs["rgb 100x70 (up, half-way rounding)"]
    for W_, H_ in [(112, 56), (150, 100), (50, 40), (30, 90), (224, 28), (99, 71), (1000, 7), (3, 500)]:
        out = os.path.join(tmp, "r.rgb")
        run([TOOL, "resize", src, str(W_), str(H_), out])
        got = np.fromfile(out, np.uint8).reshape(H_, W_, 3)
        ref = np.array(Image.open(src).resize((W_, H_), Image.BICUBIC))
        check(np.array_equal(got, ref), f"bicubic resize 100x70 -> {W_}x{H_} equals Pillow's bit for bit "
                                        f"({int((got != ref).sum())} values differ)")
    return imgs


def test_forward(model, imgs, tmp):
    name = "Qwen2.5-VL" if "out_hidden_size" in json.load(open(os.path.join(model, "config.json")))["vision_config"] else "Qwen2-VL"
    cfg = json.load(open(os.path.join(model, "config.json")))
    W = load_file(os.path.join(model, "model.safetensors"))
    pre = json.load(open(os.path.join(model, "preprocessor_config.json")))
    for label in ("rgb 100x70 (up, half-way rounding)", "jpeg 50x150 (width up, height down)"):
        patches, grid = processor(imgs[label], pre)
        ref = vision_ref(W, patches, grid, cfg)
        got = rotq_features(model, imgs[label], tmp)
        check(got.shape == ref.shape and rel(got, ref) < 1e-5, f"{name} vision tower on {label}: {got.shape} merged tokens, "
                                                               f"max |diff| / max|ref| {rel(got, ref):.2e}")
    img = imgs["rgb 100x70 (up, half-way rounding)"]
    toks, logits, _ = greedy_ref(model, img, prompt_ids(cfg), 6)
    got_toks, got_logits = rotq_generate(model, img, PROMPT, 6, tmp)
    check(got_toks == toks, f"{name}: greedy tokens with the image equal numpy's: {got_toks} vs {toks}")
    check(rel(got_logits, logits) < 1e-5, f"{name}: logits of 6 greedy steps: max |diff| / max|logit| {rel(got_logits, logits):.2e}")
    return toks, got_logits


def test_rotations(model, img, base_toks, base_logits, tmp):
    combos = [
        ("R1-R4 both towers (random Hadamard)", []),
        ("R1 and R2 only (fused: an ordinary checkpoint)", ["--r3", "off", "--r4", "off"]),
        ("no R1", ["--r1", "none"]),
        ("no R2, no R3", ["--r2", "none", "--r3", "off"]),
        ("orthogonal R1/R2", ["--r1", "orthogonal", "--r2", "orthogonal"]),
        ("plain Hadamard, seed 7", ["--r1", "hadamard", "--seed", "7"]),
        ("layerwise at every language-model site on top", ["--layerwise", "all", "--r4", "off"]),
    ]
    fused = None
    for label, args in combos:
        out = os.path.join(tmp, os.path.basename(model) + "-rot-" + str(len(label)) + "-" + str(abs(hash(label)) % 10000))
        run([ROTQ, "rotate", model, out, *args])
        toks, logits = rotq_generate(out, img, PROMPT, len(base_toks), tmp)
        d = np.abs(logits - base_logits).max() / np.abs(base_logits).max()
        kl = kl_max(base_logits, logits)
        check(toks == base_toks and d < 1e-3 and kl < 1e-6,
              f"{os.path.basename(model)} rotated ({label}): same tokens, max |dlogit| / max|logit| {d:.1e}, KL {kl:.1e}")
        if "fused" in label:
            fused = out
    # what transformers would load: the fused-only export through the float64 references
    cfg = json.load(open(os.path.join(fused, "config.json")))
    check("rotq_vision" in cfg and cfg["rotq_vision"].get("norms_fused") and "r4" not in cfg["rotq_vision"],
          "the fused export records the vision tower's rotation (rotq_vision) without online sites")
    toks, logits, _ = greedy_ref(fused, img, prompt_ids(cfg), len(base_toks))
    d = rel(logits, base_logits)
    check(toks == base_toks and d < 1e-4, f"{os.path.basename(model)}: fused export read as a plain checkpoint (numpy, LayerNorm as written): "
                                          f"same tokens, max |dlogit| / max|logit| {d:.1e}")
    return fused


def test_quant(model, img, tmp):
    out = os.path.join(tmp, "w4")
    run([ROTQ, "quantize", model, out, "--rotate", "--w-bits", "4"])
    W = load_file(os.path.join(out, "model.safetensors"))
    distinct = max(len(np.unique(r)) for r in W["visual.blocks.1.mlp.fc1.weight"])
    check(distinct <= 16, f"vision tower linears on the 4-bit grid (<= {distinct} values per row)")
    check(len(np.unique(W["visual.merger.mlp.0.weight"][0])) > 16, "the merger stays float")
    toks, _ = rotq_generate(out, img, PROMPT, 4, tmp, ["--threads", "2"])
    check(len(toks) == 4, "the W4 model generates from an image")
    r = run([ROTQ, "eval", out, "--text", os.path.join(tmp, "text.txt"), "--ctx", "64", "--a-bits", "4", "--kv-bits", "4",
             "--json"], ok=False)
    ok = r.returncode == 0 and math.isfinite(json.loads(r.stdout)["perplexity"])
    check(ok, f"rotq eval of the W4 Qwen2-VL's text with A4/KV4 runs{'' if r.returncode == 0 else ': ' + r.stderr.strip()[-200:]}")


def test_errors(model, img, tmp):
    text_model = rm.make("qwen2", os.path.join(tmp, "qwen2"))
    r = run([ROTQ, "generate", text_model, "--ids", "1,2", "--image", img], ok=False)
    check(r.returncode != 0 and "no vision tower" in r.stderr, f"an image for a text-only model is refused: {r.stderr.strip()}")
    bad = os.path.join(tmp, "bad.png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    r = run([ROTQ, "generate", model, "--image", bad, "--prompt", "x"], ok=False)
    check(r.returncode != 0 and "bad.png" in r.stderr, f"a damaged PNG is named: {r.stderr.strip()}")
    r = run([ROTQ, "generate", model, "--image", img, "--prompt", "<|image_pad|> and <|image_pad|>"], ok=False)
    check(r.returncode != 0 and "more than once" in r.stderr, f"two image tokens are refused: {r.stderr.strip()}")
    r = run([ROTQ, "quantize", model, os.path.join(tmp, "x-ct"), "--format", "compressed-tensors:w4a16", "--w-group", "16"], ok=False)
    check(r.returncode != 0 and "vision-language" in r.stderr and not os.path.exists(os.path.join(tmp, "x-ct")),
          f"compressed-tensors export of a VL model is refused before any work: {r.stderr.strip()}")
    r = run([ROTQ, "rotate", model, os.path.join(tmp, "x.gguf")], ok=False)
    check(r.returncode != 0 and "mmproj" in r.stderr and not os.path.exists(os.path.join(tmp, "x.gguf")),
          f"GGUF output refused before any work: {r.stderr.strip()}")


TRANSFORMERS_SCRIPT = r"""
import json, sys, numpy as np, torch
from transformers import AutoModelForImageTextToText, AutoImageProcessor, PreTrainedTokenizerFast
from PIL import Image
model_dir, img, prompt, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
m = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
ip, tok = AutoImageProcessor.from_pretrained(model_dir), PreTrainedTokenizerFast.from_pretrained(model_dir)
pix = ip(images=[Image.open(img)], return_tensors="pt")
k = int(pix["image_grid_thw"].prod()) // m.config.vision_config.spatial_merge_size ** 2
ids = tok("<|vision_start|>" + "<|image_pad|>" * k + "<|vision_end|>" + prompt, return_tensors="pt")["input_ids"]
with torch.no_grad():
    out = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=(ids == m.config.image_token_id).int(),
                     pixel_values=pix["pixel_values"], image_grid_thw=pix["image_grid_thw"], max_new_tokens=n, do_sample=False,
                     output_logits=True, return_dict_in_generate=True)
    feats = m.model.get_image_features(pix["pixel_values"], pix["image_grid_thw"]).pooler_output
np.save(sys.argv[5], torch.stack(out.logits, 0)[:, 0].numpy())
np.save(sys.argv[6], pix["pixel_values"].numpy())
np.save(sys.argv[7], torch.cat(list(feats)).numpy() if isinstance(feats, (list, tuple)) else feats.numpy())
print(json.dumps(out.sequences[0, ids.shape[1]:].tolist()))
"""


def test_transformers(model, fused, img, base_toks, base_logits, tmp, name="Qwen2-VL"):
    py = os.environ.get("ROTQ_TRANSFORMERS_PYTHON")
    if not py:
        print("skip transformers: set ROTQ_TRANSFORMERS_PYTHON to a Python with torch and transformers", file=sys.stderr)
        return
    script = os.path.join(tmp, "tf.py")
    with open(script, "w") as f:
        f.write(TRANSFORMERS_SCRIPT)
    for label, d in (("original", model), ("fused rotated export", fused)):
        files = [os.path.join(tmp, f"tf-{x}.npy") for x in ("logits", "pixels", "feats")]
        r = run([py, script, d, img, PROMPT, str(len(base_toks)), *files])
        toks = json.loads(r.stdout.strip().splitlines()[-1])
        logits, pixels, feats = (np.load(f) for f in files)
        check(toks == base_toks, f"{name}: transformers on the {label}: tokens {toks} equal rotq's")
        check(rel(base_logits, logits) < 1e-5, f"{name}: transformers on the {label}: logits max |diff| / max|logit| {rel(base_logits, logits):.2e}")
        got, _ = rotq_patches(d, img, tmp)
        check(np.abs(got - pixels).max() == 0, f"{name}: transformers' pixel_values equal rotq's bit for bit ({label})")
        if label == "original":  # (the rotated tower's output is in the rotated stream's basis)
            gf = rotq_features(model, img, tmp)
            check(rel(gf, feats) < 1e-5, f"{name}: transformers' vision features: max |diff| / max|ref| {rel(gf, feats):.2e}")


def main():
    if not os.access(ROTQ, os.X_OK) or not os.access(TOOL, os.X_OK):
        print(f"skip: build {ROTQ} and {TOOL} first", file=sys.stderr)
        return 77
    try:
        import PIL  # noqa: F401
    except ImportError:
        print("skip: Pillow (the image oracle) is not installed", file=sys.stderr)
        return 77
    with tempfile.TemporaryDirectory(prefix="rotq-qwen2vl-") as tmp:
        model = rm.make_qwen2_vl(os.path.join(tmp, "vl"))
        flat = rm.make_qwen2_vl(os.path.join(tmp, "vl-flat"), nested_config=False)
        with open(os.path.join(tmp, "text.txt"), "w") as f:
            f.write("It is a truth universally acknowledged, that a single man in possession of a good fortune. " * 8)
        imgs = test_images(model, tmp)
        img = imgs["rgb 100x70 (up, half-way rounding)"]
        toks, logits = test_forward(model, imgs, tmp)
        ft, fl = rotq_generate(flat, img, PROMPT, len(toks), tmp)
        check(ft == toks and np.array_equal(fl, logits), "transformers 4's flat config (rope_scaling type mrope) reads the same")
        fused = test_rotations(model, img, toks, logits, tmp)
        test_quant(model, img, tmp)
        test_errors(model, img, tmp)
        test_transformers(model, fused, img, toks, logits, tmp)
        # Qwen2.5-VL: RMSNorm tower, SwiGLU with biases, windows of 2×2 merged patches in layer 0, full attention in 1
        m25 = rm.make_qwen2_5_vl(os.path.join(tmp, "vl25"))
        toks25, logits25 = test_forward(m25, imgs, tmp)
        fused25 = test_rotations(m25, img, toks25, logits25, tmp)
        test_transformers(m25, fused25, img, toks25, logits25, tmp, "Qwen2.5-VL")
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all Qwen2-VL checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
