#!/bin/bash
# The paper's central relationship on the shipped target: accuracy of the draft-based methods
# with the shipped draft and with a weaker one (models/draft-weak: the part-1 draft of commit 9f311f3), 2048 tokens.
# (models/draft was then the draft now in models/draft-plain; the target was part 10.)
cd "$(dirname "$0")/../../.."
O=bench/results/eval-draft-quality-2048; mkdir -p $O
P=$(pgrep -f "dapx-s[0-9] train" | tr "\n" " "); [ -n "$P" ] && kill -STOP $P
T4=niah_single_1,niah_single_2,niah_single_3,niah_multikey_1
date
for D in models/draft models/draft-weak; do
  n=$(basename $D)
  build/apps/dapx analyze -m models/target -d $D --tasks $T4 --length 2048 --samples 5 > $O/analyze-$n.txt 2>&1
  build/apps/dapx eval -m $D --tasks $T4 --lengths 2048 --methods full --samples 10 -o $O/alone-$n.jsonl > $O/alone-$n.md 2>&1
  build/apps/dapx eval -m models/target -d $D --tasks $T4 --lengths 2048 --methods speckv --budgets 64,128 --samples 10 -o $O/speckv-$n.jsonl > $O/speckv-$n.md 2>&1
  build/apps/dapx eval -m models/target -d $D --tasks $T4 --lengths 2048 --methods specpc --budgets 256,512 --samples 10 -o $O/specpc-$n.jsonl > $O/specpc-$n.md 2>&1
  date
done
[ -n "$P" ] && kill -CONT $P
