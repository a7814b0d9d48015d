#!/bin/bash
# The float-format table of docs/results.md ("Float formats and block rotations"): MXFP4 and NVFP4
# (weights, activations, KV) with no rotation, full QuaRot Hadamards and block-diagonal ones matched
# to the format's block, RTN and GPTQ; the FP8-KV variants; W3/W2 groups of 128 weight-only with and
# without rotation; the INT4 W4A4KV4 rows beside them. One `rotq eval --json` per row into OUT/NAME.json
# (rows already there are skipped), then a markdown table on stdout.
#
# usage: bench/results_fp.sh MODEL WIKI_TEST CALIB OUT   (env: ROTQ, WINDOWS=16, NSAMPLES=32, THREADS=1,
#        JOBS=2 rows at a time)
set -euo pipefail
ROTQ=${ROTQ:-build/rotq}
MODEL=$1 WIKI=$2 CALIB=$3 OUT=$4
WINDOWS=${WINDOWS:-16} NSAMPLES=${NSAMPLES:-32} THREADS=${THREADS:-1} JOBS=${JOBS:-2}
mkdir -p "$OUT"

rows=(
  "mx-none-rtn|--preset mxfp4"
  "mx-full-rtn|--preset mxfp4 --rotate"
  "mx-blk-rtn|--preset mxfp4 --rotate --r1-block 32 --r4-block 32"
  "mx-none-gptq|--preset mxfp4 --w-quant gptq"
  "mx-full-gptq|--preset mxfp4 --rotate --w-quant gptq"
  "mx-blk-gptq|--preset mxfp4 --rotate --r1-block 32 --r4-block 32 --w-quant gptq"
  "mxkv8-full-rtn|--preset mxfp4-kv8 --rotate"
  "mxkv8-blk-rtn|--preset mxfp4-kv8 --rotate --r1-block 32 --r4-block 32"
  "nv-none-rtn|--preset nvfp4"
  "nv-full-rtn|--preset nvfp4 --rotate"
  "nv-blk-rtn|--preset nvfp4 --rotate --r1-block 16 --r4-block 16"
  "nv-none-gptq|--preset nvfp4 --w-quant gptq"
  "nv-full-gptq|--preset nvfp4 --rotate --w-quant gptq"
  "nv-blk-gptq|--preset nvfp4 --rotate --r1-block 16 --r4-block 16 --w-quant gptq"
  "nvkv8-full-rtn|--preset nvfp4-kv8 --rotate"
  "nvkv8-blk-rtn|--preset nvfp4-kv8 --rotate --r1-block 16 --r4-block 16"
  "int4-full-rtn|--preset w4a4kv4 --rotate"
  "int4-full-gptq|--preset w4a4kv4 --rotate --w-quant gptq"
  "w4a8fp8-full-rtn|--preset w4a8-fp8 --rotate"
  "w3-none-rtn|--preset w3a16g128"
  "w3-rot-rtn|--preset w3a16g128 --rotate"
  "w3-none-gptq|--preset w3a16g128 --w-quant gptq"
  "w3-rot-gptq|--preset w3a16g128 --rotate --w-quant gptq"
  "w2-none-rtn|--preset w2a16g128"
  "w2-rot-rtn|--preset w2a16g128 --rotate"
  "w2-none-gptq|--preset w2a16g128 --w-quant gptq"
  "w2-rot-gptq|--preset w2a16g128 --rotate --w-quant gptq"
)

run_row() {
  local name=${1%%|*} args=${1#*|}
  [ -s "$OUT/$name.json" ] && return 0
  # shellcheck disable=SC2086
  "$ROTQ" eval "$MODEL" --text "$WIKI" --calib "$CALIB" --nsamples "$NSAMPLES" --calib-ctx 2048 --ctx 2048 \
    --max-windows "$WINDOWS" --seed 0 --threads "$THREADS" --json $args > "$OUT/$name.tmp" 2> "$OUT/$name.err"
  mv "$OUT/$name.tmp" "$OUT/$name.json"
}

for r in "${rows[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 5; done
  run_row "$r" &
done
wait

python3 - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
def ppl(n):
    p = os.path.join(out, n + ".json")
    return json.load(open(p))["perplexity"] if os.path.exists(p) else float("nan")
base = json.load(open(os.path.join(out, "mx-none-rtn.json")))["baseline_perplexity"]
print(f"float baseline {base:.4f}\n")
print("| format (W, A, KV) | weights | no rotation | full Hadamard | block Hadamard |")
print("|---|---|---|---|---|")
for f, label in (("mx", "MXFP4, MXFP4, MXFP4"), ("nv", "NVFP4, NVFP4, NVFP4")):
    for q in ("rtn", "gptq"):
        print(f"| {label} | {q.upper()} | {ppl(f'{f}-none-{q}'):.2f} | {ppl(f'{f}-full-{q}'):.2f} | {ppl(f'{f}-blk-{q}'):.2f} |")
    print(f"| {label[:5]}, {label[:5]}, FP8 | RTN | | {ppl(f'{f}kv8-full-rtn'):.2f} | {ppl(f'{f}kv8-blk-rtn'):.2f} |")
print(f"| INT4, INT4, INT4 | RTN | | {ppl('int4-full-rtn'):.2f} | |")
print(f"| INT4, INT4, INT4 | GPTQ | | {ppl('int4-full-gptq'):.2f} | |")
print(f"| INT4, FP8, float | RTN | | {ppl('w4a8fp8-full-rtn'):.2f} | |")
print("\n| weights (A16) | RTN, no rotation | RTN, QuaRot | GPTQ, no rotation | GPTQ, QuaRot |")
print("|---|---|---|---|---|")
for b in ("w3", "w2"):
    print(f"| {b.upper()} asym g128 | {ppl(b+'-none-rtn'):.2f} | {ppl(b+'-rot-rtn'):.2f} | {ppl(b+'-none-gptq'):.2f} | {ppl(b+'-rot-gptq'):.2f} |")
EOF
