#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-19) and runs each for SECONDS (default 60), seeded from the
# conformance programs. Needs a release build's bpfvm to make the seeds (scripts/bootstrap.sh test).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shared=${BPFVM_SHARED_DIR:-$(cd .. && pwd)/shared}
bpfvm=build/release/cli/bpfvm

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

corpus=build/fuzz/corpus
rm -rf "$corpus"
mkdir -p "$corpus/bytecode" "$corpus/assembler" "$corpus/conformance_file" "$corpus/loader"
for f in "$shared"/conformance/*.data; do
  name=$(basename "$f" .data)
  "$bpfvm" asm "$f" -o "$corpus/bytecode/$name.bin"
  "$bpfvm" disasm "$f" > "$corpus/assembler/$name.s"
  cp "$f" "$corpus/conformance_file/"
done

find "$shared/ebpf-samples" -type f ! -name '*.csv' ! -name '*.md' | while read -r f; do
  cp "$f" "$corpus/loader/$(echo "$f" | md5sum | cut -c1-16)"
done

for target in bytecode assembler conformance_file loader; do
  echo "== fuzz_$target for ${seconds}s"
  mkdir -p "build/fuzz/artifacts/$target"
  build/fuzz/fuzz/fuzz_$target "$corpus/$target" -max_total_time="$seconds" -max_len=$([ "$target" = loader ] && echo 65536 || echo 4096) -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$target/" 2>&1 | tail -n 12
done
