#!/usr/bin/env bash
# The CUDA check, for a machine with an NVIDIA GPU and PyTorch: builds dapx against PyTorch's
# bundled CUDA LibTorch (no code change, only CMAKE_PREFIX_PATH), runs the CUDA tests
# (tests/cuda: parity with the naive reference, every method as on the CPU), runs every other
# test against that LibTorch, then measures methods on a qwen2.5-0.5b-shaped model.
#   scripts/cuda-check.sh [OUT_DIR]      (default: cuda-check-out)
# Build dependencies as in install-deps.sh, or DAPX_DEBS=DIR (see cuda-build.sh).
# LENGTHS / METHODS / NEW_TOKENS / REPEATS override the benchmark's prompt lengths, methods,
# generated tokens and repeats (dapx bench).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-cuda-check-out}
mkdir -p "$out"
out=$(realpath "$out")
source scripts/cuda-build.sh
cuda_build "$out" || exit 1
b=build-cuda

SECONDS=0
$b/tests/cuda/test_cuda >"$out/test_cuda.log" 2>&1
echo "test_cuda: exit $?, ${SECONDS} s"
grep -E "^\[ *(OK|FAILED|SKIPPED|PASSED) |Failure|Expected|Which is|actual" "$out/test_cuda.log" | head -60

SECONDS=0
(cd $b && timeout ${TEST_TIMEOUT:-240} ctest -j 8 --output-on-failure -E 'Cuda' >"$out/ctest.log" 2>&1)
grep -E "tests passed|tests failed|Failed|\*\*\*" "$out/ctest.log" | head -30
echo "ctest: ${SECONDS} s"

dapx=$b/apps/dapx
m=/tmp/dapx-cuda-models
[ -f $m/q05/config.json ] || $dapx make-model --arch qwen2 --shape qwen2.5-0.5b --seed 1 --out $m/q05 >/dev/null
[ -f $m/draft/config.json ] || $dapx make-model --arch qwen2 --shape tiny --seed 2 --max-position 32768 --out $m/draft >/dev/null
[ -n "${SKIP_BENCH:-}" ] && exit 0
SECONDS=0
# LENGTHS and METHODS may be space- or comma-separated; no --budget: each method's own (KV 256,
# prompt 2048, SpecKV-PC 2048 -> 256).
lengths=${LENGTHS:-1024 4096 16384}
methods=${METHODS:-full snapkv speckv:dense speckv:sparse specpc speckv-pc}
rm -rf "$out/methods_cuda"
timeout ${BENCH_TIMEOUT:-240} $dapx bench -m $m/q05 -d $m/draft --device cuda \
  --lengths "${lengths// /,}" --methods "${methods// /,}" --new-tokens ${NEW_TOKENS:-32} \
  --repeats ${REPEATS:-1} --out "$out/methods_cuda"
echo "bench: ${SECONDS} s"
