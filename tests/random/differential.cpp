#include "differential.hpp"

#include <algorithm>
#include <cstdio>

#include "bpfvm/jit/engine.hpp"
#include "bpfvm/vm/assembler.hpp"

namespace bpfvm::test {

namespace {

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
    // Every engine runs on the same buffer, restored before each run: programs see addresses, so
    // a stray access names the same one on every engine.
    std::vector<uint8_t> mem = buffer;
    const vm::RunResult want = ref->run_buffer(mem, budget);
    const std::vector<uint8_t> want_mem = mem;
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
        std::copy(buffer.begin(), buffer.end(), mem.begin());
        const vm::RunResult got = exe->run_buffer(mem, budget);
        if (want.ok() != got.ok()) {
            note(name + ": " + (got.ok() ? "finished with r0 = " + hex(got.r0) : "trap: " + got.trap->message()) +
                 "; interp-checked: " +
                 (want.ok() ? "finished with r0 = " + hex(want.r0) : "trap: " + want.trap->message()));
            continue;
        }
        if (want.ok() && got.r0 != want.r0) {
            note(name + ": r0 = " + hex(got.r0) + ", interp-checked: " + hex(want.r0));
        }
        if (!want.ok() && got.trap->message() != want.trap->message()) {
            // The same trap at the same pc; budget traps too (both engines charge the budget at
            // the same points).
            note(name + ": trap: " + got.trap->message() + "; interp-checked: " + want.trap->message());
        }
        for (std::size_t i = 0; i < mem.size(); ++i) {
            if (mem[i] != want_mem[i]) {
                note(name + ": buffer byte " + std::to_string(i) + " = " + hex(mem[i]) +
                     ", interp-checked: " + hex(want_mem[i]));
                break;
            }
        }
        if (e == jit::Engine::JitChecked && got.instructions != want.instructions) {
            note(name + ": " + std::to_string(got.instructions) +
                 " instructions, interp-checked: " + std::to_string(want.instructions));
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
