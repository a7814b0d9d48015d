#!/usr/bin/env bash
# The main job on the default model (SmolLM2-135M-Instruct): installs what is missing, fetches the
# model, builds rotq, then describes the model and writes it as an F32 Hugging Face folder in out/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/deps.sh
model=$(./scripts/fetch_model.sh)
./scripts/build.sh
./build/rotq info "$model"
rm -rf out/smollm2-hf
mkdir -p out
./build/rotq convert "$model" out/smollm2-hf --to hf --dtype f32
./build/rotq info out/smollm2-hf
