#include "differential.hpp"

#include <cstdio>

#include "bpfvm/jit/engine.hpp"
#include "bpfvm/vm/assembler.hpp"

namespace bpfvm::test {

namespace {

std::string trap_text(const vm::Trap& t, const std::vector<uint8_t>& buffer) {
    vm::Trap copy = t;
    const auto base = reinterpret_cast<uintptr_t>(buffer.data());
    if (!buffer.empty() && t.address + 4096 >= base && t.address < base + buffer.size() + 4096) {
        copy.address = t.address - base;
        return copy.message() + " [buffer offset]";
    }
    return copy.message();
}

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

}  // namespace

Disagreement compare_engines(const vm::Program& program, const vm::HelperTable& helpers,
                             const std::vector<uint8_t>& buffer, uint64_t budget) {
    Disagreement d;
    auto note = [&](const std::string& line) {
        d.any = true;
        d.report += line + "\n";
    };
    Expected<jit::Executable> ref = jit::Executable::create(program, helpers, jit::Engine::InterpChecked);
    if (!ref) {
        note("interp-checked: " + ref.error().message());
        return d;
    }
    std::vector<uint8_t> want_mem = buffer;
    const vm::RunResult want = ref->run_buffer(want_mem, budget);
    for (jit::Engine e : jit::available_engines()) {
        if (e == jit::Engine::InterpChecked || (!jit::is_checked(e) && !want.ok())) {
            continue;
        }
        const std::string name(jit::to_string(e));
        Expected<jit::Executable> exe = jit::Executable::create(program, helpers, e);
        if (!exe) {
            note(name + ": " + exe.error().message());
            continue;
        }
        std::vector<uint8_t> mem = buffer;
        const vm::RunResult got = exe->run_buffer(mem, budget);
        if (want.ok() != got.ok()) {
            note(name + ": " + (got.ok() ? "finished with r0 = " + hex(got.r0) : "trap: " + trap_text(*got.trap, mem)) +
                 "; interp-checked: " +
                 (want.ok() ? "finished with r0 = " + hex(want.r0) : "trap: " + trap_text(*want.trap, want_mem)));
            continue;
        }
        if (want.ok() && got.r0 != want.r0) {
            note(name + ": r0 = " + hex(got.r0) + ", interp-checked: " + hex(want.r0));
        }
        if (!want.ok()) {
            // The checked JIT may run out of budget at the start of the block where the
            // interpreter trapped (see jit.hpp); any other trap must be the same.
            const bool early_budget =
                got.trap->kind == vm::TrapKind::BudgetExhausted && got.trap->pc <= want.trap->pc;
            if (!early_budget && trap_text(*got.trap, mem) != trap_text(*want.trap, want_mem)) {
                note(name + ": trap: " + trap_text(*got.trap, mem) + "; interp-checked: " +
                     trap_text(*want.trap, want_mem));
            }
            if (early_budget) {
                continue;
            }
        }
        for (std::size_t i = 0; i < mem.size(); ++i) {
            if (mem[i] != want_mem[i]) {
                note(name + ": buffer byte " + std::to_string(i) + " = " + hex(mem[i]) + ", interp-checked: " +
                     hex(want_mem[i]));
                break;
            }
        }
        if (e == jit::Engine::JitChecked && want.ok() && got.instructions != want.instructions) {
            note(name + ": " + std::to_string(got.instructions) + " instructions, interp-checked: " +
                 std::to_string(want.instructions));
        }
    }
    return d;
}

std::string as_test_file(const vm::Program& program, const std::vector<uint8_t>& buffer, const std::string& comment) {
    std::string out;
    for (std::size_t start = 0; start <= comment.size();) {
        std::size_t end = comment.find('\n', start);
        if (end == std::string::npos) {
            end = comment.size();
        }
        if (end > start) {
            out += "# " + comment.substr(start, end - start) + "\n";
        }
        start = end + 1;
    }
    out += "-- asm\n" + vm::disassemble(program, vm::Syntax::Conformance) + "-- mem\n";
    for (std::size_t i = 0; i < buffer.size(); ++i) {
        char b[4];
        std::snprintf(b, sizeof b, "%02x", buffer[i]);
        out += b;
        out += (i + 1) % 16 == 0 || i + 1 == buffer.size() ? "\n" : " ";
    }
    return out;
}

}  // namespace bpfvm::test
