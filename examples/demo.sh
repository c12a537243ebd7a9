#!/usr/bin/env bash
# The README's demo: run a clang-compiled XDP firewall and a socket filter, assemble, disassemble
# and run a packet filter, time it on the interpreter and the JIT, stop a hostile program, run the
# conformance suite, and run the firewall in the Linux kernel beside bpfvm and compare.
# BPFVM = path to the bpfvm binary.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bpfvm=${BPFVM:-$here/../build/release/cli/bpfvm}
objects=${BPFVM_EXAMPLES:-$here/../build/release/examples}
shared=${BPFVM_SHARED_DIR:-$(cd "$here/../.." && pwd)/shared}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# An Ethernet + IPv4 + TCP packet to 192.168.1.7:80.
printf '\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00'\
'\x45\x00\x00\x28\x00\x01\x00\x00\x40\x06\x00\x00\x0a\x00\x00\x01\xc0\xa8\x01\x07'\
'\x30\x39\x00\x50\x00\x00\x00\x00\x00\x00\x00\x00\x50\x02\x20\x00\x00\x00\x00\x00' > "$tmp/http.pkt"
# The same packet to port 443.
sed 's/\x00\x50\x00\x00\x00\x00/\x01\xbb\x00\x00\x00\x00/' "$tmp/http.pkt" > "$tmp/https.pkt"

step() { printf '\n$ %s\n' "$*"; "$@"; }

# Packets to 10.0.0.2, TCP port 23 (telnet) and 80 (http).
tcp_packet() {  # $1: destination port as two \x bytes
  printf '\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00'
  printf '\x45\x00\x00\x28\x00\x01\x00\x00\x40\x06\x00\x00\x0a\x00\x00\x01\x0a\x00\x00\x02'
  printf "\x30\x39$1"
  printf '\x00\x00\x00\x00\x00\x00\x00\x00\x50\x02\x20\x00\x00\x00\x00\x00'
}
tcp_packet '\x00\x17' > "$tmp/telnet.pkt"
tcp_packet '\x00\x50' > "$tmp/web.pkt"

# 1. A clang-compiled XDP firewall (examples/xdp_firewall.bpf.c), unmodified.
step "$bpfvm" inspect "$objects/xdp_firewall.o"
step "$bpfvm" run "$objects/xdp_firewall.o" --packet "$tmp/telnet.pkt"
step "$bpfvm" run "$objects/xdp_firewall.o" --packet "$tmp/web.pkt" --json
step "$bpfvm" run "$objects/xdp_firewall.o" --packet "$tmp/web.pkt" --set always_blocked=80
step "$bpfvm" run "$objects/xdp_firewall.o" --packet "$tmp/web.pkt" --engine interp --repeat 200000

# 2. A socket filter that logs packets to a ring buffer (examples/packet_log.bpf.c).
step "$bpfvm" run "$objects/packet_log.o" --packet "$tmp/web.pkt"

# 3. Hand-written bytecode: a filter in assembly, and a hostile program stopped.

step "$bpfvm" disasm "$here/http_to_subnet.s" --syntax llvm
step "$bpfvm" run "$here/http_to_subnet.s" --mem "$tmp/http.pkt"
step "$bpfvm" run "$here/http_to_subnet.s" --mem "$tmp/https.pkt"
step "$bpfvm" run "$here/http_to_subnet.s" --mem "$tmp/http.pkt" --engine interp --repeat 1000000 --json
step "$bpfvm" run "$here/hostile.s"
echo "(exit status $?: the program trapped; the host is unharmed)"
step "$bpfvm" conformance "$shared/conformance" --engine all

# 4. The JIT: the native code of the filter, and the firewall timed on it.
step "$bpfvm" jit-dump "$here/http_to_subnet.s"
step "$bpfvm" run "$objects/xdp_firewall.o" --packet "$tmp/web.pkt" --engine jit --repeat 1000000

# 5. The kernel as oracle: the firewall run by the kernel's BPF_PROG_TEST_RUN and by every bpfvm
#    engine on the same packets, compared (needs root for bpf(); otherwise it says why).
step "$bpfvm" diff "$objects/xdp_firewall.o" --packet "$tmp/telnet.pkt" --packet "$tmp/web.pkt" --repeat 100000
