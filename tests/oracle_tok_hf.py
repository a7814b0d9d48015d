#!/usr/bin/env python3
"""rotq's tokenizers against PyPI `tokenizers` (Hugging Face), id for id.

Texts: the whole WikiText-2 test file and a Unicode stress text (tests/fixtures/tok/stress_text.py).
Tokenizers:
  1. byte-level BPE trained here on the calibration text with SmolLM2's pre-tokenizer
     (Digits(individual) + ByteLevel with the GPT-2 regex) and special tokens;
  2. the same vocabulary behind a Llama-3 style pipeline (Split with the Llama-3 regex, Isolated +
     ByteLevel without regex, ignore_merges) and a Qwen2 style one (NFC + Qwen2 regex);
  3. a SentencePiece-style BPE (byte_fallback, <unk>, Metaspace ▁ or Prepend/Replace normalizers)
     trained here too;
  4. the real SmolLM2-135M vocabulary: rotq reads the GGUF's tokenizer.ggml.* metadata directly,
     `tokenizers` gets a tokenizer.json built here from the same GGUF with the gguf package and the
     pre-tokenizer SmolLM2's own tokenizer.json uses (llama.cpp's "smollm" = \\p{N} then GPT-2).
Decoding is checked too: rotq's decode of the reference ids equals HF's decode of them (which for
the plain byte-level tokenizer is the text itself). WikiText-2 must tokenize in under 2 s.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "fixtures", "tok"))
from stress_text import stress_text  # noqa: E402

ROTQ = os.environ.get("ROTQ")
SHARED = os.environ.get("ROTQ_SHARED", os.path.join(HERE, "..", "..", "shared"))
MODELS = os.environ.get("ROTQ_MODELS", os.path.join(HERE, "..", "models"))
SKIP = 77
failures = []


def skip(why):
    print("SKIP:", why)
    sys.exit(SKIP)


try:
    import tokenizers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers, Regex
except ImportError:
    skip("the Python package `tokenizers` is not installed (scripts/requirements-test.txt)")
if not ROTQ or not os.path.exists(ROTQ):
    skip("ROTQ (path of the rotq binary) is not set")

WIKI = os.path.join(SHARED, "data", "wikitext-2-raw", "wiki.test.raw")
CALIB = os.path.join(SHARED, "data", "calibration", "austen-pride-and-prejudice.txt")
SMOL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = LLAMA3_RE.replace(r"\p{N}{1,3}", r"\p{N}")

tmp = tempfile.TemporaryDirectory(prefix="rotq-tok-")


def optimized_build():
    """The 2 s budget holds for optimized builds, not for Debug/sanitizer ones (timings reported only)."""
    cache = os.path.join(os.environ.get("ROTQ_BUILD", ""), "CMakeCache.txt")
    if not os.path.exists(cache):
        return True
    text = open(cache).read()
    return "ROTQ_SANITIZE:BOOL=ON" not in text and "CMAKE_BUILD_TYPE:STRING=Debug" not in text


TIME_LIMIT = 2.0 if optimized_build() else None


def write(name, data):
    path = os.path.join(tmp.name, name)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def rotq(args, text_bytes=None, decode=False):
    """Runs `rotq tokenize`; returns (ids, seconds) or the decoded bytes."""
    cmd = [ROTQ, "tokenize"] + args
    if text_bytes is not None:
        cmd += ["--text", write("input.txt", text_bytes)]
    if not decode:
        cmd.append("--json")
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr.decode(errors="replace")))
    if decode:
        return r.stdout
    out = json.loads(r.stdout)
    return out["ids"], out["seconds"], out


def compare(label, want, got, text=None, tok=None):
    if want == got:
        print("ok   %-58s %7d ids" % (label, len(want)))
        return
    i = next((k for k in range(min(len(want), len(got))) if want[k] != got[k]), min(len(want), len(got)))
    msg = "FAIL %s: %d vs %d ids, first difference at %d: want %s got %s" % (
        label, len(want), len(got), i, want[max(0, i - 3):i + 5], got[max(0, i - 3):i + 5])
    if tok is not None:
        msg += "\n     want pieces %r\n     got  pieces %r" % (
            [tok.id_to_token(t) for t in want[max(0, i - 3):i + 5]], [tok.id_to_token(t) for t in got[max(0, i - 3):i + 5]])
    print(msg)
    failures.append(label)


def check_tokenizer(label, tok, texts, args, decode_equals_text):
    """Encodes every text with HF and rotq (args select the tokenizer) and compares; then decodes."""
    for tname, text in texts:
        want = tok.encode(text, add_special_tokens=False).ids
        got, secs, info = rotq(args, text.encode("utf-8"))
        compare("%s / %s" % (label, tname), want, got, text, tok)
        if tname == "wikitext-2":
            print("     rotq tokenized %d bytes in %.3f s" % (len(text.encode()), secs))
            if TIME_LIMIT is not None and secs >= TIME_LIMIT:
                failures.append("%s / speed %.2f s" % (label, secs))
                print("FAIL %s: WikiText-2 took %.2f s (limit 2 s)" % (label, secs))
        ids_path = write("ids.txt", " ".join(map(str, want)))
        dec = rotq(args + ["--text", ids_path, "--decode"], decode=True)
        ref = tok.decode(want, skip_special_tokens=False).encode("utf-8")
        if decode_equals_text and ref != text.encode("utf-8"):
            raise RuntimeError("%s: HF's own decode does not give back the text; the test is wrong" % label)
        if dec != ref:
            k = next((j for j in range(min(len(dec), len(ref))) if dec[j] != ref[j]), min(len(dec), len(ref)))
            print("FAIL %s / %s decode: %d vs %d bytes, first difference at byte %d: want %r got %r" % (
                label, tname, len(ref), len(dec), k, ref[max(0, k - 20):k + 20], dec[max(0, k - 20):k + 20]))
            failures.append("%s / %s decode" % (label, tname))
        else:
            print("ok   %-58s %7d bytes" % (label + " / " + tname + " decode", len(dec)))
    # BOS comes from the tokenizer's own configuration when asked
    _, _, info = rotq(args, b"hi")
    if info["bos"] < 0:
        return
    ids, _, info = rotq(args + ["--bos"], b"hi")
    if ids[:1] != [info["bos"]]:
        failures.append(label + " / --bos")
        print("FAIL %s: --bos gave %s, bos is %d" % (label, ids[:3], info["bos"]))


def train_bytelevel(calib, specials):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([calib], trainer)
    return tok


def with_pipeline(tok, normalizer, pre, ignore_merges=None):
    """The same vocabulary and merges behind another normalizer / pre-tokenizer (edited JSON)."""
    j = json.loads(tok.to_str())
    j["normalizer"] = normalizer
    j["pre_tokenizer"] = pre
    if ignore_merges is not None:
        j["model"]["ignore_merges"] = ignore_merges
    return Tokenizer.from_str(json.dumps(j))


def train_spm(calib, metaspace):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if metaspace:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence([decoders.ByteFallback(),
                                         decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)])
    else:  # legacy Llama-2 tokenizer.json
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=120,
                                  show_progress=False)
    tok.train([calib], trainer)
    # byte-fallback pieces are ordinary vocabulary entries in Llama-2's file, not added tokens
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    for b in range(256):
        vocab.setdefault("<0x%02X>" % b, len(vocab))
    j["post_processor"] = {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [vocab["<s>"]], "tokens": ["<s>"]}}}
    return Tokenizer.from_str(json.dumps(j))


def gguf_tokenizer_json(path):
    """A tokenizer.json equivalent to the GGUF's tokenizer.ggml.* metadata, built independently of rotq."""
    import gguf
    r = gguf.GGUFReader(path)

    def field(name):
        f = r.fields.get(name)
        return f

    def strings(name):
        f = field(name)
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def scalar(name):
        f = field(name)
        v = f.parts[f.data[0]]
        return bytes(v).decode() if f.types[0] == gguf.GGUFValueType.STRING else v.tolist()[0]

    assert scalar("tokenizer.ggml.model") == "gpt2"
    pre = scalar("tokenizer.ggml.pre")
    tokens = strings("tokenizer.ggml.tokens")
    merges = strings("tokenizer.ggml.merges")
    tt = field("tokenizer.ggml.token_type")
    types = [int(tt.parts[i][0]) for i in tt.data]
    vocab = {t: i for i, t in enumerate(tokens)}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": types[i] in (2, 3)} for i, t in enumerate(tokens) if types[i] in (2, 3, 4)]
    if pre != "smollm":
        raise RuntimeError("this test knows SmolLM2's pre-tokenizer ('smollm'), the GGUF says %r" % pre)
    j = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
         "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
             {"type": "Digits", "individual_digits": True},
             {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
         "post_processor": None,
         "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
         "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                   "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                   "vocab": vocab, "merges": merges}}
    return Tokenizer.from_str(json.dumps(j)), scalar("tokenizer.ggml.bos_token_id"), scalar("tokenizer.ggml.eos_token_id")


EXTRA = (" a <mask> b<mask>c  <mask>  \t<mask>\nfoo food xfoo foo_ foo! (foo) Foo FOO ﬁfoo İfoo "
         "Ünïcödé ＦＵＬＬ ｗｉｄｔｈ ① ² ﬀ ǅ Ⅻ \u00a0 x\u3000y  ")


def pipeline_variants(bl, spm):
    """Other normalizers, pre-tokenizers, split behaviors and added-token options rotq reads."""
    from tokenizers import AddedToken

    def seq_bl(*steps):  # byte-level: the splits, then ByteLevel without its own regex
        return {"type": "Sequence", "pretokenizers": list(steps) + [
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}

    def split(pattern, behavior, invert=False, literal=False):
        return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern}, "behavior": behavior,
                "invert": invert}

    out = []
    for beh in ("Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous", "Isolated"):
        out.append(("bl split %s" % beh, with_pipeline(bl, None, seq_bl(split(r"\s+|[0-9]", beh)))))
        out.append(("bl split %s inverted" % beh, with_pipeline(bl, None, seq_bl(split(r"\p{L}+", beh, True)))))
    out.append(("bl split literal", with_pipeline(bl, None, seq_bl(split(" ", "MergedWithNext", literal=True)))))
    out.append(("bl digits runs", with_pipeline(bl, None, seq_bl({"type": "Digits", "individual_digits": False},
                                                                 split(GPT2_RE, "Isolated")))))
    for norm in ("NFKC", "NFD", "NFKD", "Lowercase"):
        out.append(("bl %s" % norm, with_pipeline(bl, {"type": norm}, seq_bl(split(GPT2_RE, "Isolated")))))
    out.append(("bl strip+replace", with_pipeline(bl, {"type": "Sequence", "normalizers": [
        {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": r"\s{2,}"}, "content": " "},
        {"type": "Replace", "pattern": {"String": "foo"}, "content": "bar"}]}, seq_bl(split(GPT2_RE, "Isolated")))))
    out.append(("spm whitespace", with_pipeline(spm, None, {"type": "Whitespace"})))
    out.append(("spm whitespace-split", with_pipeline(spm, None, {"type": "WhitespaceSplit"})))
    out.append(("spm metaspace split always", with_pipeline(spm, None, {
        "type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True})))
    out.append(("spm metaspace never", with_pipeline(spm, None, {
        "type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never", "split": False})))
    withadded = Tokenizer.from_str(bl.to_str())
    withadded.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True)])
    withadded.add_tokens([AddedToken("foo", single_word=True, normalized=True)])
    out.append(("bl added lstrip/rstrip/single_word", withadded))
    withadded_nfkc = Tokenizer.from_str(withadded.to_str())
    withadded_nfkc.normalizer = normalizers.NFKC()
    out.append(("bl added + NFKC (normalized added token)", withadded_nfkc))
    return out


def hf_folder(tok, bos, eos):
    """A tiny random Llama in an HF folder carrying tok as tokenizer.json (+ tokenizer_config.json):
    rotq must find the tokenizer through the model it loads."""
    import numpy as np
    from safetensors.numpy import save_file
    d = os.path.join(tmp.name, "hf-model")
    os.makedirs(d, exist_ok=True)
    vocab, hidden, inter = tok.get_vocab_size(), 16, 32
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
           "intermediate_size": inter, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
           "vocab_size": vocab, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "tie_word_embeddings": True, "torch_dtype": "float32"}
    rng = np.random.default_rng(0)
    w = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    p = "model.layers.0."
    tensors = {"model.embed_tokens.weight": w(vocab, hidden), "model.norm.weight": w(hidden),
               p + "input_layernorm.weight": w(hidden), p + "post_attention_layernorm.weight": w(hidden),
               p + "self_attn.q_proj.weight": w(hidden, hidden), p + "self_attn.k_proj.weight": w(hidden // 2, hidden),
               p + "self_attn.v_proj.weight": w(hidden // 2, hidden), p + "self_attn.o_proj.weight": w(hidden, hidden),
               p + "mlp.gate_proj.weight": w(inter, hidden), p + "mlp.up_proj.weight": w(inter, hidden),
               p + "mlp.down_proj.weight": w(hidden, inter)}
    save_file(tensors, os.path.join(d, "model.safetensors"))
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    open(os.path.join(d, "tokenizer.json"), "w").write(tok.to_str())
    json.dump({"bos_token": bos, "eos_token": {"content": eos, "special": True}, "add_bos_token": True},
              open(os.path.join(d, "tokenizer_config.json"), "w"))
    return d


def main():
    print("tokenizers", tokenizers.__version__)
    texts = [("stress", stress_text())]
    if os.path.exists(WIKI):
        with open(WIKI, "rb") as f:
            texts.append(("wikitext-2", f.read().decode("utf-8")))
    else:
        print("note: %s absent, WikiText-2 parts skipped" % WIKI)
    texts.append(("special-edges", "<|im_start|><|im_start|>x<|im_end|>\n\n<|endoftext|>"))
    texts.append(("empty", ""))
    ran = 0

    if os.path.exists(CALIB):
        t0 = time.time()
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        bl = train_bytelevel(CALIB, specials)
        print("trained byte-level BPE (%d tokens) in %.1f s" % (bl.get_vocab_size(), time.time() - t0))
        variants = [
            ("bpe smollm-style", bl),
            ("bpe llama3-style", with_pipeline(bl, None, {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}, True)),
            ("bpe qwen2-style NFC", with_pipeline(bl, {"type": "NFC"}, {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_RE}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]})),
            ("bpe gpt2 prefix-space", with_pipeline(bl, None, {"type": "ByteLevel", "add_prefix_space": True,
                                                               "trim_offsets": True, "use_regex": True})),
        ]
        for label, tok in variants:
            path = write(label.replace(" ", "_") + ".json", tok.to_str())
            # NFC changes the text and a prefix space adds to it: there decode gives back something else
            check_tokenizer(label, tok, texts, ["--tokenizer", path], decode_equals_text=label == "bpe smollm-style")
            ran += 1
        # the same tokenizer reached through an HF model folder, BOS/EOS from tokenizer_config.json
        folder = hf_folder(bl, "<|im_start|>", "<|im_end|>")
        text = stress_text()
        got, _, info = rotq([folder], text.encode("utf-8"))
        compare("HF folder / stress", bl.encode(text, add_special_tokens=False).ids, got)
        want_cfg = (bl.token_to_id("<|im_start|>"), bl.token_to_id("<|im_end|>"), True)
        if (info["bos"], info["eos"], info["add_bos_default"]) != want_cfg:
            failures.append("HF folder / tokenizer_config.json")
            print("FAIL HF folder: bos/eos/add_bos %s, tokenizer_config.json says %s" % (
                (info["bos"], info["eos"], info["add_bos_default"]), want_cfg))
        spm_tok = train_spm(CALIB, True)
        vtexts = [("stress", stress_text()), ("extra", EXTRA)]
        for label, tok in pipeline_variants(bl, spm_tok):
            path = write(label.replace(" ", "_").replace("/", "_") + ".json", tok.to_str())
            for tname, text in vtexts:
                got, _, _ = rotq(["--tokenizer", path], text.encode("utf-8"))
                compare("%s / %s" % (label, tname), tok.encode(text, add_special_tokens=False).ids, got, text, tok)
            ran += 1
        for metaspace in (True, False):
            label = "spm-bpe " + ("metaspace" if metaspace else "prepend+replace")
            tok = train_spm(CALIB, metaspace)
            path = write(label.replace(" ", "_") + ".json", tok.to_str())
            check_tokenizer(label, tok, texts, ["--tokenizer", path], decode_equals_text=False)
            ran += 1
    else:
        print("note: %s absent, trained tokenizers skipped" % CALIB)

    if os.path.exists(SMOL):
        tok, bos, eos = gguf_tokenizer_json(SMOL)
        # SmolLM2's vocabulary lacks a few control bytes (HF and rotq both drop them): decode ≠ text there
        check_tokenizer("SmolLM2 GGUF vocab", tok, texts, [SMOL], decode_equals_text=False)
        _, _, info = rotq([SMOL], b"x")
        if (info["bos"], info["eos"]) != (bos, eos):
            failures.append("SmolLM2 bos/eos")
            print("FAIL SmolLM2 bos/eos: rotq %s, GGUF %s" % ((info["bos"], info["eos"]), (bos, eos)))
        ran += 1
    else:
        print("note: %s absent (run scripts/fetch_model.sh): the SmolLM2 vocabulary part is skipped" % SMOL)

    if ran == 0:
        skip("neither the calibration text nor the SmolLM2 GGUF is available")
    if failures:
        print("%d failure(s): %s" % (len(failures), "; ".join(failures)))
        return 1
    print("all %d tokenizer comparisons passed" % ran)
    return 0


if __name__ == "__main__":
    sys.exit(main())
