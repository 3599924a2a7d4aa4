#!/usr/bin/env bash
# Everything a lent GPU is needed for, in one run of under 10 minutes (a device session has 15
# minutes in all, its start included): build against PyTorch's CUDA LibTorch, the CUDA tests,
# continue training the default target on the GPU until a deadline, evaluate it there, and a
# short speed/memory benchmark. Each part runs even when an earlier one fails.
#   scripts/device-session.sh [OUT_DIR]      (default: device-out)
# INIT (model to continue, default models/target), DEADLINE (seconds from the start by which
# the run ends, default 570: training gets what the other parts leave), LR (3e-4),
# TOKENS (per step, 32768), CURRICULUM (4096:100000: the time budget ends it), SEED (71),
# SAMPLES (held-out samples per task at 4096, default 20), BENCH_LENGTHS (1024,32000),
# RESERVE (seconds kept for evaluation and benchmark, 190), SKIP_TESTS, SKIP_BENCH.
# Build dependencies as in install-deps.sh, or DAPX_DEBS=DIR (see cuda-build.sh); DAPX_TEXTS=
# FILE, a tar.gz of /usr/share/dict/american-english and /usr/share/games/fortunes (the task
# texts), is unpacked into / where they are missing.
# What comes back fits a device run's $OUT (8 files): OUT_DIR/logs.tgz and the bf16 checkpoint
# OUT_DIR/target/{config.json,model.safetensors,train_state.json}.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-device-out}")
logs=$out/logs
mkdir -p "$logs"
step() { echo "== $1 (at ${SECONDS} s)"; }
if [ -n "${DAPX_TEXTS:-}" ] && [ ! -f /usr/share/dict/american-english ]; then
  tar xzf "$DAPX_TEXTS" -C /
fi

step build
source scripts/cuda-build.sh
cuda_build "$logs" dapx test_cuda test_train || { tar czf "$out/logs.tgz" -C "$out" logs; exit 1; }
b=build-cuda
dapx=$b/apps/dapx

step "CUDA tests"
if [ -z "${SKIP_TESTS:-}" ]; then
timeout 120 $b/tests/cuda/test_cuda >"$logs/test_cuda.log" 2>&1
echo "test_cuda: exit $?"
grep -E "^\[ *(OK|FAILED|SKIPPED|PASSED) |Failure|Expected|Which is|actual" "$logs/test_cuda.log" | head -40
timeout 60 $b/tests/train/test_train --gtest_filter='Train.OnAGpu*' >"$logs/test_train_gpu.log" 2>&1
echo "test_train (GPU): exit $?"
grep -E "^\[ *(OK|FAILED|SKIPPED|PASSED) |Failure" "$logs/test_train_gpu.log" | head
fi

step train
# What is left until the deadline, less ~3 minutes for the evaluation and the benchmark.
train_s=$((${DEADLINE:-570} - SECONDS - ${RESERVE:-190}))
[ $train_s -lt 30 ] && train_s=30
minutes=$(awk "BEGIN { print $train_s / 60 }")
echo "training for $train_s s"
tasks=niah_single_1,niah_single_2,niah_single_3,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multivalue,niah_multiquery
# --minutes ends the run saved, its cosine decayed by the clock; the timeout is a backstop.
timeout $((train_s + 60)) $dapx train --device cuda --init "${INIT:-models/target}" \
  --out "$out/target" --tasks "$tasks" --templates eval --curriculum "${CURRICULUM:-4096:100000}" \
  --minutes "$minutes" --tokens-per-step "${TOKENS:-32768}" --lr "${LR:-3e-4}" \
  --warmup 20 --min-lr-fraction 0.1 --text-share 0.02 --eval-every 0 --eval-samples 0 \
  --save-every 50 --save-dtype bf16 --seed "${SEED:-71}" >"$logs/train.log" 2>&1
echo "train: exit $?"
grep -E "^step" "$logs/train.log" | awk 'NR % 5 == 1' | tail -12
tail -3 "$logs/train.log"
# Only what differs from models/target comes back.
rm -f "$out/target/tokenizer.json" "$out/target/tokenizer_config.json" \
  "$out/target/generation_config.json"

step "evaluation at 4096 tokens"
ev=/tmp/dapx-device-eval
rm -rf $ev /tmp/dapx-device-eval.jsonl && mkdir -p $ev
cp "$out/target/"* $ev/ && cp models/target/tokenizer*.json models/target/generation_config.json $ev/
timeout 100 $dapx eval --device cuda -m $ev --tasks "$tasks" --lengths 4096 \
  --samples "${SAMPLES:-20}" --methods full -o /tmp/dapx-device-eval.jsonl >"$logs/eval-4096.md" 2>&1
echo "eval: exit $?"
grep -E "^\| (niah|avg|task)" "$logs/eval-4096.md"
cp /tmp/dapx-device-eval.jsonl "$logs/" 2>/dev/null

step benchmark
if [ -z "${SKIP_BENCH:-}" ]; then
m=/tmp/dapx-cuda-models
[ -f $m/q05/config.json ] || $dapx make-model --arch qwen2 --shape qwen2.5-0.5b --seed 1 --out $m/q05 >/dev/null
[ -f $m/draft/config.json ] || $dapx make-model --arch qwen2 --shape tiny --seed 2 --max-position 32768 --out $m/draft >/dev/null
bench_s=$((${DEADLINE:-570} - SECONDS - 10))
[ $bench_s -lt 20 ] && bench_s=20
timeout $bench_s $dapx bench -m $m/q05 -d $m/draft --device cuda --lengths "${BENCH_LENGTHS:-1024,32000}" \
  --methods full,speckv-pc --new-tokens 64 --repeats 1 --out "$logs/bench" >"$logs/bench.log" 2>&1
echo "bench: exit $?"
cat "$logs/bench.log" | tail -12
fi
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader

tar czf "$out/logs.tgz" -C "$out" logs
step done
