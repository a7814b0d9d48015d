#!/usr/bin/env bash
# The quantization results table (docs/results.md): float baseline, then weights quantized once per
# setting (no rotation / QuaRot rotation × RTN / GPTQ) with `rotq quantize`, each evaluated with
# activations and KV cache at 16, 8 and 4 bits with `rotq eval` (weights left as stored).
# Every run writes its --json result under OUTDIR; bench/results_table.py renders them.
#
# usage: bench/results_quant.sh MODEL TEXT CALIB OUTDIR [extra model options, e.g. --tokenizer F]
# env:   WINDOWS (max windows scored; empty = all), CTX (2048), NSAMPLES (128), CALIB_CTX (2048),
#        SEED (0), ROTQ (binary, default ./build/rotq), ALL_ROWS (1: A8/A4 columns for no-rotation GPTQ too)
set -euo pipefail
model=$1 text=$2 calib=$3 out=$4
shift 4
extra=("$@")
rotq=${ROTQ:-./build/rotq}
ctx=${CTX:-2048}
win=()
[ -n "${WINDOWS:-}" ] && win=(--max-windows "$WINDOWS")
mkdir -p "$out"
eval_opts=(--text "$text" --ctx "$ctx" "${win[@]}" --json --quiet)  # BOS: the tokenizer's default
calib_opts=(--calib "$calib" --nsamples "${NSAMPLES:-128}" --calib-ctx "${CALIB_CTX:-2048}")
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$out/log.txt" >&2; }
run() { # name, command... (json on stdout → OUTDIR/name.json; the command line kept beside it)
  local name=$1; shift
  log "$name: $*"
  printf '%s\n' "$*" > "$out/$name.cmd"
  local t0; t0=$(date +%s.%N)
  "$@" > "$out/$name.json.tmp" 2> "$out/$name.err" || { log "$name failed: $(tail -3 "$out/$name.err")"; return 1; }
  mv "$out/$name.json.tmp" "$out/$name.json"
  log "$name done in $(echo "$(date +%s.%N) - $t0" | bc) s"
}
log "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

run baseline "$rotq" ppl "$model" "${extra[@]}" "${eval_opts[@]}"

# weights: name → quantize options
declare -A wq=(
  [none-rtn]="--preset w4a16"
  [rot-rtn]="--rotate --preset w4a16"
  [rot-gptq]="--rotate --preset w4a16 --w-quant gptq"
  [none-gptq]="--preset w4a16 --w-quant gptq"
)
for w in none-rtn rot-rtn rot-gptq none-gptq; do
  ext=gguf
  # shellcheck disable=SC2086
  opts=(${wq[$w]})
  [[ ${wq[$w]} == *gptq* ]] && opts+=("${calib_opts[@]}")
  run "quantize-$w" "$rotq" quantize "$model" "$out/w4-$w.$ext" "${extra[@]}" "${opts[@]}" --seed "${SEED:-0}" --json || continue
  acts=(w4a16 w4a8kv8 w4a4kv4)
  [ "$w" = none-gptq ] && [ -z "${ALL_ROWS:-}" ] && acts=(w4a16)  # the table's W4A16 GPTQ row; ALL_ROWS=1 for all
  for a in "${acts[@]}"; do
    # the preset's activation/KV settings; --w-bits 16 keeps the stored (already quantized) weights
    run "eval-$w-$a" "$rotq" eval "$out/w4-$w.$ext" --preset "$a" --w-bits 16 --baseline none \
      "${eval_opts[@]}" || true
  done
  rm -f "$out/w4-$w.$ext"
done
log "all done"
