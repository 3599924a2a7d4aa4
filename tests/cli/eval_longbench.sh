#!/bin/bash
# dapx eval --suite longbench end to end on JSONL files written here: every row scored with its
# dataset's metric, the summary, a resume that generates nothing, and --chat wrapping the
# datasets LongBench's pred.py wraps (narrativeqa) while trec stays raw.
# Usage: eval_longbench.sh DAPX MODEL WORKDIR
set -u
DAPX=$1
MODEL=$2
W=$3
rm -rf "$W"
mkdir -p "$W/data"
fail() {
  echo "FAIL: $*"
  exit 1
}
rows() { grep -c . "$1" 2>/dev/null || echo 0; }
cat > "$W/data/narrativeqa.jsonl" << 'END'
{"input": "Where does Mara hide the lantern?", "context": "Mara carried the lantern through the orchard at dusk. She slipped it under the loose boards of the old cider press.", "answers": ["under the boards of the cider press"], "length": 30, "_id": "nqa-0"}
{"input": "When did the watchmen come?", "context": "The watchmen came at dusk.", "answers": ["at dusk"], "_id": "nqa-1"}
END
cat > "$W/data/trec.jsonl" << 'END'
{"input": "What river flows through Vienna?", "context": "Question: Who wrote Hamlet?\nType: Individual\nQuestion: What is the capital of Peru?\nType: City", "answers": ["Other location"], "all_classes": ["Individual", "City", "Other location"], "_id": "trec-0"}
END
LB=(eval --suite longbench --data "$W/data" --methods full,snapkv --budgets 40 --max-new-tokens 3
    --threads 1 -m "$MODEL")

"$DAPX" "${LB[@]}" --json --out "$W/a.jsonl" > "$W/a.json" 2> "$W/a.err" ||
  fail "the LongBench run failed: $(cat "$W/a.err")"
[ "$(rows "$W/a.jsonl")" -eq 6 ] || fail "$(rows "$W/a.jsonl") rows, not 6 (3 samples x 2 runs)"
[ "$(grep -c '"metric":"qa_f1"' "$W/a.jsonl")" -eq 4 ] || fail "narrativeqa is not scored by qa_f1"
[ "$(grep -c '"metric":"classification"' "$W/a.jsonl")" -eq 2 ] ||
  fail "trec is not scored by classification"
for id in nqa-0 nqa-1 trec-0; do
  [ "$(grep -c "\"id\":\"$id\"" "$W/a.jsonl")" -eq 2 ] || fail "row $id is not there for both runs"
done
grep -q '"suite":"longbench"' "$W/a.jsonl" || fail "the rows are not LongBench's"
for cell in narrativeqa trec; do
  grep -q "\"task\": \"$cell\"" "$W/a.json" || fail "no summary cell for $cell: $(cat "$W/a.json")"
done
grep -q '"run": "snapkv@40"' "$W/a.json" || fail "no snapkv cell: $(cat "$W/a.json")"

# Resuming generates nothing and prints the same summary.
"$DAPX" "${LB[@]}" --out "$W/a.jsonl" > "$W/b.txt" 2> "$W/b.err" || fail "the resume failed"
[ "$(rows "$W/a.jsonl")" -eq 6 ] || fail "the resume added rows"
grep -q '^| narrativeqa | [0-9.]* | [0-9.]* |$' "$W/b.txt" || fail "no table: $(cat "$W/b.txt")"
grep -q '^| trec | [0-9.]* | [0-9.]* |$' "$W/b.txt" || fail "no table: $(cat "$W/b.txt")"

# --chat: narrativeqa's prompt grows by the chat markup, trec's (raw in pred.py) does not.
"$DAPX" "${LB[@]}" --chat --out "$W/c.jsonl" > /dev/null 2> "$W/c.err" ||
  fail "the --chat run failed: $(cat "$W/c.err")"
length_of() {  # length_of FILE ID
  grep "\"id\":\"$2\"" "$1" | head -1 | sed -E 's/.*"length":([0-9]+).*/\1/'
}
[ "$(length_of "$W/c.jsonl" nqa-0)" -gt "$(length_of "$W/a.jsonl" nqa-0)" ] ||
  fail "--chat did not wrap narrativeqa"
hash_of() {  # hash_of FILE ID
  grep "\"id\":\"$2\"" "$1" | head -1 | sed -E 's/.*"prompt_hash":"([0-9a-f]+)".*/\1/'
}
[ -n "$(hash_of "$W/a.jsonl" trec-0)" ] || fail "no prompt_hash in the rows"
[ "$(hash_of "$W/c.jsonl" trec-0)" == "$(hash_of "$W/a.jsonl" trec-0)" ] ||
  fail "--chat changed trec's prompt, which LongBench keeps raw"
rm -rf "$W"
echo "eval longbench: ok"
