// Arbitrary bytes as bytecode: decode + validate; for valid programs, disassemble -> assemble must
// give the same bytes back, and the checked interpreter must end (a budget bounds it) without
// touching memory outside its regions (AddressSanitizer watches); where it does not trap, the
// fast mode and the JIT must give the same r0 and memory.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bpfvm/vm/assembler.hpp"
#include "bpfvm/vm/interpreter.hpp"
#ifdef BPFVM_HAVE_JIT
#include "bpfvm/jit/jit.hpp"
#endif

namespace {
uint64_t echo(uint64_t r1, uint64_t, uint64_t, uint64_t, uint64_t, bpfvm::vm::CallContext*) {
    return r1;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace bpfvm;
    using namespace bpfvm::vm;
    Expected<Program> program = Program::from_bytes({data, size});
    if (!program) {
        return 0;
    }
    const std::string text = disassemble(*program, Syntax::Conformance);
    (void)disassemble(*program, Syntax::Llvm);
    Expected<std::vector<RawInsn>> again = assemble(text);
    if (!again || *again != program->raw()) {
        std::abort();  // the disassembler printed something that does not assemble back
    }
    HelperTable helpers;
    (void)helpers.add(5, "echo", echo);
    Expected<Interpreter> interp = Interpreter::create(*program, helpers);
    if (!interp) {
        return 0;
    }
    std::vector<uint8_t> input(64);
    for (size_t i = 0; i < input.size(); ++i) {
        input[i] = static_cast<uint8_t>(i * 7);
    }
    std::vector<uint8_t> mem = input;
    const RunResult checked = interp->run_buffer(mem, RunOptions{Mode::Checked, 20'000});
    if (!checked.ok()) {
        return 0;
    }
    // The same input did not trap, so the fast mode may run it: on the same buffer (programs see
    // addresses), restored to the input, it must agree exactly.
    const std::vector<uint8_t> after_checked = mem;
    mem = input;
    const RunResult fast = interp->run_buffer(mem, RunOptions{Mode::Fast, 0});
    if (!fast.ok() || fast.r0 != checked.r0 || mem != after_checked) {
        std::abort();
    }
#ifdef BPFVM_HAVE_JIT
    // And the JIT, on the same buffer again.
    Expected<std::unique_ptr<jit::JitProgram>> code = jit::JitProgram::compile(*program, helpers);
    if (!code) {
        std::abort();  // every valid program compiles
    }
    mem = input;
    const RunResult jitted = (*code)->run_buffer(mem);
    if (!jitted.ok() || jitted.r0 != checked.r0 || mem != after_checked) {
        std::abort();
    }
#endif
    return 0;
}
