// Random eBPF programs for differential testing (the JIT against the interpreter today, the
// kernel against bpfvm later): valid, terminating programs that use every ALU and jump form of
// the opcode table, loads, stores and atomics inside the stack and the input buffer, bounded
// loops, forward branches, bpf-to-bpf calls and (optionally) helper calls.
//
// Contract of a generated program: r1 = a buffer of `buffer_size` bytes (r2 its length). Results
// never depend on where the buffer or the stack are: no pointer value reaches r0, a store or an
// ALU operation. With `hostile` set, some statements are stray accesses (outside the buffer and
// the frames, misaligned atomics) that only the checked engines may run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bpfvm/vm/helpers.hpp"
#include "bpfvm/vm/program.hpp"

namespace bpfvm::test {

struct RandomProgramOptions {
    std::size_t buffer_size = 64;  // a multiple of 8, at least 8
    unsigned statements = 24;      // per function body, roughly
    unsigned max_nesting = 2;      // loops and branches inside each other
    unsigned functions = 3;        // subprograms besides the main one (0..3)
    bool helper_calls = true;      // calls to kMixHelper (registered by mix_helpers())
    bool legacy_packet = true;     // LD_ABS / LD_IND
    bool hostile = false;          // add stray accesses
    // Set r1-r5 again after every call (the kernel verifier's rule). Off, programs also read the
    // values bpfvm keeps in r1-r5 across helper calls.
    bool reset_after_calls = true;
    // Bytes of stack each function uses (a multiple of 8, at most 512). The kernel allows 512 for
    // the whole call chain; bpfvm gives every frame 512.
    unsigned stack_size = 512;
    // Zero the stack a function uses when it starts (bpfvm's frames start zeroed; the kernel's
    // hold whatever was there, and a privileged program may read them).
    bool init_stack = false;
    // Call every function from the main one (the kernel refuses unreachable code).
    bool call_all_functions = false;
    // Add clang's short forward jumps over one write, which the JIT lowers without a branch:
    // `x = v; if (c) goto +1; x = 1 - v` (clang's x = c, v 0 or 1), x |= a bit, x = another
    // constant; sometimes with an instruction in between that may read or write x. (Off, the
    // programs are those of earlier versions, seed for seed.)
    bool selects = false;
};

inline constexpr int32_t kMixHelper = 0x4d1;

// A helper table with kMixHelper: r0 = a hash of r1..r5.
vm::HelperTable mix_helpers();

// The program for `seed` (the same seed gives the same program).
std::vector<vm::RawInsn> random_program(uint64_t seed, const RandomProgramOptions& options = {});

// The input buffer for `seed`.
std::vector<uint8_t> random_buffer(uint64_t seed, std::size_t size);

}  // namespace bpfvm::test
