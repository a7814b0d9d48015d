# Issue 14, first data point (usage: .venv/bin/python bench/q4_0_vs_llamacpp.py [WINDOWS] [WORKDIR]): Q4_0 linears (embeddings and output kept F32 on both sides),
# in llama.cpp, WikiText-2 test, llama.cpp's protocol (windows of 512, BOS first, second half scored).
import ctypes, os, subprocess, sys
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests"))
import numpy as np
import llama_cpp
from oracle_nn_llamacpp import llama_logits, load_llama, wikitext_rows
R = os.environ.get("ROTQ", os.path.join(ROOT, "build", "rotq")); S = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
W = int(sys.argv[1]) if len(sys.argv) > 1 else 40
d = sys.argv[2] if len(sys.argv) > 2 else "/tmp/rotq-q4_0-cmp"
os.makedirs(d, exist_ok=True)
F32_GLOBALS = ["--embedding-type", "f32", "--output-type", "f32"]  # linears only, as the llama.cpp file here
def run(*a): subprocess.run([R, *a, "--force"], check=True, capture_output=True)
run("convert", S, f"{d}/f32.gguf", "--dtype", "f32")
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = 2  # LLAMA_FTYPE_MOSTLY_Q4_0
p.token_embedding_type = 0; p.output_tensor_type = 0  # GGML_TYPE_F32
assert llama_cpp.llama_model_quantize(f"{d}/f32.gguf".encode(), f"{d}/llamacpp-q4_0.gguf".encode(), ctypes.byref(p)) == 0
run("quantize", S, f"{d}/rotq-rtn-norot.gguf", "--format", "gguf:Q4_0", *F32_GLOBALS, "--dtype", "f32", "--quiet")
run("quantize", S, f"{d}/rotq-rtn-rot.gguf", "--format", "gguf:Q4_0", *F32_GLOBALS, "--rotate", "--dtype", "f32", "--quiet")
text = wikitext_rows(os.path.join(ROOT, "..", "shared", "data", "wikitext-2-raw", "wiki.test.raw"))
for name in ["f32", "llamacpp-q4_0", "rotq-rtn-norot", "rotq-rtn-rot"]:
    path = f"{d}/{name}.gguf"
    llm = load_llama(path, 512)
    toks = llm.tokenize(text.encode(), add_bos=True)
    nll = cnt = 0
    for w in range(W):
        win = list(toks[w * 512:(w + 1) * 512]); win[0] = llm.token_bos()
        lg = llama_logits(llm, win)
        for j in range(256, 511):
            row = lg[j]; m = row.max(); nll += m + np.log(np.exp(row - m).sum()) - row[win[j + 1]]; cnt += 1
    print(f"{name:16s} size {os.path.getsize(path)/2**20:7.1f} MiB  ppl {np.exp(nll/cnt):.4f}  ({W} windows of 512, {cnt} scored)", flush=True)
