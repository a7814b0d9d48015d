#!/usr/bin/env bash
# Issue 14: rotq's GGUF exports against llama.cpp's own quantizer, both scored by llama.cpp's
# perplexity tool on WikiText-2 test (its protocol: chunks of 512, BOS first, second half scored).
# usage: bench/gguf_vs_llamacpp.sh llama|rotq|ppl [MIXES...]
#   LLAMA_BIN  folder with llama-quantize, llama-imatrix, llama-perplexity (built from the
#              llama-cpp-python sdist, see docs/results.md); ROTQ (default build/rotq)
#   WORK (default /tmp/rotq-gguf-cmp), CHUNKS (perplexity chunks, default all), IM_CHUNKS (imatrix, 100)
#   ROTQ_ARGS  extra rotq quantize options (size matching: --embedding-type, --tensor-type ...)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROTQ=${ROTQ:-$ROOT/build/rotq}
W=${WORK:-/tmp/rotq-gguf-cmp}
SHARED=${SHARED:-$ROOT/../shared}
WIKI=$SHARED/data/wikitext-2-raw/wiki.test.raw
CALIB=$SHARED/data/calibration/austen-pride-and-prejudice.txt
MODEL=$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$W"
what=$1; shift
mixes=${*:-Q4_0 Q4_K_M Q3_K_M}
[ -f "$W/f32.gguf" ] || "$ROTQ" convert "$MODEL" "$W/f32.gguf" --dtype f32
case $what in
llama)
  [ -f "$W/imatrix.gguf" ] || "$LLAMA_BIN/llama-imatrix" -m "$W/f32.gguf" -f "$CALIB" -o "$W/imatrix.gguf" \
      --chunks "${IM_CHUNKS:-100}" -t 2 > "$W/imatrix.log" 2>&1
  for m in $mixes; do
    "$LLAMA_BIN/llama-quantize" "$W/f32.gguf" "$W/llamacpp-$m.gguf" "$m" 2 > "$W/llamacpp-$m.log" 2>&1
    "$LLAMA_BIN/llama-quantize" --imatrix "$W/imatrix.gguf" "$W/f32.gguf" "$W/llamacpp-imatrix-$m.gguf" "$m" 2 \
        > "$W/llamacpp-imatrix-$m.log" 2>&1
  done ;;
rotq)
  for m in $mixes; do
    # shellcheck disable=SC2086
    "$ROTQ" quantize "$MODEL" "$W/rotq${TAG:-}-$m.gguf" --format "gguf:$m" --rotate --w-quant gptq --calib "$CALIB" \
        --nsamples 32 --calib-ctx 2048 --seed 0 --dtype f32 --force ${ROTQ_ARGS:-} --json > "$W/rotq${TAG:-}-$m.json"
  done ;;
ppl)
  for f in $mixes; do
    out=$W/ppl-$(basename "$f" .gguf).txt
    [ -s "$out" ] || "$LLAMA_BIN/llama-perplexity" -m "$f" -f "$WIKI" -t 2 ${CHUNKS:+--chunks $CHUNKS} > "$out.log" 2>&1 &&
      grep "Final estimate" "$out.log" > "$out"
    printf '%-48s %8.1f MiB  %s\n' "$(basename "$f")" "$(echo "$(stat -c %s "$f") / 1048576" | bc -l)" "$(cat "$out")"
  done ;;
esac
