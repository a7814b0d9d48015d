#!/usr/bin/env python3
"""rotq's GGUF tokenizer against llama.cpp itself (PyPI `llama-cpp-python`), id for id.

Optional: llama-cpp-python builds llama.cpp from source when pip installs it (minutes), so it is not
in scripts/requirements-test.txt; without it this test skips. Texts: the whole WikiText-2 test file
and the Unicode stress text, tokenized with parse_special on and no BOS, on SmolLM2-135M's GGUF (BPE)
and on Gemma 3 270M's (SentencePiece, 262144 pieces, byte fallback; skipped when it is not fetched).
"""
import json
import os
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
GEMMA = os.path.join(MODELS, "gemma-3-270m-q4_k_m.gguf")


def main():
    try:
        from llama_cpp import Llama
    except ImportError:
        print("SKIP: llama-cpp-python is not installed (pip install llama-cpp-python; it builds llama.cpp)")
        return 77
    if not ROTQ or not os.path.exists(ROTQ):
        print("SKIP: ROTQ (path of the rotq binary) is not set")
        return 77
    if not os.path.exists(SMOL):
        print("SKIP: %s is absent (run scripts/fetch_model.sh)" % SMOL)
        return 77
    texts = [("stress", stress_text().encode("utf-8"))]
    wiki = os.path.join(SHARED, "data", "wikitext-2-raw", "wiki.test.raw")
    if os.path.exists(wiki):
        texts.append(("wikitext-2", open(wiki, "rb").read()))
    models = [("SmolLM2", SMOL)]
    if os.path.exists(GEMMA):
        models.append(("Gemma3", GEMMA))
    else:
        print("note: %s absent (scripts/fetch_model.sh gemma3): Gemma 3's tokenizer not checked" % GEMMA)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="rotq-tok-") as tmp:
        path = os.path.join(tmp, "t.txt")
        for (mname, model), (tname, text) in [(m, t) for m in models for t in texts]:
            name = "%s %s" % (mname, tname)
            llm = Llama(model_path=model, vocab_only=True, verbose=False)
            want = llm.tokenize(text, add_bos=False, special=True)
            open(path, "wb").write(text)
            r = subprocess.run([ROTQ, "tokenize", model, "--text", path, "--json"], capture_output=True)
            if r.returncode != 0:
                print("FAIL %s: rotq failed: %s" % (name, r.stderr.decode(errors="replace")))
                failures += 1
                continue
            got = json.loads(r.stdout)["ids"]
            if got != want:
                i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want)))
                print("FAIL %s: %d vs %d ids, first difference at %d: want %s got %s" % (
                    name, len(want), len(got), i, want[max(0, i - 3):i + 5], got[max(0, i - 3):i + 5]))
                failures += 1
            else:
                print("ok   %-20s %7d ids identical to llama.cpp" % (name, len(got)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
