// The JIT (DESIGN.md, decision 8): eBPF compiled to native code with asmjit, one lowering per
// instruction kind on a fixed register map. The front end (this API, the run-time state, entry,
// exits and traps, executable memory) is shared; the instruction lowering lives in the
// architecture's back end (x86_64/ today).
//
// Verified mode has no run-time checks: only for programs a verifier accepted. Code pages are
// written while not executable and made executable (never writable) before the first run.
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
    // Emit the text of the code (asmjit's logger) for dump().
    bool keep_listing = false;
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

    // Same contract as vm::Interpreter::run in Mode::Fast (options.mode must be Fast).
    [[nodiscard]] vm::RunResult run(const vm::RunInput& input) const;
    [[nodiscard]] vm::RunResult run_buffer(std::span<uint8_t> buffer) const;

    [[nodiscard]] std::size_t code_size() const;
    [[nodiscard]] const void* code() const;  // where the code lives (read-execute pages)
    // The native code, with the eBPF instructions interleaved (needs JitOptions::keep_listing).
    [[nodiscard]] const std::string& listing() const;

    struct Impl;

private:
    explicit JitProgram(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace bpfvm::jit
