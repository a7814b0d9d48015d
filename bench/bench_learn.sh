#!/usr/bin/env bash
# The cost of learning rotations: seconds per training step per 1k tokens (forward with the
# quantizers, loss over lm_head, backward, Cayley updates), with float weights (W16A4KV4) and with
# the weights rounded in the loop (W4A4KV4), against the baseline of the same run: `rotq ppl` over
# the same number of tokens in windows of the same length (forward and log-softmax only).
# usage: bench/bench_learn.sh MODEL CALIB_TEXT [OUTDIR]   (SEQ, default 512; STEPS, default 3)
set -euo pipefail
model=$1 calib=$2
out=${3:-$(mktemp -d)}
mkdir -p "$out"
rotq=${ROTQ:-./build/rotq}
seq=${SEQ:-512} steps=${STEPS:-3}
. "$(dirname "$0")/lib.sh"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%F)"
measure ppl $rotq ppl "$model" --text "$calib" --ctx "$seq" --max-windows "$steps" --json --quiet
for w in 16 4; do
  rm -rf "$out/rot_w$w"
  args=()
  [ "$w" = 4 ] && args=(--w-bits 4)
  measure learn_w$w $rotq learn "$model" "$out/rot_w$w" --calib "$calib" --steps "$steps" --batch 1 --seq-len "$seq" \
    --n-seqs "$steps" --json --quiet "${args[@]}"
done
python3 - "$out" "$seq" <<'PY'
import json, sys
d, seq = sys.argv[1], int(sys.argv[2])
ppl = json.load(open(f"{d}/ppl.json"))
fwd = ppl["seconds"] / (ppl["windows"] * seq / 1000)
print(f"forward (rotq ppl, windows of {seq}): {fwd:.2f} s per 1k tokens")
for w in (16, 4):
    j = json.load(open(f"{d}/learn_w{w}.json"))
    s = j["seconds_per_step_per_1k_tokens"]
    print(f"learn W{w}A4KV4: {s:.2f} s per step per 1k tokens = {s / fwd:.2f}x the forward; "
          f"{j['steps']} steps in {j['step_seconds']:.1f} s ({j['seconds']:.1f} s with preparing the model)")
PY
