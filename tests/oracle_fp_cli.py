"""Float formats and block rotations through the command line, on tinystories-260k (or, when ../shared
is absent, a random llama2.c model and a generated text):
 - `--compare-rotations none,full,block:4` gives, row by row, exactly what separate `rotq eval` runs with
   the same rotation give (none; --rotate; --rotate --r1-block 4 --r4-block 4), and its baseline is
   `rotq ppl`'s;
 - with nothing quantized, every rotation of the comparison (block-diagonal ones included) keeps the
   float perplexity (computational invariance, through the CLI);
 - layerwise rotations at every site (lm_head's unties the tied embedding) keep the float perplexity;
 - `--w-dtype nvfp4 --w-clip --a-dtype nvfp4 --kv-dtype nvfp4` is the nvfp4 preset;
 - `rotq quantize --w-dtype mxfp4` writes a checkpoint that scores exactly what `eval --w-dtype mxfp4`
   scores with the weights quantized in memory."""
import json, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(__file__))

ROTQ = os.environ.get("ROTQ", "build/rotq")
SHARED = os.environ.get("ROTQ_SHARED", "../shared")
model = os.path.join(SHARED, "models/tinystories-260k/model.bin")
text = os.path.join(SHARED, "data/tinystories/valid-excerpt.txt")

from random_models import make_llama2c  # noqa: E402

if not os.path.exists(model) or not os.path.exists(text):
    print(f"{model} or {text} is absent: using a random llama2.c model and a generated text instead")
    model, text = make_llama2c(tempfile.mkdtemp(prefix="rotq-l2c-"))

failures = []
env = dict(os.environ, ROTQ_CACHE_DIR=tempfile.mkdtemp(prefix="rotq-cache-"))
WIN = ["--ctx", "256", "--max-windows", "4", "--threads", "2"]


def run(*args, cmd="eval", path=None):
    p = subprocess.run([ROTQ, cmd, path or model, "--text", text, "--json", "--quiet", *WIN, *args], capture_output=True, text=True,
                       env=env)
    if p.returncode != 0:
        print(f"FAIL rotq {cmd} {' '.join(args)}: {p.stderr}")
        sys.exit(1)
    return json.loads(p.stdout)


cmp_ = run("--preset", "nvfp4", "--compare-rotations", "none,full,block:4")
rows = {r["variant"]: r for r in cmp_["comparison"]}
ppl = run(cmd="ppl")
if cmp_["baseline_perplexity"] != ppl["perplexity"]:
    failures.append(f"comparison baseline {cmp_['baseline_perplexity']} != rotq ppl {ppl['perplexity']}")
alone = {"none": run("--preset", "nvfp4"), "full": run("--preset", "nvfp4", "--rotate"),
         "block:4": run("--preset", "nvfp4", "--rotate", "--r1-block", "4", "--r4-block", "4")}
for k, r in alone.items():
    if rows[k]["perplexity"] != r["perplexity"]:
        failures.append(f"{k}: comparison row {rows[k]['perplexity']} != separate run {r['perplexity']}")
if "blocks of 4" not in rows["block:4"]["rotation"] or "block-diagonal" not in rows["block:4"]["transforms"]:
    failures.append(f"block:4 row: {rows['block:4']['rotation']!r} / {rows['block:4']['transforms']!r}")
print("nvfp4 W/A/KV:", {k: round(r["perplexity"], 4) for k, r in rows.items()}, "float", round(ppl["perplexity"], 4))

flt = run("--compare-rotations", "none,full,block:4")
for r in flt["comparison"]:
    rel = abs(r["perplexity"] - flt["baseline_perplexity"]) / flt["baseline_perplexity"]
    if rel > 1e-4:
        failures.append(f"float model rotated ({r['variant']}): {r['perplexity']} vs {flt['baseline_perplexity']} (rel {rel:.2g})")

# layerwise rotations on a tied-embedding model (lm_head's site unties it): the float function kept
lw = run("--layerwise", "all", "--baseline", "rotated")
if abs(lw["perplexity"] - ppl["perplexity"]) > 1e-4 * ppl["perplexity"] or "layerwise lm_head" not in lw["transforms"]:
    failures.append(f"--layerwise all on the float model: {lw['perplexity']} vs {ppl['perplexity']}; {lw['transforms']!r}")

spelled = run("--w-dtype", "nvfp4", "--w-clip", "--a-dtype", "nvfp4", "--kv-dtype", "nvfp4")
if spelled["perplexity"] != alone["none"]["perplexity"] or spelled["quantization"] != alone["none"]["quantization"]:
    failures.append(f"--w/--a/--kv-dtype nvfp4: {spelled['perplexity']} ({spelled['quantization']}) vs the preset "
                    f"{alone['none']['perplexity']} ({alone['none']['quantization']})")

with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "q")
    q = subprocess.run([ROTQ, "quantize", model, out, "--w-dtype", "mxfp4", "--quiet"], capture_output=True, text=True)
    if q.returncode != 0:
        failures.append(f"quantize --w-dtype mxfp4: {q.stderr}")
    else:
        mem = run("--w-dtype", "mxfp4")
        disk = run(path=out)
        if abs(disk["baseline_perplexity"] - mem["perplexity"]) > 1e-9 * mem["perplexity"]:
            failures.append(f"mxfp4 checkpoint scores {disk['baseline_perplexity']}, in memory {mem['perplexity']}")

for f in failures:
    print("FAIL", f)
print(f"oracle_fp_cli: {len(failures)} failures")
sys.exit(1 if failures else 0)
