#!/usr/bin/env python3
"""Perplexity throughput: rotq vs llama.cpp on the same F32 weights, same machine, same run.

    python3 bench/bench_ppl.py [--rotq build/rotq] [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
                               [--ctx 512,2048] [--windows 4] [--threads 2]

The Q4_1 GGUF is converted once to F32 (`rotq convert --dtype f32`); both engines then read that
file. Each engine runs in its own process (peak RSS is that process's), on the first --windows
non-overlapping windows of WikiText-2 test (papers protocol, no BOS), and the two alternate per
context length so that machine load hits both alike.
  rotq:      `rotq ppl --json`: its time covers the forward, lm_head on every row and the
             log-softmax scoring.
  llama.cpp: llama-cpp-python, n_batch = ctx, n_ubatch = 512 (llama.cpp's defaults for its
             perplexity tool), F32 KV cache, logits for every row; only llm.eval() is timed (the
             scoring is done afterwards in numpy, outside the clock).
Prints a markdown table (tokens/s, ratio, peak RSS, perplexity of the same windows).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

LLAMA_CHILD = r'''
import json, resource, sys, time
import numpy as np
import llama_cpp
path, text_path, ctx, windows, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = open(text_path, "rb").read().decode("utf-8").split("\n")
if data and data[-1] == "":
    data.pop()
text = "\n\n".join((r[:-1] if r.endswith("\r") else r) + "\n" for r in data)
kw = dict(model_path=path, n_ctx=ctx, n_batch=ctx, n_ubatch=min(512, ctx), n_threads=threads,
          n_threads_batch=threads, logits_all=True, verbose=False)
try:
    llm = llama_cpp.Llama(type_k=0, type_v=0, **kw)
except TypeError:
    llm = llama_cpp.Llama(**kw)
ids = llm.tokenize(text.encode(), add_bos=False, special=False)
seconds, nll, n = 0.0, 0.0, 0
for w in range(windows):
    win = ids[w * ctx:(w + 1) * ctx]
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(win)
    seconds += time.perf_counter() - t0
    lg = np.asarray(llm.scores[:ctx], dtype=np.float64)
    m = lg[:-1].max(-1)
    lse = m + np.log(np.exp(lg[:-1] - m[:, None]).sum(-1))
    nll += float((lse - lg[np.arange(ctx - 1), win[1:]]).sum())
    n += ctx - 1
print(json.dumps({"seconds": seconds, "tokens": windows * ctx, "ppl": float(np.exp(nll / n)),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rotq", default=os.path.join(ROOT, "build", "rotq"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--f32", default=None, help="F32 GGUF to use (default: converted into a temporary folder)")
    ap.add_argument("--text", default=os.path.join(ROOT, "..", "shared", "data", "wikitext-2-raw", "wiki.test.raw"))
    ap.add_argument("--ctx", default="512,2048")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-llamacpp", action="store_true")
    a = ap.parse_args()

    have_llama = not a.skip_llamacpp
    if have_llama:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            print("llama_cpp (PyPI llama-cpp-python) absent: rotq only", file=sys.stderr)
            have_llama = False

    with tempfile.TemporaryDirectory() as tmp:
        f32 = a.f32
        if not f32:
            f32 = os.path.join(tmp, "model-f32.gguf")
            subprocess.run([a.rotq, "convert", a.model, f32, "--dtype", "f32"], check=True, capture_output=True)
        rows = []
        for ctx in [int(c) for c in a.ctx.split(",")]:
            r = subprocess.run([a.rotq, "ppl", f32, "--text", a.text, "--ctx", str(ctx), "--bos", "none",
                                "--max-windows", str(a.windows), "--threads", str(a.threads), "--json", "--quiet"],
                               check=True, capture_output=True, text=True)
            rq = json.loads(r.stdout)
            row = {"ctx": ctx, "rotq_tps": rq["tokens_per_second"], "rotq_rss": rq["peak_rss_mib"],
                   "rotq_ppl": rq["perplexity"], "tokens": rq["windows"] * ctx}
            if have_llama:
                r = subprocess.run([sys.executable, "-c", LLAMA_CHILD, f32, a.text, str(ctx), str(a.windows),
                                    str(a.threads)], check=True, capture_output=True, text=True)
                lc = json.loads(r.stdout.strip().splitlines()[-1])
                row.update(llama_tps=lc["tokens"] / lc["seconds"], llama_rss=lc["peak_rss_mib"], llama_ppl=lc["ppl"])
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)

    print("| ctx | tokens | rotq tok/s | llama.cpp tok/s | rotq / llama.cpp | rotq peak RSS | llama.cpp peak RSS "
          "| ppl rotq | ppl llama.cpp |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "llama_tps" in r:
            print("| %d | %d | %.1f | %.1f | %.2f× | %.0f MiB | %.0f MiB | %.4f | %.4f |"
                  % (r["ctx"], r["tokens"], r["rotq_tps"], r["llama_tps"], r["rotq_tps"] / r["llama_tps"],
                     r["rotq_rss"], r["llama_rss"], r["rotq_ppl"], r["llama_ppl"]))
        else:
            print("| %d | %d | %.1f | – | – | %.0f MiB | – | %.4f | – |"
                  % (r["ctx"], r["tokens"], r["rotq_tps"], r["rotq_rss"], r["rotq_ppl"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
