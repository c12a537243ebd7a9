// The JIT (DESIGN.md, decision 8): eBPF compiled to native code with asmjit, one lowering per
// instruction kind on a fixed register map. The front end (this API, the run-time state, entry,
// exits and traps, executable memory) is shared; the instruction lowering lives in the
// architecture's back end (x86_64/ today).
//
// Verified mode has no run-time checks: only for programs a verifier accepted. Checked mode is for
// programs nobody verified, as the interpreter's checked mode: every load and store is checked
// against the run's regions (a stray access traps with its pc and address), atomics must be
// aligned, and an optional instruction budget stops a program that runs too long. The budget is
// charged as the interpreter charges it, at function entries and loop headers
// (vm::budget_charges): the same runs finish, with the same instructions charged, and the others
// stop at the same pc.
//
// Code pages are never writable and executable at once: code is written through a memory file
// that the process maps read-execute only (or, where those are refused, into pages made
// read-execute after writing), before the first run.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/helpers.hpp"
#include "bpfvm/vm/interpreter.hpp"
#include "bpfvm/vm/program.hpp"

namespace bpfvm::jit {

struct JitOptions {
    // Run-time checks for unverified programs (see above).
    bool checked = false;
    // Constant blinding: immediates in the code are XORed with a random key chosen per compile
    // and unblinded at run time, so a program cannot plant chosen bytes in executable memory.
    bool blind_constants = false;
    uint64_t blinding_seed = 0;  // the keys' seed; 0 = from std::random_device (tests fix it)
    // Emit the text of the code (asmjit's logger) for listing().
    bool keep_listing = false;
    // Which processors the instruction choice is tuned for: the one compiling (default), or a
    // named family, so that the same program gives the same code on any machine (golden tests).
    enum class Tuning : uint8_t { Host, Intel, Other };
    Tuning tuning = Tuning::Host;
};

class JitProgram {
public:
    // Compiles a validated program. Helper calls are bound to `helpers` now; an id missing there
    // traps when executed, as in the interpreter.
    static Expected<std::unique_ptr<JitProgram>> compile(const vm::Program& program, const vm::HelperTable& helpers,
                                                         const JitOptions& options = {});
    ~JitProgram();
    JitProgram(const JitProgram&) = delete;
    JitProgram& operator=(const JitProgram&) = delete;

    // Same contract as vm::Interpreter::run in the matching mode. `budget` (checked programs
    // only; 0 = none) bounds the instructions the run may execute; RunResult::instructions is
    // what a checked run paid for.
    [[nodiscard]] vm::RunResult run(const vm::RunInput& input, uint64_t budget = 0) const {
        if (leaf_ != nullptr) {
            return leaf_result(input.r1, input.r2, input.r3, input.r4, input.r5);
        }
        return run_general(input, budget);
    }
    [[nodiscard]] vm::RunResult run_buffer(std::span<uint8_t> buffer, uint64_t budget = 0) const {
        if (leaf_ != nullptr) {
            return leaf_result(buffer.empty() ? 0 : reinterpret_cast<uintptr_t>(buffer.data()), buffer.size(), 0, 0, 0);
        }
        return run_buffer_general(buffer, budget);
    }
    [[nodiscard]] bool checked() const;
    // Whether the program compiled to a leaf (see below): its frame is on the native stack, so
    // its r10 is not the address the other engines give it.
    [[nodiscard]] bool leaf() const { return leaf_ != nullptr; }

    // A leaf program as the plain function it compiled to: r1..r5 in, r0 out (run_buffer passes
    // the buffer's address, or 0 if it is empty, and its length). Calling it is the whole run,
    // with nothing to build or test around it: the way to run a verified program where a few
    // nanoseconds a run matter. Null when the program is not a leaf (see leaf()); valid while
    // this JitProgram lives.
    using Function = uint64_t (*)(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5);
    [[nodiscard]] Function function() const { return leaf_; }

    [[nodiscard]] std::size_t code_size() const;   // bytes reserved for the code (from code())
    [[nodiscard]] std::size_t code_bytes() const;  // bytes of generated code
    [[nodiscard]] const void* code() const;        // where the code lives (read-execute pages)
    // The native code, with the eBPF instructions interleaved (needs JitOptions::keep_listing).
    [[nodiscard]] const std::string& listing() const;

    struct Impl;

private:
    explicit JitProgram(std::unique_ptr<Impl> impl);
    [[nodiscard]] vm::RunResult run_general(const vm::RunInput& input, uint64_t budget) const;
    [[nodiscard]] vm::RunResult run_buffer_general(std::span<uint8_t> buffer, uint64_t budget) const;

    // Leaf programs (no calls, verified mode) are plain functions of r1..r5 and never trap: the
    // round trip is a call (this is what makes an empty program's run a few nanoseconds).
    using LeafFn = Function;
#if defined(__clang__)
    // Generated code has no type signature in front of it for UBSan's function check to read.
    __attribute__((no_sanitize("function")))
#endif
    vm::RunResult
    leaf_result(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5) const {
        return vm::RunResult(leaf_(r1, r2, r3, r4, r5));
    }

    std::unique_ptr<Impl> impl_;
    LeafFn leaf_ = nullptr;
};

}  // namespace bpfvm::jit
