#!/usr/bin/env bash
# Load time, memory and decode speed of one model as a Hugging Face directory and as GGUF files
# made by dapx convert (Q8_0, Q4_K), each with the weights as loaded (bf16 after dequantising)
# and with --weights int8. Median of REPEATS runs of `dapx generate` (64 new tokens after a
# 32-word prompt), each in its own process; load = process wall time - the generation's total.
#   scripts/gguf-report.sh build/apps/dapx HF_DIR OUT_DIR [THREADS]
set -euo pipefail
DAPX=$1 HF=$2 OUT=$3 THREADS=${4:-0} REPEATS=${REPEATS:-3}
mkdir -p "$OUT"
"$DAPX" convert --from "$HF" --to "$OUT/model-q8_0.gguf" --type q8_0 2> /dev/null
"$DAPX" convert --from "$HF" --to "$OUT/model-q4_k.gguf" --type q4_k 2> /dev/null
PROMPT="The river town keeps a ledger of every boat that passed under its bridge during the long dry summer, and the clerk who wrote it down"
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| model | file MiB | --weights | load s | peak RSS MiB | decode tokens/s | weights read per token MiB |"
echo "|---|---|---|---|---|---|---|"
for m in "$HF" "$OUT/model-q8_0.gguf" "$OUT/model-q4_k.gguf"; do
  if [ -d "$m" ]; then size=$(du -smL "$m" | cut -f1); name="HF directory (bf16)"; else
    size=$(( $(stat -c %s "$m") / 1048576 )); name=$(basename "$m"); fi
  for w in native int8; do
    loads=() rss=() tps=()
    for _ in $(seq 1 "$REPEATS"); do
      /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$DAPX" generate -m "$m" -p "$PROMPT" -n 64 \
        --weights "$w" --threads "$THREADS" --json > "$OUT/gen.json" 2> /dev/null
      read -r wall kib < "$OUT/time.txt"
      total=$(python3 -c "import json; print(json.load(open('$OUT/gen.json'))['stats']['total_s'])")
      tpot=$(python3 -c "import json; print(json.load(open('$OUT/gen.json'))['stats']['tpot_s'])")
      bytes=$(python3 -c "import json; print(json.load(open('$OUT/gen.json'))['stats']['decode_weight_bytes'])")
      loads+=("$(echo "$wall - $total" | bc -l)") rss+=("$((kib / 1024))") tps+=("$(echo "1 / $tpot" | bc -l)")
    done
    printf '| %s | %s | %s | %.2f | %s | %.1f | %.0f |\n' "$name" "$size" "$w" \
      "$(printf '%s\n' "${loads[@]}" | median)" "$(printf '%s\n' "${rss[@]}" | median)" \
      "$(printf '%s\n' "${tps[@]}" | median)" "$(echo "$bytes / 1048576" | bc -l)"
  done
done
rm -f "$OUT/time.txt" "$OUT/gen.json" "$OUT"/model-*.gguf
