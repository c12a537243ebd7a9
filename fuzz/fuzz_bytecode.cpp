// Arbitrary bytes as bytecode: decode + validate; for valid programs, disassemble -> assemble must
// give the same bytes back, and the checked interpreter must end (a budget bounds it) without
// touching memory outside its regions (AddressSanitizer watches). The checked JIT runs every such
// program and must end the same way (same r0, memory and budget charged, or the same trap at the
// same pc); where the checked interpreter finished, the unchecked engines must agree with it too.
// Helper 5 returns its r1; helper 6 runs r1 as a callback.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bpfvm/jit/engine.hpp"
#include "bpfvm/vm/assembler.hpp"
#include "bpfvm/vm/interpreter.hpp"

namespace {

// Whether the program uses r10 as a value (copies it, computes or compares with it, stores it),
// not only as the base of loads and stores. Such a program can see where its stack is; the
// engines put it at different addresses (a leaf JIT program's frame is on the native stack), so
// their answers may differ and an unchecked run may take a path the checked one did not.
bool reads_frame_pointer_value(const bpfvm::vm::Program& program) {
    using bpfvm::vm::Form;
    constexpr unsigned kFp = bpfvm::vm::kFramePointer;
    for (std::size_t pc = 0; pc < program.size(); pc += program[pc].slots()) {
        const bpfvm::vm::Instruction& insn = program[pc];
        switch (insn.info().form) {
            case Form::LoadMem:  // r10 as the base: fine
            case Form::StoreImm:
                break;
            case Form::StoreReg:  // the stored value
            case Form::Atomic:
            case Form::AluReg:
            case Form::CondReg:
            case Form::LoadInd:
                if (insn.src == kFp || (insn.info().form == Form::CondReg && insn.dst == kFp)) {
                    return true;
                }
                break;
            case Form::CondImm:
            case Form::Callx:
                if (insn.dst == kFp) {
                    return true;
                }
                break;
            case Form::AluImm:
            case Form::AluUnary:
            case Form::Endian:
            case Form::LoadImm64:
            case Form::LoadAbs:
            case Form::Jump:
            case Form::Jump32:
            case Form::Call:
            case Form::CallLocal:
            case Form::CallBtf:
            case Form::Exit:
                break;  // r10 is never written, so never an ALU destination
        }
    }
    return false;
}

uint64_t echo(uint64_t r1, uint64_t, uint64_t, uint64_t, uint64_t, bpfvm::vm::CallContext*) {
    return r1;
}

// Runs r1 as a callback with r2 as its argument (as bpf_loop does): programs may pass any value,
// including addresses of their functions they build themselves.
uint64_t call_back(uint64_t fn, uint64_t arg, uint64_t, uint64_t, uint64_t, bpfvm::vm::CallContext* ctx) {
    const uint64_t r0 = ctx->invoke(ctx, fn, arg, 0, 0, 0, 0);
    return ctx->fault != nullptr ? 0 : r0;
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
    // (Its first argument is the function: callbacks run only through helpers that say so.)
    (void)helpers.add(6, "call_back", call_back,
                      HelperPrototype{RetKind::Integer,
                                      {ArgKind::Function, ArgKind::Anything, ArgKind::Anything, ArgKind::Anything,
                                       ArgKind::Anything}});
    std::vector<uint8_t> input(64);
    for (size_t i = 0; i < input.size(); ++i) {
        input[i] = static_cast<uint8_t>(i * 7);
    }
    constexpr uint64_t kBudget = 20'000;
    Expected<jit::Executable> checked_interp = jit::Executable::create(*program, helpers, jit::Engine::InterpChecked);
    if (!checked_interp) {
        return 0;
    }
    std::vector<uint8_t> mem = input;
    const RunResult checked = checked_interp->run_buffer(mem, kBudget);
    const std::vector<uint8_t> after_checked = mem;
    for (jit::Engine engine : jit::available_engines()) {
        if (engine == jit::Engine::InterpChecked || (!jit::is_checked(engine) && !checked.ok())) {
            continue;  // unchecked engines only run what the checked interpreter finished
        }
        Expected<jit::Executable> exe = jit::Executable::create(*program, helpers, engine);
        if (!exe) {
            std::abort();  // every valid program compiles for every engine
        }
        if (exe->jit() != nullptr && exe->jit()->leaf() && !jit::is_checked(engine) &&
            reads_frame_pointer_value(*program)) {
            continue;  // it sees another stack address here: neither comparable nor safe unchecked
        }
        // On the same buffer (programs see addresses), restored to the input.
        mem = input;
        const RunResult r = exe->run_buffer(mem, kBudget);
        if (checked.ok()) {
            // It finished within the budget: every engine finishes it the same way, and the checked
            // JIT paid for exactly the instructions the interpreter counted.
            if (!r.ok() || r.r0 != checked.r0 || mem != after_checked ||
                (engine == jit::Engine::JitChecked && r.instructions != checked.instructions)) {
                std::abort();
            }
            continue;
        }
        // A trap: the same one at the same pc (budget traps too: every checked engine charges the
        // budget at the same points), with memory as the interpreter left it and the same charge.
        if (r.ok() || r.trap->message() != checked.trap->message() || mem != after_checked ||
            r.instructions != checked.instructions) {
            std::abort();
        }
    }
    return 0;
}
