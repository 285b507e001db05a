#!/usr/bin/env bash
# Times our perplexity and imatrix tools against llama.cpp's on the same machine, back to
# back, and prints tokens per second and the ratio for each pair.
#
# Usage: LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin scripts/bench-vs-llama-cpp.sh [CHUNKS]
#
# Needs the real model (scripts/fetch-model.sh) and writes the F32 base next to it when it
# is missing. Each pair runs ours first, then llama.cpp, with 2 threads and n_ctx 512.
set -euo pipefail

cd "$(dirname "$0")/.."
chunks="${1:-10}"
threads=2
bin="${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to the folder with llama-perplexity and llama-imatrix}"
model="${GEMMA3_270M_GGUF:-models/gemma-3-270m-q4_k_m.gguf}"
base="models/base-f32.gguf"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

cargo build --release --examples --quiet
ours=target/release/examples
if [ ! -f "$base" ]; then
    "$ours/quantize" --allow-requantize "$model" "$base" F32 >/dev/null 2>&1
fi

# Prints the wall time of a command in seconds; its output goes to a log file.
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" >"$out/log" 2>&1 || { cat "$out/log"; exit 1; }
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

# Runs ours_cmd, then llama_cmd, and prints a Markdown table row.
pair() {
    local what=$1 tokens=$2 ours_s llama_s
    ours_s=$(seconds "${ours_cmd[@]}")
    llama_s=$(seconds "${llama_cmd[@]}")
    printf '| %s | %.0f | %.0f | %.2f |\n' "$what" \
        "$(echo "$tokens / $ours_s" | bc -l)" "$(echo "$tokens / $llama_s" | bc -l)" \
        "$(echo "$llama_s / $ours_s" | bc -l)"
}

tokens=$((chunks * 512))
echo "| run ($chunks chunks of 512, $threads threads) | ours (tokens/s) | llama.cpp (tokens/s) | speed ratio (ours / llama.cpp) |"
echo "|---|---|---|---|"
for m in "$model" "$base"; do
    for text in data/wiki.test.raw data/ja-wiki.test.raw; do
        ours_cmd=("$ours/perplexity" -m "$m" -f "$text" -c 512 --chunks "$chunks" -t "$threads")
        llama_cmd=("$bin/llama-perplexity" -m "$m" -f "$text" -c 512 --chunks "$chunks" -t "$threads")
        pair "perplexity $(basename "$m") $(basename "$text")" "$tokens"
    done
done
ours_cmd=("$ours/imatrix" -m "$base" -f data/calibration_datav3.txt -c 512 --chunks "$chunks" -t "$threads" -o "$out/ours.gguf")
llama_cmd=("$bin/llama-imatrix" -m "$base" -f data/calibration_datav3.txt -c 512 --chunks "$chunks" -t "$threads" -o "$out/llama.gguf")
pair "imatrix $(basename "$base") calibration_datav3.txt" "$tokens"
