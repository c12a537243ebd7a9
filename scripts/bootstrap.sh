#!/usr/bin/env bash
# One command from a fresh Debian 12 machine:
#   scripts/bootstrap.sh demo   install what is needed, build bpfvm, run the demo
#   scripts/bootstrap.sh test   install what is needed, build everything, run the whole test suite
# Set BPFVM_SKIP_INSTALL=1 to skip apt-get (packages already present).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in
  demo|test) ;;
  *) echo "usage: scripts/bootstrap.sh demo|test" >&2; exit 2 ;;
esac

packages=(
  cmake ninja-build g++ pkgconf
  libcli11-dev libgtest-dev libbenchmark-dev libasmjit-dev libelf-dev libbpf-dev zlib1g-dev
  clang-19 llvm-19 libclang-rt-19-dev
)
if [ "${BPFVM_SKIP_INSTALL:-0}" != 1 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

cmake --preset release >/dev/null
if [ "$mode" = demo ]; then
  cmake --build --preset release --target bpfvm bpfvm_examples
  BPFVM=build/release/cli/bpfvm BPFVM_EXAMPLES=build/release/examples examples/demo.sh
else
  cmake --build --preset release
  ctest --preset release -j"$(nproc)"
fi
