#!/usr/bin/env bash
# The weight scale searches beside each other in the same run: RTN and GPTQ with QuaRot's clip search
# (the baseline), Brevitas' MSE grid and the Hessian search, on the same model, rotation, preset and
# calibration windows, one command at a time, each timed with its peak RSS; then quantization seconds
# per decoder layer and the ratio to the same method with the clip search. RTN with the Hessian
# search calibrates (the Hessians), so its time is set against GPTQ's too.
# usage: bench/bench_scale_search.sh MODEL CALIB_TEXT [OUTDIR]   (NSAMPLES, default 8; CALIB_CTX,
#        default 2048; PRESET, default w4a4kv4)
set -euo pipefail
model=$1 calib=$2
out=${3:-$(mktemp -d)}
mkdir -p "$out"
rotq=${ROTQ:-./build/rotq}
ns=${NSAMPLES:-8} cctx=${CALIB_CTX:-2048} preset=${PRESET:-w4a4kv4}
. "$(dirname "$0")/lib.sh"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%F)"
for m in rtn gptq; do
  for s in clip mse hessian; do
    measure ${m}_$s $rotq quantize "$model" "$out/${m}_$s.gguf" --rotate --preset "$preset" --w-quant $m --w-scale $s \
      --calib "$calib" --nsamples "$ns" --calib-ctx "$cctx" --json
    rm -f "$out/${m}_$s.gguf"
  done
done
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
r = {f"{m}_{s}": json.load(open(f"{d}/{m}_{s}.json")) for m in ("rtn", "gptq") for s in ("clip", "mse", "hessian")}
layers = r["gptq_clip"]["linears"] // 7 or 1
for k, j in r.items():
    base = r[k.split("_")[0] + "_clip"]
    print(f"{k:13s} calibration forward {j['calib_seconds']:7.1f} s, quantization {j['rtn_or_gptq_seconds']:7.1f} s "
          f"({j['rtn_or_gptq_seconds'] / layers:6.2f} s/layer) = {j['rtn_or_gptq_seconds'] / max(base['rtn_or_gptq_seconds'], 1e-9):6.2f}x "
          f"the clip search's; total {j['seconds']:7.1f} s = {j['seconds'] / r['gptq_clip']['seconds']:.2f}x GPTQ-clip")
PY
