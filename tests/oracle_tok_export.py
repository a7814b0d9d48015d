#!/usr/bin/env python3
"""Tokenizers carried across formats by `rotq convert`, checked against the other formats' own libraries.

(a) SmolLM2 GGUF -> HF folder: the tokenizer.json rotq writes, loaded by PyPI `tokenizers`, gives ids
    identical to rotq's tokenization of the GGUF (WikiText-2, the Unicode stress text, special tokens);
    tokenizer_config.json names the GGUF's BOS/EOS.
(b) that HF folder -> GGUF: the tokenizer.ggml.* keys (tokens, token types, merges, pre, BOS/EOS/UNK/PAD,
    add_bos) equal the original GGUF's, read with the `gguf` package; llama-cpp-python loads the file and
    tokenizes identically to rotq on the original.
(c) tinystories-260k (llama2.c) -> GGUF: tokens/scores/types as read independently from tokenizer.bin;
    llama-cpp-python loads it and tokenizes the TinyStories excerpt as rotq does the llama2.c model; that
    GGUF -> HF folder tokenizes the same in `tokenizers`.
(d) tinystories-260k -> HF folder: `tokenizers` gives rotq's llama2.c ids; and that folder -> GGUF (scores
    derived from the written merges) still tokenizes as llama.cpp does.
(e) tokenizer.json files trained here on the calibration text behind other pipelines (GPT-2, Llama-3 with
    ignore_merges, Qwen2, SentencePiece-style BPE with byte fallback in Llama-2's layout) in tiny random
    HF folders -> GGUF: the pre-tokenizer name llama.cpp needs is found from the regexes, and
    llama-cpp-python tokenizes as `tokenizers` does.
Parts whose inputs or packages are absent are skipped with a message.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "fixtures", "tok"))
from stress_text import stress_text  # noqa: E402

ROTQ = os.environ.get("ROTQ")
SHARED = os.environ.get("ROTQ_SHARED", os.path.join(HERE, "..", "..", "shared"))
MODELS = os.environ.get("ROTQ_MODELS", os.path.join(HERE, "..", "models"))
SMOL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
WIKI = os.path.join(SHARED, "data", "wikitext-2-raw", "wiki.test.raw")
TS_DIR = os.path.join(SHARED, "models", "tinystories-260k")
TS_MODEL = os.path.join(TS_DIR, "model.bin")
TS_TOK = os.path.join(TS_DIR, "tokenizer.bin")
TS_TEXT = os.path.join(SHARED, "data", "tinystories", "valid-excerpt.txt")
CALIB = os.path.join(SHARED, "data", "calibration", "austen-pride-and-prejudice.txt")

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = LLAMA3_RE.replace(r"\p{N}{1,3}", r"\p{N}")

failures = []
tmp = tempfile.TemporaryDirectory(prefix="rotq-tokexp-")


def run(args):
    r = subprocess.run([ROTQ] + args, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("rotq %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr.decode(errors="replace")))
    return r


def convert(src, dst, to):
    r = run(["convert", src, dst, "--to", to, "--dtype", "f16"])
    err = r.stderr.decode(errors="replace")
    if "warning" in err:
        print("     rotq convert said: %s" % err.strip().replace("\n", "\n     "))
        failures.append("convert %s -> %s warned" % (os.path.basename(src), to))


def rotq_ids(model, text):
    path = os.path.join(tmp.name, "text.txt")
    with open(path, "wb") as f:
        f.write(text.encode("utf-8"))
    return json.loads(run(["tokenize", model, "--text", path, "--json"]).stdout)["ids"]


def compare(label, want, got):
    if want == got:
        print("ok   %-62s %7d ids" % (label, len(want)))
        return
    i = next((k for k in range(min(len(want), len(got))) if want[k] != got[k]), min(len(want), len(got)))
    print("FAIL %s: %d vs %d ids, first difference at %d: want %s got %s" % (
        label, len(want), len(got), i, want[max(0, i - 3):i + 5], got[max(0, i - 3):i + 5]))
    failures.append(label)


def check(label, want, got):
    if want == got:
        print("ok   %s" % label)
    else:
        print("FAIL %s: want %r got %r" % (label, want if len(repr(want)) < 300 else repr(want)[:300] + "...",
                                          got if len(repr(got)) < 300 else repr(got)[:300] + "..."))
        failures.append(label)


def gguf_tokenizer_keys(path):
    """tokenizer.* keys of a GGUF as plain Python values (the `gguf` package's reader)."""
    import gguf
    r = gguf.GGUFReader(path)
    out = {}
    for name, f in r.fields.items():
        if not name.startswith("tokenizer."):
            continue
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            if f.types[1] == gguf.GGUFValueType.STRING:
                out[name] = [bytes(f.parts[i]).decode("utf-8", errors="surrogateescape") for i in f.data]
            else:
                out[name] = [f.parts[i].tolist()[0] for i in f.data]
        elif f.types[0] == gguf.GGUFValueType.STRING:
            out[name] = bytes(f.parts[f.data[0]]).decode("utf-8")
        else:
            out[name] = f.parts[f.data[0]].tolist()[0]
    return out


def llama_vocab(path):
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    return Llama(model_path=path, vocab_only=True, verbose=False)


def part_smollm(texts):
    from tokenizers import Tokenizer
    hf = os.path.join(tmp.name, "smol-hf")
    convert(SMOL, hf, "hf")
    tok = Tokenizer.from_file(os.path.join(hf, "tokenizer.json"))
    orig = gguf_tokenizer_keys(SMOL)
    want_ids = {}
    for name, text in texts:
        want_ids[name] = rotq_ids(SMOL, text)
        compare("(a) SmolLM2 GGUF->HF: tokenizers / %s" % name, want_ids[name], tok.encode(text, add_special_tokens=False).ids)
    compare("(a) SmolLM2 GGUF->HF: rotq on the folder / stress", want_ids["stress"], rotq_ids(hf, stress_text()))
    cfg = json.load(open(os.path.join(hf, "tokenizer_config.json")))
    toks = orig["tokenizer.ggml.tokens"]
    check("(a) tokenizer_config.json bos/eos/add_bos = GGUF's",
          (toks[orig["tokenizer.ggml.bos_token_id"]], toks[orig["tokenizer.ggml.eos_token_id"]],
           orig.get("tokenizer.ggml.add_bos_token", False)),
          (cfg.get("bos_token"), cfg.get("eos_token"), cfg.get("add_bos_token")))
    check("(a) chat template carried", orig.get("tokenizer.chat_template"), cfg.get("chat_template"))

    out = os.path.join(tmp.name, "smol-back.gguf")
    convert(hf, out, "gguf")
    back = gguf_tokenizer_keys(out)
    for key in ("model", "pre", "tokens", "token_type", "merges", "bos_token_id", "eos_token_id", "unknown_token_id",
                "padding_token_id", "add_bos_token"):
        k = "tokenizer.ggml." + key
        got = back.get(k)
        want = orig.get(k)
        if isinstance(want, list):
            label = "(b) HF->GGUF %s (%d entries)" % (k, len(want))
        else:
            label = "(b) HF->GGUF %s = %r" % (k, want)
        check(label, want, got)
    check("(b) HF->GGUF tokenizer.chat_template", orig.get("tokenizer.chat_template"), back.get("tokenizer.chat_template"))
    llm = llama_vocab(out)
    if llm is None:
        print("skip (b) llama.cpp part: llama-cpp-python is not installed")
        return
    for name, text in texts:
        compare("(b) llama.cpp on HF->GGUF / %s" % name, want_ids[name],
                llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def read_tokenizer_bin(path):
    data = open(path, "rb").read()
    pos, pieces, scores = 4, [], []
    while pos < len(data):
        score, length = struct.unpack_from("<fi", data, pos)
        pieces.append(data[pos + 8:pos + 8 + length])
        scores.append(score)
        pos += 8 + length
    return pieces, scores


def part_tinystories(texts):
    pieces, scores = read_tokenizer_bin(TS_TOK)
    out = os.path.join(tmp.name, "ts.gguf")
    convert(TS_MODEL, out, "gguf")
    keys = gguf_tokenizer_keys(out)
    # llama.cpp's vocabulary conventions for a SentencePiece model, from the file itself
    want_tokens, want_types = [], []
    for i, p in enumerate(pieces):
        if i == 0:
            want_tokens.append("<unk>"); want_types.append(2)
        elif i in (1, 2):
            want_tokens.append(p.decode().strip("\n")); want_types.append(3)
        elif len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            want_tokens.append(p.decode()); want_types.append(6)
        else:
            want_tokens.append(p.decode("utf-8").replace(" ", "\u2581")); want_types.append(1)
    check("(c) llama2.c->GGUF tokenizer.ggml.model", "llama", keys.get("tokenizer.ggml.model"))
    check("(c) llama2.c->GGUF tokens (%d)" % len(pieces), want_tokens, keys.get("tokenizer.ggml.tokens"))
    check("(c) llama2.c->GGUF token types", want_types, keys.get("tokenizer.ggml.token_type"))
    check("(c) llama2.c->GGUF scores", scores, keys.get("tokenizer.ggml.scores"))
    check("(c) llama2.c->GGUF bos/eos/unk/add_bos", (1, 2, 0, True),
          tuple(keys.get("tokenizer.ggml." + k) for k in ("bos_token_id", "eos_token_id", "unknown_token_id", "add_bos_token")))
    # llama2.c reads "<s>" in raw text as plain characters; GGUF/HF vocabularies (llama.cpp with
    # parse_special, tokenizers) cut control tokens out. Texts holding one compare with rotq on the GGUF.
    want_ids = {}
    for name, text in texts:
        has_control = any(c in text for c in ("<unk>", "<s>", "</s>"))
        want_ids[name] = rotq_ids(out if has_control else TS_MODEL, text)
        if has_control:
            print("     %s holds <s>/</s>/<unk>: reference is rotq on the written GGUF" % name)
    llm = llama_vocab(out)
    if llm is None:
        print("skip (c) llama.cpp part: llama-cpp-python is not installed")
    else:
        for name, text in texts:
            compare("(c) llama.cpp on llama2.c->GGUF / %s" % name, want_ids[name],
                    llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    from tokenizers import Tokenizer
    # a GGUF "llama" (SentencePiece) vocabulary -> HF: merges derived from the scores
    hf_from_gguf = os.path.join(tmp.name, "ts-gguf-hf")
    convert(out, hf_from_gguf, "hf")
    tok = Tokenizer.from_file(os.path.join(hf_from_gguf, "tokenizer.json"))
    for name, text in texts:
        compare("(c) llama2.c->GGUF->HF: tokenizers / %s" % name, want_ids[name], tok.encode(text, add_special_tokens=False).ids)

    hf = os.path.join(tmp.name, "ts-hf")
    convert(TS_MODEL, hf, "hf")
    tok = Tokenizer.from_file(os.path.join(hf, "tokenizer.json"))
    for name, text in texts:
        compare("(d) llama2.c->HF: tokenizers / %s" % name, want_ids[name], tok.encode(text, add_special_tokens=False).ids)
    compare("(d) llama2.c->HF: tokenizers with BOS / %s" % texts[0][0], [1] + want_ids[texts[0][0]],
            tok.encode(texts[0][1]).ids)
    dec = tok.decode(want_ids[texts[0][0]])
    check("(d) llama2.c->HF: tokenizers decodes the excerpt back", texts[0][1], dec)
    back = os.path.join(tmp.name, "ts-back.gguf")
    convert(hf, back, "gguf")
    keys2 = gguf_tokenizer_keys(back)
    check("(d) HF->GGUF keeps tokens and types", (want_tokens, want_types),
          (keys2.get("tokenizer.ggml.tokens"), keys2.get("tokenizer.ggml.token_type")))
    if llm is not None:
        llm2 = llama_vocab(back)
        for name, text in texts:
            compare("(d) llama.cpp on llama2.c->HF->GGUF / %s" % name, want_ids[name],
                    llm2.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def hf_folder(name, tok_json, tok_config):
    """A tiny random Llama in an HF folder carrying the given tokenizer files."""
    import numpy as np
    from safetensors.numpy import save_file
    d = os.path.join(tmp.name, name)
    os.makedirs(d)
    vocab, hidden, inter = len(json.loads(tok_json)["model"]["vocab"]), 16, 32
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
           "intermediate_size": inter, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
           "vocab_size": vocab, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "tie_word_embeddings": True, "torch_dtype": "float32"}
    rng = np.random.default_rng(0)
    w = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    p = "model.layers.0."
    tensors = {"model.embed_tokens.weight": w(vocab, hidden), "model.norm.weight": w(hidden),
               p + "input_layernorm.weight": w(hidden), p + "post_attention_layernorm.weight": w(hidden),
               p + "self_attn.q_proj.weight": w(hidden, hidden), p + "self_attn.k_proj.weight": w(hidden // 2, hidden),
               p + "self_attn.v_proj.weight": w(hidden // 2, hidden), p + "self_attn.o_proj.weight": w(hidden, hidden),
               p + "mlp.gate_proj.weight": w(inter, hidden), p + "mlp.up_proj.weight": w(inter, hidden),
               p + "mlp.down_proj.weight": w(hidden, inter)}
    save_file(tensors, os.path.join(d, "model.safetensors"))
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    open(os.path.join(d, "tokenizer.json"), "w").write(tok_json)
    json.dump(tok_config, open(os.path.join(d, "tokenizer_config.json"), "w"))
    return d


def trained_variants():
    """(label, tokenizer.json text, tokenizer_config, expected tokenizer.ggml.pre or None for "llama")."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bl_cfg = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "add_bos_token": False}

    def train_bytelevel(pre, ignore_merges=False):
        """Trained behind its own pre-tokenizer, so that its merges depend on how that one splits."""
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre
        tok.decoder = decoders.ByteLevel()
        tok.train([CALIB], trainers.BpeTrainer(vocab_size=2500, special_tokens=specials, show_progress=False,
                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        j = json.loads(tok.to_str())
        j["model"]["ignore_merges"] = ignore_merges
        return json.dumps(j)

    def split_bl(regex):
        return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(regex), "isolated"),
                                        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])

    out = [("gpt2 ByteLevel regex", train_bytelevel(pre_tokenizers.ByteLevel(add_prefix_space=False)), bl_cfg, "gpt-2"),
           ("llama3-style split + ignore_merges", train_bytelevel(split_bl(LLAMA3_RE), True), bl_cfg, "llama-bpe"),
           ("qwen2-style split", train_bytelevel(split_bl(QWEN2_RE)), bl_cfg, "qwen2")]

    # SentencePiece-style BPE as Llama-2's tokenizer.json has it: merges are every split of a piece into two
    # pieces ordered by the piece's rank (HF's LlamaConverter), byte-fallback pieces in the vocabulary
    spm = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    spm.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    spm.train([CALIB], trainers.BpeTrainer(vocab_size=1500, special_tokens=["<unk>", "<s>", "</s>"],
                                           limit_alphabet=100, show_progress=False))
    j = json.loads(spm.to_str())
    trained = sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1])
    pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + [
        t for t, _ in trained if t not in ("<unk>", "<s>", "</s>")]
    vocab = {t: i for i, t in enumerate(pieces)}
    merges = []
    for t, i in vocab.items():
        if i < 259:
            continue
        for k in range(1, len(t)):
            if t[:k] in vocab and t[k:] in vocab and vocab[t[:k]] >= 259 and vocab[t[k:]] >= 259:
                merges.append((i, vocab[t[:k]], vocab[t[k:]], t[:k], t[k:]))
    merges.sort()
    j["model"]["vocab"] = vocab
    j["model"]["merges"] = [[a, b] for _, _, _, a, b in merges]
    j["added_tokens"] = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, t in enumerate(pieces[:3])]
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    out.append(("spm-bpe llama-2 layout", json.dumps(j),
                {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True}, None))
    return out


def part_trained(texts):
    from tokenizers import Tokenizer
    llama_ok = llama_vocab(SMOL) is not None if os.path.exists(SMOL) else True
    for k, (label, tok_json, tok_cfg, want_pre) in enumerate(trained_variants()):
        tok = Tokenizer.from_str(tok_json)
        folder = hf_folder("trained-%d" % k, tok_json, tok_cfg)
        out = os.path.join(tmp.name, "trained-%d.gguf" % k)
        convert(folder, out, "gguf")
        keys = gguf_tokenizer_keys(out)
        got_kind = (keys.get("tokenizer.ggml.model"), keys.get("tokenizer.ggml.pre"))
        check("(e) %s: model/pre" % label, ("llama", None) if want_pre is None else ("gpt2", want_pre), got_kind)
        ids_of = lambda name: tok.token_to_id(tok_cfg[name]) if name in tok_cfg else None  # noqa: E731
        check("(e) %s: bos/eos/add_bos" % label, (ids_of("bos_token"), ids_of("eos_token"), tok_cfg["add_bos_token"]),
              tuple(keys.get("tokenizer.ggml." + n) for n in ("bos_token_id", "eos_token_id", "add_bos_token")))
        if not llama_ok:
            continue
        llm = llama_vocab(out)
        if llm is None:
            print("skip (e) llama.cpp part: llama-cpp-python is not installed")
            llama_ok = False
            continue
        for name, text in texts:
            compare("(e) %s: llama.cpp = tokenizers / %s" % (label, name), tok.encode(text, add_special_tokens=False).ids,
                    llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def main():
    try:
        import tokenizers  # noqa: F401
        import gguf  # noqa: F401
    except ImportError as e:
        print("SKIP: %s (scripts/requirements-test.txt)" % e)
        return 77
    if not ROTQ or not os.path.exists(ROTQ):
        print("SKIP: ROTQ (path of the rotq binary) is not set")
        return 77
    ran = 0
    texts = [("stress", stress_text()), ("special-edges", "<|im_start|><|im_start|>x<|im_end|>\n\n<|endoftext|> a")]
    if os.path.exists(WIKI):
        texts.append(("wikitext-2", open(WIKI, "rb").read().decode("utf-8")))
    else:
        print("note: %s absent, WikiText-2 texts skipped" % WIKI)
    if os.path.exists(SMOL):
        part_smollm(texts)
        ran += 1
    else:
        print("skip (a)/(b): %s absent (run scripts/fetch_model.sh)" % SMOL)
    if os.path.exists(TS_MODEL) and os.path.exists(TS_TOK) and os.path.exists(TS_TEXT):
        ts_texts = [("tinystories", open(TS_TEXT, "rb").read().decode("utf-8")), ("stress", stress_text())]
        if os.path.exists(WIKI):
            ts_texts.append(("wikitext-2 50 KB", open(WIKI, "rb").read()[:50000].decode("utf-8", errors="ignore")))
        part_tinystories(ts_texts)
        ran += 1
    else:
        print("skip (c)/(d): tinystories-260k or its text is absent under %s" % SHARED)
    if os.path.exists(CALIB):
        part_trained([t for t in texts if t[0] != "special-edges"])
        ran += 1
    else:
        print("skip (e): %s absent" % CALIB)
    if not ran:
        print("SKIP: neither the SmolLM2 GGUF nor tinystories-260k is available")
        return 77
    if failures:
        print("%d failure(s): %s" % (len(failures), "; ".join(failures)))
        return 1
    print("all tokenizer export checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
