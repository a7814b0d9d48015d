#!/usr/bin/env python3
"""Renders the JSON results of bench/results_quant.sh as the markdown table of docs/results.md.
usage: bench/results_table.py OUTDIR [TITLE]"""
import json
import os
import sys

out = sys.argv[1]
title = sys.argv[2] if len(sys.argv) > 2 else out


def load(name):
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def cmd(name):
    p = os.path.join(out, name + ".cmd")
    return open(p).read().strip() if os.path.exists(p) else None


base = load("baseline")
if base is None:
    sys.exit(f"{out}: no baseline.json")
print(f"### {title}\n")
print(f"Model `{base['model']}` ({base.get('dtype', '')}), text `{base['text']}` ({base['text_tokens']} tokens, "
      f"tokenizer {base['tokenizer']}), BOS {base['bos']}, windows of {base['ctx']} tokens: "
      f"{base['windows']} of {base['windows_available']} scored ({base['scored_tokens']} tokens).\n")
acts = [("w4a16", "A16 KV16"), ("w4a8kv8", "A8 KV8"), ("w4a4kv4", "A4 KV4")]
rows = [("none-rtn", "none", "RTN"), ("none-gptq", "none", "GPTQ"), ("rot-rtn", "QuaRot (R1–R4)", "RTN"),
        ("rot-gptq", "QuaRot (R1–R4)", "GPTQ")]
print("| weights | rotation | " + " | ".join(f"W4 {a}" for _, a in acts) + " | quantize time |")
print("|---|---|" + "---|" * len(acts) + "---|")
print(f"| float | none | {base['perplexity']:.3f} (float baseline, {base['seconds']:.0f} s) |" + " |" * (len(acts) - 1)
      + " — |")
calib = []
for key, rot, method in rows:
    q = load("quantize-" + key)
    if q is None:
        continue
    cells = []
    for a, _ in acts:
        e = load(f"eval-{key}-{a}")
        cells.append(f"{e['perplexity']:.3f} ({e['eval_seconds']:.0f} s)" if e else "—")
    qt = q.get("seconds", 0.0)
    if method == "GPTQ":
        calib.append((rot, q))
    print(f"| W4 {method} | {rot} | " + " | ".join(cells) + f" | {qt:.0f} s |")
print()
print("Perplexity (eval time in parentheses). Weights: symmetric per-channel 4-bit with the clip search; "
      "activations: symmetric per-token at every linear input (lm_head float), clip 0.9 at 4 bits; "
      "KV cache: asymmetric per head, clip 0.95 at 4 bits. "
      + ("GPTQ calibration: " + "; ".join(
          f"{q.get('calib_tokens', '?')} tokens, calibration forward {q.get('calib_seconds', 0):.0f} s and GPTQ "
          f"{q.get('rtn_or_gptq_seconds', 0):.0f} s (rotation {rot})" for rot, q in calib) + "." if calib else ""))
print("\nCommands:\n")
print("```")
for name in ["baseline"] + [f"{p}-{k}" for k, _, _ in rows for p in ["quantize"]] + \
        [f"eval-{k}-{a}" for k, _, _ in rows for a, _ in acts]:
    c = cmd(name)
    if c:
        print(c)
print("```")
