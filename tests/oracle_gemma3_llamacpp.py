#!/usr/bin/env python3
"""Oracle: Gemma 3 270M (the real model, scripts/fetch_model.sh gemma3) against llama.cpp itself.

The Q4_K_M GGUF is converted to an F32 GGUF by `rotq convert`, so both run the very same float32
weights (llama.cpp would otherwise quantize its activations to 8 bits for the products); llama.cpp's
KV cache is F32. Stock llama.cpp computes GELU through a float16 lookup table (GGML_GELU_FP16 in
ggml-cpu/vec.h), which moves its logits by ~1e-3 relative; with that table off (a llama.cpp build
without the define, its libraries given in LLAMA_CPP_LIB_PATH and ROTQ_LLAMACPP_EXACT_GELU=1) the
two agree to ~2e-5. The bounds follow: 1e-4 exact, 3e-3 stock.

1. logits on 600 real tokens (past the 512-token sliding window of the local layers);
2. perplexity, llama.cpp's protocol (BOS at each window start, second half scored), 2 windows of
   1024 of WikiText-2 (or rotq's docs without ../shared), rebuilt here from llama.cpp's logits;
3. a rotated export runs in stock llama.cpp: R2 (fused into v_proj/o_proj) written as GGUF gives
   llama.cpp the same logits as the original.
Exit 77 when llama_cpp or the model is absent.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from oracle_nn_llamacpp import eval_text, load_llama, llama_logits, rotq, skip  # noqa: E402

MODELS = os.environ.get("ROTQ_MODELS", os.path.join(HERE, "..", "models"))
EXACT = os.environ.get("ROTQ_LLAMACPP_EXACT_GELU") == "1"
REL = 1e-4 if EXACT else 3e-3
CTX, WINDOWS = 1024, 2


def main():
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        skip("python module llama_cpp absent (pip install llama-cpp-python builds llama.cpp)")
    q4 = os.path.join(MODELS, "gemma-3-270m-q4_k_m.gguf")
    if not os.path.exists(q4):
        skip("%s absent (scripts/fetch_model.sh gemma3)" % q4)
    failures = []

    def check(ok, msg):
        print(("ok   " if ok else "FAIL ") + msg)
        if not ok:
            failures.append(msg)

    print("llama.cpp GELU: %s; relative bound %g" % ("exact (fp16 table off)" if EXACT else "stock (fp16 table)", REL))
    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "gemma3-f32.gguf")
        rotq("convert", q4, f32, "--dtype", "f32")
        llm = load_llama(f32, CTX)
        vocab = llm.n_vocab()
        wiki, text, text_name = eval_text(tmp)

        # 1. logits past the sliding window
        ids = llm.tokenize(text[:6000].encode(), add_bos=True, special=False)[:600]
        out = os.path.join(tmp, "logits.f32")
        rotq("ppl", f32, "--ids", ",".join(map(str, ids)), "--dump-logits", out, "--force", "--threads", "2")
        got = np.fromfile(out, dtype="<f4").reshape(len(ids), vocab).astype(np.float64)
        llm600 = load_llama(f32, 640)
        ref = llama_logits(llm600, ids)
        del llm600
        err = float(np.abs(got - ref).max())
        scale = float(np.abs(ref).max())
        check(err <= REL * scale and len(ids) == 600,
              "Gemma 3 F32 logits vs llama.cpp (%d tokens): max|dlogit| %.3g (max|logit| %.3g, rel %.2g), argmax agree %.4f"
              % (len(ids), err, scale, err / scale, float(np.mean(got.argmax(1) == ref.argmax(1)))))
        del got

        # 2. llama.cpp's perplexity protocol
        tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
        nll, count, first = 0.0, 0, CTX // 2
        for w in range(min(WINDOWS, len(tokens) // CTX)):
            win = list(tokens[w * CTX:(w + 1) * CTX])
            win[0] = llm.token_bos()
            lg = llama_logits(llm, win)
            for j in range(first, CTX - 1):
                row = lg[j]
                m = row.max()
                nll += m + np.log(np.exp(row - m).sum()) - row[win[j + 1]]
                count += 1
            del lg
        ref_ppl = float(np.exp(nll / count))
        res = json.loads(rotq("ppl", f32, "--text", wiki, "--ctx", str(CTX), "--protocol", "llama.cpp",
                              "--max-windows", str(WINDOWS), "--json", "--quiet", "--threads", "2"))
        rel = abs(res["perplexity"] - ref_ppl) / ref_ppl
        check(rel < REL and res["scored_tokens"] == count,
              "%s ppl, llama.cpp protocol, %d windows of %d: rotq %.5f (%d scored) vs llama.cpp %.5f (%d scored), rel %.2e"
              % (text_name, WINDOWS, CTX, res["perplexity"], res["scored_tokens"], ref_ppl, count, rel))

        # 3. a rotated GGUF in stock llama.cpp: same function
        rot = os.path.join(tmp, "gemma3-r2.gguf")
        rotq("rotate", f32, rot, "--r1", "none", "--r2", "random-hadamard", "--r3", "off", "--r4", "off", "--quiet")
        a = llama_logits(llm, ids[:256])
        del llm
        llr = load_llama(rot, CTX)
        b = llama_logits(llr, ids[:256])
        err = float(np.abs(a - b).max())
        check(err <= REL * float(np.abs(a).max()),
              "rotated (R2) GGUF in llama.cpp vs the original in llama.cpp (256 tokens): max|dlogit| %.3g (rel %.2g)"
              % (err, err / float(np.abs(a).max())))
    if failures:
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
