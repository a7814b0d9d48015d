#!/usr/bin/env python3
"""Oracle: rotq's forward pass and `--protocol llama.cpp` perplexity against llama.cpp itself.

llama.cpp comes from PyPI llama-cpp-python (it compiles llama.cpp; not in requirements-test.txt
because the build takes longer than the test budget allows: install it by hand). The SmolLM2
Q4_1 GGUF is converted to an F32 GGUF by `rotq convert`, so both run the very same float32
weights; llama.cpp's KV cache is set to F32 (its default F16 would round K and V).

1. logits on 64 real tokens: max |Δlogit| <= 2e-4 · max |logit| (llama.cpp computes in float32
   with its own summation order and exp/silu approximations).
2. perplexity on the start of WikiText-2 (--max-windows windows of 512): the windows, BOS
   replacement and second-half scoring of llama.cpp's perplexity tool, reimplemented here over
   llama.cpp's own tokenization and logits; rotq's number must be within 0.2% of it.
Exit 77 when llama_cpp or the model is absent; without ../shared the text is rotq's own docs.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROTQ = os.environ.get("ROTQ", "rotq")
SHARED = os.environ.get("ROTQ_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
MODELS = os.environ.get("ROTQ_MODELS", os.path.join(os.path.dirname(__file__), "..", "models"))
WINDOWS = int(os.environ.get("ROTQ_LLAMACPP_WINDOWS", "6"))
CTX = 512


def skip(why):
    print("skip: " + why)
    sys.exit(77)


def rotq(*args):
    r = subprocess.run([ROTQ] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("rotq %s failed: %s" % (" ".join(args), r.stderr[-2000:]))
    return r.stdout


def eval_text(tmp):
    """(path, text) to score: WikiText-2 test from ../shared, or, when that is absent (a fresh clone
    elsewhere), rotq's own README.md and docs/*.md as plain text, saying so."""
    wiki = os.path.join(SHARED, "data", "wikitext-2-raw", "wiki.test.raw")
    if os.path.exists(wiki):
        return wiki, wikitext_rows(wiki), "WikiText-2 test"
    src = os.environ.get("ROTQ_SOURCE", os.path.join(os.path.dirname(__file__), ".."))
    names = [os.path.join(src, "README.md")] + sorted(
        os.path.join(src, "docs", n) for n in os.listdir(os.path.join(src, "docs")) if n.endswith(".md"))
    text = "".join(open(n, encoding="utf-8").read() for n in names)
    path = os.path.join(tmp, "docs.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print("note: %s absent: scoring rotq's README.md and docs/*.md instead (%d bytes)" % (wiki, len(text)))
    return path, text, "rotq's docs"


def wikitext_rows(path):
    """The papers' reading (see rotq ppl --help): lines are rows ending in "\\n", joined by "\\n\\n"."""
    data = open(path, "rb").read().decode("utf-8")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    return "\n\n".join(r + "\n" if r else "" for r in rows)


def load_llama(path, n_ctx):
    import llama_cpp
    kw = dict(model_path=path, n_ctx=n_ctx, n_batch=n_ctx, n_threads=2, n_threads_batch=2, logits_all=True,
              verbose=False)
    try:
        return llama_cpp.Llama(type_k=0, type_v=0, **kw)  # GGML_TYPE_F32 KV cache
    except TypeError:
        return llama_cpp.Llama(**kw)


def llama_logits(llm, ids):
    llm.reset()
    llm.eval(list(ids))
    return np.array(llm.scores[:len(ids)], dtype=np.float64)


def main():
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        skip("python module llama_cpp absent (pip install llama-cpp-python builds llama.cpp)")
    q41 = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(q41):
        skip("%s absent (scripts/fetch_model.sh)" % q41)
    failures = []

    def check(ok, msg):
        print(("ok   " if ok else "FAIL ") + msg)
        if not ok:
            failures.append(msg)

    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "smollm2-f32.gguf")
        rotq("convert", q41, f32, "--dtype", "f32")
        llm = load_llama(f32, CTX)
        vocab = llm.n_vocab()

        # 1. logits on real text
        wiki, text, text_name = eval_text(tmp)
        ids = llm.tokenize(text[:2000].encode(), add_bos=False, special=False)[:64]
        out = os.path.join(tmp, "logits.f32")
        rotq("ppl", f32, "--ids", ",".join(map(str, ids)), "--dump-logits", out, "--force", "--threads", "2")
        got = np.fromfile(out, dtype="<f4").reshape(len(ids), vocab).astype(np.float64)
        ref = llama_logits(llm, ids)
        err = float(np.abs(got - ref).max())
        scale = float(np.abs(ref).max())
        check(err <= 2e-4 * scale, "SmolLM2 F32 logits vs llama.cpp (64 tokens): max|dlogit| %.3g (max|logit| %.3g, rel %.2g)"
              % (err, scale, err / scale))

        # 2. llama.cpp's perplexity protocol
        tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
        add_bos = tokens[0] == llm.token_bos() and len(llm.tokenize(b"a", add_bos=True)) == 2
        nll, count = 0.0, 0
        first = CTX // 2
        for w in range(min(WINDOWS, len(tokens) // CTX)):
            win = list(tokens[w * CTX:(w + 1) * CTX])
            if add_bos:
                win[0] = llm.token_bos()
            lg = llama_logits(llm, win)
            for j in range(first, CTX - 1):
                row = lg[j]
                m = row.max()
                nll += m + np.log(np.exp(row - m).sum()) - row[win[j + 1]]
                count += 1
        ref_ppl = float(np.exp(nll / count))
        res = json.loads(rotq("ppl", f32, "--text", wiki, "--ctx", str(CTX), "--protocol", "llama.cpp",
                              "--max-windows", str(WINDOWS), "--json", "--quiet", "--threads", "2"))
        rel = abs(res["perplexity"] - ref_ppl) / ref_ppl
        check(rel < 0.002 and res["scored_tokens"] == count,
              "%s ppl, llama.cpp protocol, %d windows of %d: rotq %.4f (%d scored, %d text tokens) vs "
              "llama.cpp %.4f (%d scored, %d tokens incl. BOS=%s), rel %.2e"
              % (text_name, WINDOWS, CTX, res["perplexity"], res["scored_tokens"], res["text_tokens"], ref_ppl, count,
                 len(tokens), add_bos, rel))
    if failures:
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
