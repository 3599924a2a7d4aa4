#!/bin/bash
# dapx eval end to end on the tiny model: a small run, a run killed mid-way and resumed (with a
# line cut short) that ends with the same rows as the uninterrupted one, and resumes that would
# mix runs (another --seed, --max-new-tokens, model, or --chat) refused with the field named.
# Usage: eval_resume.sh DAPX MODEL WORKDIR
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
rows() { grep -c . "$1" 2>/dev/null || echo 0; }
# task|run|sample|output per row, sorted: what a row generated, without its timings.
outputs() {
  sed -E 's/.*"output":(.*),"params".*"run":"([^"]*)","sample":([0-9]+).*"task":"([^"]*)".*/\4|\2|\3|\1/' "$1" | sort
}
EVAL=(eval --tasks niah_single_1,vt --lengths 512 --methods full,snapkv --budgets 64 --threads 1)

# A small run: 2 tasks x 2 runs x 25 samples, and its table.
"$DAPX" "${EVAL[@]}" --max-new-tokens 2 -m "$MODEL" --samples 25 --seed 1 --out "$W/a.jsonl" > "$W/a.txt" 2>&1 ||
  fail "the small run failed: $(cat "$W/a.txt")"
[ "$(rows "$W/a.jsonl")" -eq 100 ] || fail "the small run wrote $(rows "$W/a.jsonl") rows, not 100"
grep -q '^| niah_single_1 | [0-9.]* | [0-9.]* |$' "$W/a.txt" || fail "no table: $(cat "$W/a.txt")"
grep -q '^| KV kept (%) | 100.0 |' "$W/a.txt" || fail "no cost rows: $(cat "$W/a.txt")"

# The same run killed once it has written some rows; a line cut short as a kill mid-write leaves.
"$DAPX" "${EVAL[@]}" --max-new-tokens 2 -m "$MODEL" --samples 25 --seed 1 --out "$W/b.jsonl" > /dev/null 2>&1 &
PID=$!
for _ in $(seq 1 6000); do  # up to a minute on a loaded machine
  [ "$(rows "$W/b.jsonl")" -ge 3 ] && break
  sleep 0.01
done
kill -KILL $PID 2> /dev/null
wait $PID 2> /dev/null
KEPT=$(rows "$W/b.jsonl")
[ "$KEPT" -ge 3 ] || fail "the run to kill wrote no rows"
echo "killed after $KEPT of 100 rows"
printf '{"suite":"ruler","task":"vt","len' >> "$W/b.jsonl"
"$DAPX" "${EVAL[@]}" --max-new-tokens 2 -m "$MODEL" --samples 25 --seed 1 --out "$W/b.jsonl" > "$W/b.txt" 2>&1 ||
  fail "the resume failed: $(cat "$W/b.txt")"
[ "$(rows "$W/b.jsonl")" -eq 100 ] || fail "the resume left $(rows "$W/b.jsonl") rows, not 100"
[ "$(outputs "$W/a.jsonl")" == "$(outputs "$W/b.jsonl")" ] ||
  fail "the killed and resumed run's rows differ from the uninterrupted run's"
[ "$(cut -d'|' -f1-3 <(outputs "$W/b.jsonl") | sort -u | wc -l)" -eq 100 ] ||
  fail "a row was written twice"
diff <(sed -n '/^length 512/,$p' "$W/a.txt" | grep -v -e seconds -e TTFT) \
     <(sed -n '/^length 512/,$p' "$W/b.txt" | grep -v -e seconds -e TTFT) > /dev/null ||
  fail "the resumed run's scores differ: $(cat "$W/b.txt")"

# Resumes that would mix runs: an error naming the field and both values; the file untouched.
cp "$W/b.jsonl" "$W/b.before"
expect_error() {  # expect_error MESSAGE ARGS...
  local msg=$1
  shift
  if "$DAPX" "$@" > "$W/err.txt" 2>&1; then fail "accepted: $*"; fi
  grep -qF -- "$msg" "$W/err.txt" || fail "no '$msg' in: $(cat "$W/err.txt")"
  cmp -s "$W/b.jsonl" "$W/b.before" || fail "the results file changed: $*"
}
expect_error "b.jsonl:1: a result of another setup: seed was 1, this run has 2;" \
  "${EVAL[@]}" --max-new-tokens 2 -m "$MODEL" --samples 25 --seed 2 --out "$W/b.jsonl"
grep -qF "choose another --out or remove the file" "$W/err.txt" || fail "no way out: $(cat "$W/err.txt")"
expect_error "max_new_tokens was 2, this run has 3" \
  "${EVAL[@]}" -m "$MODEL" --samples 25 --seed 1 --max-new-tokens 3 --out "$W/b.jsonl"
expect_error "chat was false, this run has true" \
  "${EVAL[@]}" --max-new-tokens 2 -m "$MODEL" --samples 25 --seed 1 --out "$W/b.jsonl" --chat
# Another model (other weights, same shape and tokenizer): its directory and its weights differ.
"$DAPX" make-model --arch qwen2 --shape tiny --tokenizer trained --merges 100 --seed 4 \
  --out "$W/other" 2> /dev/null || fail "make-model failed"
expect_error "model was \"$(realpath "$MODEL")\", this run has \"$(realpath "$W/other")\"" \
  "${EVAL[@]}" --max-new-tokens 2 -m "$W/other" --samples 25 --seed 1 --out "$W/b.jsonl"
grep -qE "model_hash was \"[0-9a-f]{16}\", this run has \"[0-9a-f]{16}\"" "$W/err.txt" ||
  fail "the weights' hash is not named: $(cat "$W/err.txt")"
# The same weights copied elsewhere with other weights in one tensor: the hash tells them apart.
cp -r "$MODEL" "$W/copy"
cp "$W/other/model.safetensors" "$W/copy/model.safetensors"
expect_error "model_hash was" "${EVAL[@]}" --max-new-tokens 2 -m "$W/copy" --samples 25 --seed 1 --out "$W/b.jsonl"

# --chat: the model's template (ChatML) around each prompt, recorded in the setup.
"$DAPX" "${EVAL[@]}" --max-new-tokens 2 -m "$MODEL" --samples 1 --seed 1 --chat --out "$W/c.jsonl" > "$W/c.txt" 2>&1 ||
  fail "the --chat run failed: $(cat "$W/c.txt")"
[ "$(rows "$W/c.jsonl")" -eq 4 ] || fail "the --chat run wrote $(rows "$W/c.jsonl") rows, not 4"
grep -q '"chat":true' "$W/c.jsonl" || fail "chat is not in the setup: $(head -1 "$W/c.jsonl")"
RAW_HASH=$(head -1 "$W/a.jsonl" | sed -E 's/.*"prompt_hash":"([0-9a-f]*)".*/\1/')
CHAT_HASH=$(head -1 "$W/c.jsonl" | sed -E 's/.*"prompt_hash":"([0-9a-f]*)".*/\1/')
[ "$RAW_HASH" != "$CHAT_HASH" ] || fail "--chat sent the raw prompt"
# A model without a template: the error names its directory.
cp -r "$MODEL" "$W/nochat"
echo '{}' > "$W/nochat/tokenizer_config.json"
if "$DAPX" "${EVAL[@]}" --max-new-tokens 2 -m "$W/nochat" --chat --out "$W/d.jsonl" > "$W/err.txt" 2>&1; then
  fail "--chat accepted a model without a chat template"
fi
grep -qF -- "--chat: the model $W/nochat has no chat template" "$W/err.txt" ||
  fail "the missing template is not named: $(cat "$W/err.txt")"
[ ! -e "$W/d.jsonl" ] || fail "a results file was written"
rm -rf "$W"
echo "eval resume: ok"
