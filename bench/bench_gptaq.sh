#!/usr/bin/env bash
# GPTAQ and Qronos beside GPTQ in the same run: the same model, rotation, preset and calibration
# windows, one command at a time, each timed with its peak RSS; then calibration forward and
# quantization seconds per decoder layer, and the ratios to GPTQ. The asymmetric fits carry a float
# stream beside the quantized one (a second set of layer buffers and residual stream, and one float
# copy of the current layer's weights) and form a second n×n matrix per input.
# usage: bench/bench_gptaq.sh MODEL CALIB_TEXT [OUTDIR]   (NSAMPLES, default 8; CALIB_CTX, default 2048;
#        PRESET, default w4a4kv4)
set -euo pipefail
model=$1 calib=$2
out=${3:-$(mktemp -d)}
mkdir -p "$out"
rotq=${ROTQ:-./build/rotq}
ns=${NSAMPLES:-8} cctx=${CALIB_CTX:-2048} preset=${PRESET:-w4a4kv4}
. "$(dirname "$0")/lib.sh"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%F)"
for m in gptq gptaq qronos; do
  measure $m $rotq quantize "$model" "$out/$m.gguf" --rotate --preset "$preset" --w-quant $m --calib "$calib" \
    --nsamples "$ns" --calib-ctx "$cctx" --json
  rm -f "$out/$m.gguf"
done
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
r = {m: json.load(open(f"{d}/{m}.json")) for m in ("gptq", "gptaq", "qronos")}
layers = r["gptq"]["linears"] // 7 or 1
for m, j in r.items():
    print(f"{m:7s} calibration forward {j['calib_seconds']:7.1f} s ({j['calib_seconds'] / layers:5.2f} s/layer), "
          f"quantization {j['rtn_or_gptq_seconds']:6.1f} s ({j['rtn_or_gptq_seconds'] / layers:5.2f} s/layer), "
          f"total {j['seconds']:7.1f} s = {j['seconds'] / r['gptq']['seconds']:.2f}x GPTQ")
PY
