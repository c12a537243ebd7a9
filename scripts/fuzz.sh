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
mkdir -p "$corpus/bytecode" "$corpus/assembler" "$corpus/conformance_file" "$corpus/loader" "$corpus/test_run"
for f in "$shared"/conformance/*.data; do
  name=$(basename "$f" .data)
  "$bpfvm" asm "$f" -o "$corpus/bytecode/$name.bin"
  "$bpfvm" disasm "$f" > "$corpus/assembler/$name.s"
  cp "$f" "$corpus/conformance_file/"
done

# Callbacks (fuzz_bytecode's helper 6 runs r1 as one): a function's address from lddw, and one the
# program builds from the tag itself, of the first function and of another.
printf 'lddw %%r1, 4, 4\nmov %%r2, 5\ncall 6\nexit\nmov %%r0, %%r1\nexit\n' > "$corpus/callback_lddw.s"
printf 'jeq %%r1, 5, +5\nlddw %%r1, 0xca11bacc00000000\nmov %%r2, 5\ncall 6\nexit\nmov %%r0, 1\nexit\n' > "$corpus/callback_main.s"
printf 'lddw %%r1, 0xca11bacc00000005\nmov %%r2, 5\ncall 6\nexit\nmov %%r6, %%r1\nmov %%r0, %%r6\nexit\n' > "$corpus/callback_forged.s"
# Loops that walk r1 (the input itself) by a stride: checked mode runs them in windows without
# checks (jit/src/windows.hpp) until they would leave the input.
printf 'mov %%r0, 0\nmov %%r2, 0\nl: mov %%r3, %%r1\nadd %%r3, %%r2\nldxb %%r3, [%%r3]\nadd %%r0, %%r3\nadd %%r2, 1\njne %%r2, 200, l\nexit\n' > "$corpus/window_bytes.s"
printf 'mov %%r2, %%r1\nl: ldxdw %%r3, [%%r2+4]\nstxw [%%r2], %%r3\nadd %%r2, 8\njne %%r3, 12345, l\nexit\n' > "$corpus/window_words.s"
printf 'mov32 %%r5, 1\nmov %%r0, 0\nja b\na: mov32 %%r0, %%r5\nadd32 %%r5, 1\nb: mov %%r2, %%r1\nadd %%r2, %%r0\nldxb %%r3, [%%r2]\njne %%r3, 0, a\nexit\n' > "$corpus/window_rotated.s"
for f in "$corpus"/*.s; do
  "$bpfvm" asm "$f" -o "$corpus/bytecode/$(basename "$f" .s).bin"
  mv "$f" "$corpus/assembler/"
done

find "$shared/ebpf-samples" -type f ! -name '*.csv' ! -name '*.md' | while read -r f; do
  cp "$f" "$corpus/loader/$(echo "$f" | md5sum | cut -c1-16)"
done

# Test-run inputs: each program type (first byte), no context, an Ethernet + IPv4 frame; and each
# with a zeroed context of its type's size.
frame=$(printf '\\x%02x' 0 0 0 0 0 0 2 0 0 0 0 1 8 0 69 0 0 46 0 1 0 0 64 17 0 0 10 0 0 1 10 0 0 2 0 53 0 53 0 26 0 0 $(seq 1 18))
for t in 0 1 2 3 4; do
  printf "\\x$(printf %02x $t)\\x00\\x00$frame" > "$corpus/test_run/type$t"
done
printf '\x00\x18\x00' > "$corpus/test_run/xdp_md"; head -c 24 /dev/zero >> "$corpus/test_run/xdp_md"
printf "$frame" >> "$corpus/test_run/xdp_md"
printf '\x01\xc0\x00' > "$corpus/test_run/skb"; head -c 192 /dev/zero >> "$corpus/test_run/skb"
printf "$frame" >> "$corpus/test_run/skb"
printf '\x03\x08\x00\x01\x02\x03\x04\x05\x06\x07\x08' > "$corpus/test_run/syscall"

for target in bytecode assembler conformance_file loader test_run; do
  echo "== fuzz_$target for ${seconds}s"
  mkdir -p "build/fuzz/artifacts/$target"
  build/fuzz/fuzz/fuzz_$target "$corpus/$target" -max_total_time="$seconds" -max_len=$([ "$target" = loader ] && echo 65536 || echo 4096) -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$target/" 2>&1 | tail -n 12
done
