# Sourced by cuda-check.sh and device-session.sh: builds dapx against PyTorch's bundled CUDA LibTorch
# (no code change, only CMAKE_PREFIX_PATH) in build-cuda/.
#   cuda_build OUT_DIR [TARGET...]      (no target: everything)
# Build dependencies as in install-deps.sh; where apt cannot reach them, DAPX_DEBS=DIR names a
# folder of Debian .deb files, unpacked into a private prefix (never into /). Writes
# OUT_DIR/{machine.txt,cmake.log,build.log}.
cuda_build() {
  local out=$1
  shift
  local prefix
  prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') || return 1
  if [ -n "${DAPX_DEBS:-}" ]; then
    local deps=/tmp/dapx-deps
    mkdir -p $deps
    for f in "$DAPX_DEBS"/*.deb; do dpkg -x "$f" $deps; done
    prefix="$prefix;$deps/usr"
    export LD_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  fi
  export PATH=/usr/local/cuda/bin:$PATH TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
    nproc
    g++ --version | head -1
  } 2>&1 | tee "$out/machine.txt"
  # dapx serve needs cpp-httplib through pkg-config; a GPU machine without apt may lack both.
  local server=ON
  pkg-config --exists cpp-httplib 2>/dev/null || server=OFF
  echo "dapx serve: $server (cpp-httplib through pkg-config)" | tee -a "$out/machine.txt"
  local gen targets=()
  gen=$(command -v ninja >/dev/null && echo "-G Ninja")
  for t in "$@"; do targets+=(--target "$t"); done
  local t0=$SECONDS
  cmake -S . -B build-cuda $gen -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DDAPX_SERVER=$server \
    >"$out/cmake.log" 2>&1 || { tail -40 "$out/cmake.log"; return 1; }
  # Keep going past a failing file, so that one run shows every error.
  if ! cmake --build build-cuda -j "$(nproc)" ${targets[@]+"${targets[@]}"} ${gen:+-- -k 0} >"$out/build.log" 2>&1; then
    grep -E "error|Error" -A3 "$out/build.log" | head -100
    return 1
  fi
  echo "configure + build: $((SECONDS - t0)) s"
}
