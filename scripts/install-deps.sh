#!/usr/bin/env bash
# Installs the Debian packages dapx needs, only those missing. Idempotent; quiet when all is there.
set -euo pipefail
packages=(build-essential cmake libtorch-dev nlohmann-json3-dev libpcre2-dev
          libutf8proc-dev libcli11-dev libgtest-dev
          libopenblas0-openmp  # LibTorch calls the system BLAS: OpenBLAS, not the reference one
          wamerican fortunes  # evaluation and training texts: dictionary words, English prose
          gnuplot-nox         # plots of the evaluation reports and of dapx bench
          libcpp-httplib-dev pkg-config  # dapx serve (HTTP)
          haproxy             # deploy/: replicas behind a load balancer (and its test)
          help2man)           # make install: the man page from dapx --help
# `make fuzz` only (install-deps.sh --fuzz): clang with libFuzzer; libomp for the OpenMP kernels.
if [ "${1:-}" = "--fuzz" ]; then
  packages+=(clang libclang-rt-dev libomp-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "dapx: installing missing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "dapx: packages installed."
