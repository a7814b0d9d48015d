#!/usr/bin/env bash
# GPTQ on a model with NSAMPLES×CALIB_CTX calibration tokens (default 128×2048, the papers'
# setting), timed end to end (load, rotate, calibration forward, GPTQ, write) with its peak RSS,
# beside two baselines from the same run: RTN of the same weights (load, rotate, RTN, write) and
# the float forward's throughput (rotq ppl on PPL_WINDOWS windows of the same length).
# usage: bench/bench_gptq.sh MODEL CALIB_TEXT [OUTDIR]   (after ./scripts/build.sh)
set -euo pipefail
model=$1 calib=$2
out=${3:-$(mktemp -d)}
mkdir -p "$out"
rotq=${ROTQ:-./build/rotq}
ns=${NSAMPLES:-128} cctx=${CALIB_CTX:-2048}
. "$(dirname "$0")/lib.sh"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%F)"
measure ppl $rotq ppl "$model" --text "$calib" --ctx "$cctx" --max-windows "${PPL_WINDOWS:-4}" --json --quiet
measure rtn $rotq quantize "$model" "$out/rtn.gguf" --rotate --preset w4a16 --json
measure gptq $rotq quantize "$model" "$out/gptq.gguf" --rotate --preset w4a16 --w-quant gptq --calib "$calib" \
  --nsamples "$ns" --calib-ctx "$cctx" --json
rm -f "$out/rtn.gguf" "$out/gptq.gguf"
python3 - "$out" <<'EOF'
import json, sys
d = sys.argv[1]
ppl, rtn, gptq = (json.load(open(f"{d}/{n}.json")) for n in ("ppl", "rtn", "gptq"))
fwd = ppl["tokens_per_second"]
cal = gptq["calib_tokens"] / gptq["calib_seconds"]
print(f"float forward (ppl, lm_head included): {fwd:.1f} tok/s")
print(f"GPTQ: {gptq['calib_tokens']} calibration tokens, calibration forward {gptq['calib_seconds']:.1f} s "
      f"({cal:.1f} tok/s = {cal / fwd:.2f}x the float forward), GPTQ proper {gptq['rtn_or_gptq_seconds']:.1f} s, "
      f"total {gptq['seconds']:.1f} s")
print(f"RTN (same weights, clip search): {rtn['rtn_or_gptq_seconds']:.1f} s, total {rtn['seconds']:.1f} s; "
      f"GPTQ total / RTN total = {gptq['seconds'] / rtn['seconds']:.1f}x")
EOF
