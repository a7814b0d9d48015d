#!/usr/bin/env bash
# The main job on the default model (SmolLM2-135M-Instruct): installs what is missing, fetches the
# model, builds rotq, then rotates the model (norm fusion, R1-R4), proves the rotated model computes
# the same function, and shows what rotation does to activation outliers and to 4-bit quantization.
# Outputs land in out/. ROTQ_RUN_WINDOWS (default 4) bounds the perplexity windows of the last step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/deps.sh
model=$(./scripts/fetch_model.sh)
./scripts/build.sh
rotq=./build/rotq
text=$(mktemp)
trap 'rm -f "$text"' EXIT
# Evaluation text: WikiText-2 test when ../shared has it, else a text rotq's own sources provide.
if [ -f ../shared/data/wikitext-2-raw/wiki.test.raw ]; then cp ../shared/data/wikitext-2-raw/wiki.test.raw "$text"
  text_name="WikiText-2 test (../shared/data/wikitext-2-raw/wiki.test.raw)"
else cat README.md docs/*.md > "$text"; text_name="rotq's own README.md and docs/*.md (../shared/data is absent)"; fi
mkdir -p out
echo "== the model" >&2
$rotq info "$model"
echo "== rotate (QuaRot: random Hadamard R1/R2, online R3/R4, seed 0)" >&2
rm -rf out/smollm2-rotated
$rotq rotate "$model" out/smollm2-rotated --seed 0
echo "== verify: the rotated model computes the same function" >&2
$rotq verify "$model" out/smollm2-rotated --text "$text" --tokens 256
echo "== activation outliers before and after rotation (out/smollm2-stats.png)" >&2
$rotq stats "$model" --text "$text" --tokens 256 --rotate --plot out/smollm2-stats.png --force | awk 'NR <= 2 || /down_in/'
echo "== W4A4KV4 (RTN weights) perplexity without and with rotation, float baseline beside each" >&2
w=${ROTQ_RUN_WINDOWS:-4}
$rotq eval "$model" --preset w4a4kv4 --text "$text" --ctx 2048 --max-windows "$w" | tee out/eval-plain.txt
$rotq eval "$model" --preset w4a4kv4 --rotate --text "$text" --ctx 2048 --max-windows "$w" | tee out/eval-rotated.txt

# The result, in one table: what rotation buys W4A4KV4 on this model and text.
field() { awk -v k="$1" '$1 == k { print $3; exit }' "$2"; }   # "baseline perplexity X" / "quantized perplexity X"
scored=$(awk '$1 == "protocol" { print $7, "windows of", $5, "tokens (of", $10, "in the text)" }' out/eval-rotated.txt)
echo
echo "== result: $(basename "$model"), BOS as its tokenizer adds it, $scored"
echo "   text: $text_name"
printf '   %-44s %s\n' "float (the model as shipped)" "$(field baseline out/eval-plain.txt)"
printf '   %-44s %s\n' "W4A4KV4, RTN weights, no rotation" "$(field quantized out/eval-plain.txt)"
printf '   %-44s %s\n' "W4A4KV4, RTN weights, QuaRot R1-R4 (seed 0)" "$(field quantized out/eval-rotated.txt)"
echo "   (perplexity; weights sym per-channel 4-bit with the clip search, activations per token 4-bit clip 0.9 signed range,"
echo "    KV cache 4-bit asym per head clip 0.95; details in out/eval-*.txt)"
