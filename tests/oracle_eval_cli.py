"""`rotq eval` end to end on tinystories-260k (or, when ../shared is absent, a random llama2.c model
with a byte-fallback tokenizer and a generated text):
 - the float baseline equals `rotq ppl` on the same windows (an independent command path);
 - the baseline cache: `rotq ppl` records its result and eval reuses it; a second run reuses the stored baseline (same number, marked cached), other
   windows or other weights miss, a damaged record is ignored, `--baseline-cache off` never reads;
   records are written atomically (no temporary files left);
 - integer products: W4A4/W4A8 runs with `--products int` report the integer path and land within
   float-rounding noise of `--products float`; group-wise weights fall back to float and say why."""
import glob, json, os, subprocess, sys, tempfile

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
cache = tempfile.mkdtemp(prefix="rotq-cache-")
env = dict(os.environ, ROTQ_CACHE_DIR=cache)


def run(*args, cmd="eval", check=True):
    p = subprocess.run([ROTQ, cmd, model, "--text", text, "--ctx", "256", "--json", "--quiet", *args],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        if check:
            print(f"FAIL rotq {cmd} {' '.join(args)}: {p.stderr}")
            sys.exit(1)
        return None
    return json.loads(p.stdout)


base = run("--preset", "w4a8", "--max-windows", "6")
ppl = run("--max-windows", "6", cmd="ppl")
if abs(base["baseline_perplexity"] - ppl["perplexity"]) > 1e-9 * ppl["perplexity"]:
    failures.append(f"eval baseline {base['baseline_perplexity']} != rotq ppl {ppl['perplexity']}")
if base["baseline_cached"]:
    failures.append("the first run cannot have a cached baseline")
records = glob.glob(os.path.join(cache, "baseline-*.json"))
if len(records) != 1 or glob.glob(os.path.join(cache, "*.tmp*")):
    failures.append(f"cache folder after one run: {os.listdir(cache)}")

again = run("--preset", "w4a4kv4", "--rotate", "--max-windows", "6")
if not again["baseline_cached"] or again["baseline_perplexity"] != base["baseline_perplexity"]:
    failures.append(f"second run: cached {again['baseline_cached']}, {again['baseline_perplexity']} vs {base['baseline_perplexity']}")

other = run("--preset", "w4a8", "--max-windows", "5")
if other["baseline_cached"]:
    failures.append("other windows must not hit the cache")
one = run("--preset", "w4a8", "--max-windows", "6", "--threads", "1")
if one["baseline_cached"]:
    failures.append("another thread count (BLAS summation order) must not hit the cache")
off = run("--preset", "w4a8", "--max-windows", "6", "--baseline-cache", "off")
if off["baseline_cached"] or off["baseline_perplexity"] != base["baseline_perplexity"]:
    failures.append(f"--baseline-cache off: cached {off['baseline_cached']}, {off['baseline_perplexity']}")

# rotq ppl records its float result; eval on the same windows reuses it
env["ROTQ_CACHE_DIR"] = cache2 = tempfile.mkdtemp(prefix="rotq-cache-")
first = run("--max-windows", "3", cmd="ppl")
reuse = run("--preset", "w4a8", "--max-windows", "3")
if not reuse["baseline_cached"] or reuse["baseline_perplexity"] != first["perplexity"]:
    failures.append(f"eval after rotq ppl: cached {reuse['baseline_cached']}, {reuse['baseline_perplexity']} vs {first['perplexity']}")
env["ROTQ_CACHE_DIR"] = cache

# a damaged record (numbers that disagree) is ignored and rewritten
rec = records[0]
j = json.load(open(rec))
j["perplexity"] *= 1.5
json.dump(j, open(rec, "w"))
fixed = run("--preset", "w4a8", "--max-windows", "6")
if fixed["baseline_cached"] or fixed["baseline_perplexity"] != base["baseline_perplexity"]:
    failures.append(f"damaged record: cached {fixed['baseline_cached']}, {fixed['baseline_perplexity']}")

# a different model (the rotated, quantized checkpoint written by rotq quantize) misses
with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "q")
    q = subprocess.run([ROTQ, "quantize", model, out, "--preset", "w4a16", "--quiet"], capture_output=True, text=True)
    p = subprocess.run([ROTQ, "eval", out, "--text", text, "--ctx", "256", "--json", "--quiet", "--max-windows", "6",
                        "--preset", "w4a8"], capture_output=True, text=True, env=env)
    if q.returncode != 0 or p.returncode != 0:
        failures.append(f"quantize + eval of the checkpoint failed: {q.stderr} {p.stderr}")
    elif json.loads(p.stdout)["baseline_cached"]:
        failures.append("a quantized checkpoint must not reuse the float model's baseline")
    else:
        # its weights sit on the 4-bit grid already: the integer path takes them as they are
        if not json.loads(p.stdout)["products"].startswith("int ("):
            failures.append(f"quantized checkpoint: products {json.loads(p.stdout)['products']!r}")

# integer products: the same model and settings, exact integer sums vs fake-quantized floats
for preset in ["w4a4kv4", "w4a8"]:
    ri = run("--preset", preset, "--rotate", "--max-windows", "6", "--products", "int")
    rf = run("--preset", preset, "--rotate", "--max-windows", "6", "--products", "float")
    if not ri["products"].startswith("int (") or rf["products"] != "float":
        failures.append(f"{preset}: products {ri['products']!r} / {rf['products']!r}")
    rel = abs(ri["perplexity"] - rf["perplexity"]) / rf["perplexity"]
    if rel > 5e-3:
        failures.append(f"{preset}: integer {ri['perplexity']} vs float {rf['perplexity']} (rel {rel:.2g})")
grouped = run("--preset", "w4a4", "--w-group", "32", "--max-windows", "2")
if not grouped["products"].startswith("float ("):
    failures.append(f"group-wise weights: products {grouped['products']!r}")

for f in failures:
    print("FAIL", f)
print(f"oracle_eval_cli: {len(failures)} failures")
sys.exit(1 if failures else 0)
