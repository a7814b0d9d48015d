"""Runs on the device machine (torch + transformers): loads each original and rotated folder with
AutoModelForCausalLM in float32 and compares (a) transformers' logits with rotq's on the same ids and
(b) transformers' logits of the rotated model with the original's. usage: check_hf.py DIR OUT.json"""
import json, os, sys
import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

d, out = sys.argv[1], sys.argv[2]
man = json.load(open(os.path.join(d, "manifest.json")))
ids = torch.tensor([man["ids"]])
res = {"torch": torch.__version__, "transformers": transformers.__version__, "cases": []}


def logits(path, row, key):
    m, info = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, output_loading_info=True)
    # a tensor transformers did not find would be initialised at random: record what it reported
    bad = {k: sorted(v) for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        row[key + "_loading"] = {k: [str(x) for x in v][:8] for k, v in bad.items()}
    m.eval()
    with torch.no_grad():
        return m(ids).logits[0].double().numpy()


for c in man["cases"]:
    row = {"name": c["name"]}
    try:
        lo = logits(os.path.join(d, c["original"]), row, "original")
        lr = logits(os.path.join(d, c["rotated"]), row, "rotated")
        V = lo.shape[-1]
        ro = np.fromfile(os.path.join(d, c["original"] + ".rotq_logits.f32"), dtype=np.float32).reshape(-1, V)
        rr = np.fromfile(os.path.join(d, c["rotated"] + ".rotq_logits.f32"), dtype=np.float32).reshape(-1, V)
        row.update(max_abs_logit=float(np.abs(lo).max()),
                   rotq_vs_hf_original=float(np.abs(ro - lo).max()),
                   rotq_vs_hf_rotated=float(np.abs(rr - lr).max()),
                   hf_rotated_vs_hf_original=float(np.abs(lr - lo).max()))
    except Exception as e:  # report, don't stop: every case is worth seeing
        row["error"] = f"{type(e).__name__}: {e}"
    res["cases"].append(row)
    print(row, flush=True)
json.dump(res, open(out, "w"), indent=1)
