#!/usr/bin/env bash
# Continues training the default target on an NVIDIA GPU (a CUDA build of the same code:
# `dapx train --device cuda`), for a device session of a few minutes, then evaluates it there.
#   scripts/train-cuda.sh [OUT_DIR]      (default: train-cuda-out)
# MINUTES (training wall time, default 6), CURRICULUM, TOKENS (per step), LR, SEED, TASKS and
# SAMPLES (held-out samples per task at 4096 tokens, default 50) override the defaults.
# Build dependencies as in install-deps.sh, or DAPX_DEBS=DIR (see cuda-build.sh).
# What comes back fits a device run's $OUT (at most 8 files of 16 MiB): the bf16 checkpoint
# (config.json, model.safetensors, train_state.json; the tokenizer is models/target's), the
# training log and the evaluation. Ship it with:
#   cp OUT_DIR/target/{config.json,model.safetensors,train_state.json} models/target/
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-train-cuda-out}
mkdir -p "$out"
out=$(realpath "$out")
source scripts/cuda-build.sh
cuda_build "$out" dapx || exit 1
dapx=build-cuda/apps/dapx
tasks=${TASKS:-niah_single_1,niah_single_2,niah_single_3,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multivalue,niah_multiquery}

SECONDS=0
# Killed at MINUTES; a checkpoint is written every 10 steps, so at most 10 steps are lost.
timeout $((${MINUTES:-6} * 60)) $dapx train --device cuda --init models/target --out "$out/target" \
  --tasks "$tasks" --templates eval --curriculum "${CURRICULUM:-1024:200,2048:300,4096:2000}" \
  --tokens-per-step "${TOKENS:-32768}" --lr "${LR:-3e-4}" --warmup 10 --min-lr-fraction 0.3 \
  --text-share 0.02 --eval-every 0 --save-every 10 --save-dtype bf16 --seed "${SEED:-71}" \
  >"$out/train.log" 2>&1
echo "train: exit $? after ${SECONDS} s; last step: $(grep -o 'step [0-9]*/[0-9]*' "$out/train.log" | tail -1)"
# Only what differs from models/target comes back (8 files at most).
rm -f "$out/target/tokenizer.json" "$out/target/tokenizer_config.json" \
  "$out/target/generation_config.json"
eval_dir=/tmp/dapx-train-cuda-eval
rm -rf $eval_dir && mkdir -p $eval_dir && cp "$out/target/"* models/target/tokenizer*.json \
  models/target/generation_config.json $eval_dir/
rm -f /tmp/dapx-train-cuda-eval.jsonl
SECONDS=0
$dapx eval --device cuda -m $eval_dir --tasks "$tasks" --lengths 4096 --samples "${SAMPLES:-50}" \
  --methods full -o /tmp/dapx-train-cuda-eval.jsonl >"$out/eval-4096.md" 2>&1
echo "eval: exit $? after ${SECONDS} s"
grep -E "^\| (niah|avg)" "$out/eval-4096.md"
