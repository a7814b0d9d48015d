"""External tools agree: the fused-only rotated SmolLM2 (norm fusion + R1 + R2, exported as an F32
GGUF with llama.cpp's Q/K permutation re-applied) gives llama.cpp the same perplexity as the
original F32 GGUF within 0.1%, under llama.cpp's own perplexity protocol (windows of 512, BOS at
each window start, second half scored), with llama.cpp's tokenization. Exit 77 without llama_cpp or
the model; without ../shared the text is rotq's own docs."""
import os, subprocess, sys, tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from oracle_nn_llamacpp import eval_text, load_llama, llama_logits  # noqa: E402

ROTQ = os.environ.get("ROTQ", "rotq")
SHARED = os.environ.get("ROTQ_SHARED", "../shared")
MODELS = os.environ.get("ROTQ_MODELS", "models")
WINDOWS = int(os.environ.get("ROTQ_LLAMACPP_WINDOWS", "4"))
CTX = 512


def skip(why):
    print("skip: " + why)
    sys.exit(77)


def llama_cpp_ppl(path, text):
    llm = load_llama(path, CTX)
    tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
    bos = llm.token_bos()
    nll, count = 0.0, 0
    for w in range(min(WINDOWS, len(tokens) // CTX)):
        win = list(tokens[w * CTX:(w + 1) * CTX])
        win[0] = bos
        lg = llama_logits(llm, win)
        for j in range(CTX // 2, CTX - 1):
            row = lg[j]
            m = row.max()
            nll += m + np.log(np.exp(row - m).sum()) - row[win[j + 1]]
            count += 1
    return float(np.exp(nll / count)), count


try:
    import llama_cpp  # noqa: F401
except ImportError:
    skip("python module llama_cpp absent (pip install llama-cpp-python builds llama.cpp)")
q41 = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
if not os.path.exists(q41):
    skip(f"{q41} is absent")
with tempfile.TemporaryDirectory() as tmp:
    text = eval_text(tmp)[1][:200000]
    orig, rot = os.path.join(tmp, "orig.gguf"), os.path.join(tmp, "rotated.gguf")
    for args in (["convert", q41, orig, "--dtype", "f32"],
                 ["rotate", q41, rot, "--r3", "off", "--r4", "off", "--dtype", "f32", "--seed", "1", "--quiet"]):
        p = subprocess.run([ROTQ, *args], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"FAIL rotq {' '.join(args)}: {p.stderr}")
            sys.exit(1)
    ppl_o, n = llama_cpp_ppl(orig, text)
    ppl_r, _ = llama_cpp_ppl(rot, text)
rel = abs(ppl_r - ppl_o) / ppl_o
ok = rel < 1e-3
print(f"{'ok  ' if ok else 'FAIL'} llama.cpp perplexity over {n} scored tokens: original {ppl_o:.4f}, rotated {ppl_r:.4f} (rel diff {rel:.2e})")
sys.exit(0 if ok else 1)
