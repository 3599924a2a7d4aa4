#!/bin/bash
# dapx eval's seed ranges and haystacks on the tiny model: the reported seeds by default, the
# validation seeds with --validation (not with --seed), --haystack licenses recorded in the
# setup so that a file made with the tasks' own haystacks is not resumed with it.
# Usage: eval_seeds_haystack.sh DAPX MODEL WORKDIR
set -u
DAPX=$1
MODEL=$2
W=$3
rm -rf "$W"
mkdir -p "$W"
fail() {
  echo "FAIL: $*"
  exit 1
}
seeds() { sed -E 's/"setup":\{[^}]*\}//' "$1" | grep -oE '"seed":[0-9]+' | cut -d: -f2 | sort -n | tr '\n' ' '; }
EVAL=(eval -m "$MODEL" --tasks niah_single_1 --lengths 512 --methods full --samples 2
  --max-new-tokens 1 --threads 1)

"$DAPX" "${EVAL[@]}" --out "$W/report.jsonl" > "$W/out.txt" 2>&1 || fail "$(cat "$W/out.txt")"
[ "$(seeds "$W/report.jsonl")" == "0 1 " ] || fail "default seeds: $(seeds "$W/report.jsonl")"
"$DAPX" "${EVAL[@]}" --validation --out "$W/validation.jsonl" > "$W/out.txt" 2>&1 ||
  fail "$(cat "$W/out.txt")"
[ "$(seeds "$W/validation.jsonl")" == "10000 10001 " ] ||
  fail "--validation seeds: $(seeds "$W/validation.jsonl")"
if "$DAPX" "${EVAL[@]}" --validation --seed 3 --out "$W/never.jsonl" > "$W/out.txt" 2>&1; then
  fail "--validation with --seed accepted"
fi
grep -q "excludes" "$W/out.txt" || fail "no 'excludes' in: $(cat "$W/out.txt")"

"$DAPX" "${EVAL[@]}" --haystack licenses --out "$W/licenses.jsonl" > "$W/out.txt" 2>&1 ||
  fail "$(cat "$W/out.txt")"
grep -q '"haystack":"licenses"' "$W/licenses.jsonl" || fail "no haystack in the setup"
if "$DAPX" "${EVAL[@]}" --haystack licenses --out "$W/report.jsonl" > "$W/out.txt" 2>&1; then
  fail "a file of the tasks' own haystacks was resumed with --haystack licenses"
fi
grep -q "haystack" "$W/out.txt" || fail "the haystack is not named: $(cat "$W/out.txt")"
rm -rf "$W"
echo "eval seeds and haystack: ok"
