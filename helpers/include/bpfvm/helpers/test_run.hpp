// bpfvm's BPF_PROG_TEST_RUN: a program run on a test input the way the kernel's test run runs it
// (the context built as the kernel builds it for the program type, the packet and context copied
// out as the kernel copies them), and the input refused where the kernel refuses it, with the
// errno it gives. This is what `bpfvm run OBJ` and the kernel oracle (`bpfvm diff`) use, so that
// bpfvm and the kernel are always handed the same thing.
//
// The kernel's rules, as measured on Linux 6.18 (Oracle.TestRunInputRulesAreTheKernels in
// tests/kernel_oracle_test.cpp checks them against the running kernel on a grid of inputs):
//   XDP           packet of at least 14 bytes; at most 3,520 in the linear part, the rest in 4 KiB
//                 fragments; it comes back with its metadata in front. Optional xdp_md: data_meta
//                 0, data (the metadata's length) and data_end (the packet's length) offsets,
//                 ingress_ifindex of an existing device, rx_queue_index and egress_ifindex 0.
//   tc, socket    packet of 14 to 3,712 bytes (an IPv4 frame at least 34, an IPv6 one 54);
//                 optional __sk_buff of which only mark, priority, ingress_ifindex, ifindex (an
//                 existing device), cb, tstamp, wire_len (at least the skb's length, at most
//                 65,536), gso_segs (below 65,536), gso_size and hwtstamp may be non-zero; bytes
//                 past its 192 must be zero (E2BIG).
//   syscall       context of at most 65,535 bytes, no packet, no repeat; the context is copied
//                 back after the run.
//   raw tracepoint  at most 96 bytes of arguments, no packet, no repeat.
// The return value of a test run is the low 32 bits of r0; RunResult keeps all 64.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bpfvm/helpers/runtime.hpp"
#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/interpreter.hpp"
#include "bpfvm/vm/specs.hpp"

namespace bpfvm::helpers {

struct TestInput {
    std::vector<uint8_t> data;  // the packet (XDP, tc, socket filters)
    std::vector<uint8_t> ctx;   // xdp_md, __sk_buff, the syscall context, the raw tracepoint arguments
    // Runs of the program on the same context, one after another, as the kernel's repeat (0 counts
    // as 1; syscall and raw tracepoint runs must have 0). The outputs are the last run's.
    uint32_t repeat = 1;
};

struct TestOutput {
    vm::RunResult result;           // r0 (all 64 bits) or the trap
    std::vector<uint8_t> data_out;  // the packet after the run, as the kernel copies it out
    std::vector<uint8_t> ctx_out;   // the context after the run (tc and socket filters: __sk_buff; syscall)
    double ns_per_run = 0;          // the runs' mean wall time, the context's set-up excluded (the kernel's duration)
};

// Why the kernel refuses an input: the errno BPF_PROG_TEST_RUN would fail with, and the rule.
struct InputRefusal {
    int err = 22;  // EINVAL
    std::string reason;
};

// Whether the kernel accepts `input` for a test run of a `type` program (see above).
std::optional<InputRefusal> refuse_input(vm::ProgramType type, const TestInput& input);

// Runs a program on `input` as a test run would: `execute` runs it (any engine) on the RunInput
// prepared here, with `runtime`'s maps and regions. The refusal is the kernel's, when it would
// refuse the input; a trap is in TestOutput::result.
using Execute = std::function<vm::RunResult(const vm::RunInput&)>;
std::variant<TestOutput, InputRefusal> test_run(const Runtime& runtime, vm::ProgramType type, const TestInput& input,
                                                const Execute& execute);

// Programs whose type the kernel test-runs with these rules.
bool has_test_run(vm::ProgramType type);

}  // namespace bpfvm::helpers
