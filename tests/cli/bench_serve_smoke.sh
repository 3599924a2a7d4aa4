#!/bin/bash
# dapx bench-serve end to end on the tiny model: the load mode (1 and 2 clients, every answer
# counted), the document mode (2 questions: the second finds the document in the prefix
# cache) and the capacity mode; their files exist and say so; --replot redraws the plot.
set -u
DAPX=$1
MODEL=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$DAPX" bench-serve -m "$MODEL" --clients 1,2 --requests 2 --prompt-tokens 24 --max-tokens 3 \
  --threads 1 --prefill-chunk 16 --out "$OUT/load" > "$OUT/load.txt" 2> "$OUT/load.err" ||
  { cat "$OUT/load.err"; fail "load mode exited $?"; }
for f in serve.json serve.csv serve.txt; do [ -s "$OUT/load/$f" ] || fail "no $f"; done
# 1 client x 2 requests, then 2 x 2: every request answered with its 3 tokens
grep -q '"ok": 2,' "$OUT/load/serve.json" || fail "the 1-client row did not answer 2 requests"
grep -q '"ok": 4,' "$OUT/load/serve.json" || fail "the 2-client row did not answer 4 requests"
grep -q '"error": null' "$OUT/load/serve.json" || fail "a row recorded an error"
"$DAPX" bench-serve --replot "$OUT/load" 2> "$OUT/replot.err" || { cat "$OUT/replot.err"; fail "replot"; }
"$DAPX" bench-serve -m "$MODEL" --questions 2 --prompt-tokens 40 --max-tokens 2 --threads 1 \
  --prefill-chunk 16 --out "$OUT/doc" > "$OUT/doc.txt" 2> "$OUT/doc.err" ||
  { cat "$OUT/doc.err"; fail "document mode exited $?"; }
[ -s "$OUT/doc/document.json" ] || fail "no document.json"
grep -q '"prefix_cache_blocks": [1-9]' "$OUT/doc/document.json" || fail "the document was not cached"
# The capacity mode: a pool that holds a few full requests admits more compressed ones, and
# says that it refused the rest.
"$DAPX" bench-serve -m "$MODEL" --methods full,streaming --budget 24 --capacity 24 \
  --prompt-tokens 200 --max-tokens 32 --kv-memory 300K --threads 1 --prefill-chunk 16 \
  --out "$OUT/cap" > "$OUT/cap.txt" 2> "$OUT/cap.err" ||
  { cat "$OUT/cap.err"; fail "capacity mode exited $?"; }
[ -s "$OUT/cap/capacity.json" ] || fail "no capacity.json"
mapfile -t admitted < <(grep -o '"admitted": [0-9]*' "$OUT/cap/capacity.json" | grep -o '[0-9]*$')
[ "${#admitted[@]}" = 2 ] || fail "expected two capacity rows, got ${#admitted[@]}"
[ "${admitted[0]}" -ge 1 ] || fail "no full request was admitted"
[ "${admitted[1]}" -gt "${admitted[0]}" ] ||
  fail "streaming (${admitted[1]}) did not fit more requests than full (${admitted[0]})"
[ "$(grep -c '"pool_refused": true' "$OUT/cap/capacity.json")" = 2 ] ||
  fail "the pool did not refuse a request in both rows"
echo "bench-serve smoke: ok"
