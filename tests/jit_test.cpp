// The x86-64 JIT against the interpreter: traps with the same kind, pc and message, bpf-to-bpf
// frames, callx, helper faults, clang-compiled XDP objects, and code pages that are never
// writable and executable at once.
#include "bpfvm/jit/jit.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "bpfvm/helpers/context.hpp"
#include "bpfvm/helpers/linked_object.hpp"
#include "bpfvm/loader/object.hpp"
#include "bpfvm/vm/assembler.hpp"

namespace bpfvm::jit {
namespace {

vm::Program program_of(std::string_view text) {
    Expected<std::vector<vm::RawInsn>> raw = vm::assemble(text);
    EXPECT_TRUE(raw) << raw.error().message();
    Expected<vm::Program> p = vm::Program::from_raw(*raw);
    EXPECT_TRUE(p) << p.error().message();
    return *p;
}

uint64_t add_all(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, vm::CallContext*) {
    return a + b + c + d + e;
}

uint64_t refuse(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, vm::CallContext* ctx) {
    ctx->fault = "refused";
    return 0;
}

vm::HelperTable helpers() {
    vm::HelperTable t;
    (void)t.add(1, "add_all", add_all);
    (void)t.add(2, "refuse", refuse);
    return t;
}

// Runs on the JIT and on the fast interpreter; both must give the same r0 or the same trap.
void same_on_both(std::string_view text, std::vector<uint8_t> mem = {}) {
    const vm::Program p = program_of(text);
    Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(p, helpers());
    ASSERT_TRUE(code) << code.error().message();
    Expected<vm::Interpreter> interp = vm::Interpreter::create(p, helpers());
    ASSERT_TRUE(interp);
    std::vector<uint8_t> a = mem;
    std::vector<uint8_t> b = mem;
    const vm::RunResult j = (*code)->run_buffer(a);
    const vm::RunResult i = interp->run_buffer(b, {vm::Mode::Fast, 0});
    ASSERT_EQ(j.ok(), i.ok()) << text << (j.trap ? "\njit: " + j.trap->message() : "")
                              << (i.trap ? "\ninterp: " + i.trap->message() : "");
    if (i.ok()) {
        EXPECT_EQ(j.r0, i.r0) << text;
        EXPECT_EQ(a, b) << text;
    } else {
        EXPECT_EQ(j.trap->message(), i.trap->message()) << text;
    }
}

TEST(Jit, HelpersGetR1ToR5AndKeepThem) {
    same_on_both(
        "mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 1\nadd %r0, %r1\nadd %r0, %r5\nexit");
}

TEST(Jit, TrapsLikeTheInterpreter) {
    same_on_both("mov %r0, 1\ncall 99\nexit");   // unknown helper
    same_on_both("call 2\nexit");                // helper fault
    same_on_both("mov %r6, 7\ncall %r6\nexit");  // bad callx target
    same_on_both("mov %r1, 40\nmov %r2, 2\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\nmov %r6, 1\ncall %r6\nexit");
    same_on_both("f: call local f\nexit");  // call depth
    same_on_both("call runtime 7\nexit");   // kfunc
}

TEST(Jit, LocalCallsKeepFramesAndCalleeSavedRegisters) {
    same_on_both(
        "mov %r6, 6\nstdw [%r10-8], 100\nmov %r1, %r10\ncall local f\nldxdw %r2, [%r10-8]\nadd %r0, %r2\n"
        "add %r0, %r6\nexit\nf:\nstdw [%r10-8], 1\nldxdw %r0, [%r1-8]\nmov %r6, 999\nexit\n");
    std::string seven;  // 7 nested calls fit in 8 frames
    for (int i = 0; i < 7; ++i) {
        seven += "f" + std::to_string(i) + ": call local f" + std::to_string(i + 1) + "\nexit\n";
    }
    same_on_both(seven + "f7: mov %r0, 1\nexit\n");
}

TEST(Jit, FramesStartZeroedAndLoopsToAFunctionEntryKeepTheFrame) {
    same_on_both(
        "ldxdw %r0, [%r10-8]\nstdw [%r10-8], 5\ncall local f\nexit\n"
        "f: ldxdw %r1, [%r10-16]\nadd %r1, 1\nstxdw [%r10-16], %r1\njlt %r1, 3, f\nadd %r0, %r1\nexit\n");
}

TEST(Jit, LegacyPacketLoads) {
    same_on_both("mov %r6, %r1\nmov %r2, 1\nldindh %r2, 1\nexit", {0, 0, 0x12, 0x34});
    same_on_both("ldabsw 1\nmov %r0, 7\nexit", {0, 0, 0x12, 0x34});
}

TEST(Jit, ShiftsByR4AndDivisionsAroundR0AndR3) {
    same_on_both("mov %r4, 3\nmov %r0, 1\nlsh %r0, %r4\nlsh %r4, %r4\nadd %r0, %r4\nexit");
    same_on_both("mov %r0, 100\nmov %r3, 7\ndiv %r3, %r0\nmod %r0, 9\nadd %r0, %r3\nexit");
    same_on_both("mov %r3, -100\nmov %r0, -7\nsdiv32 %r3, %r0\nsmod %r0, 3\nadd %r0, %r3\nexit");
    same_on_both("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsdiv %r0, %r1\nexit");
}

TEST(Jit, AtomicsOnTheStackWithR0Involved) {
    same_on_both(
        "stdw [%r10-8], 5\nmov %r0, 5\nmov %r1, 9\nlock cmpxchg [%r10-8], %r1\nldxdw %r2, [%r10-8]\n"
        "add %r0, %r2\nexit");
    same_on_both("stdw [%r10-8], 12\nmov %r0, 3\nlock fetch or [%r10-8], %r0\nldxdw %r1, [%r10-8]\nadd %r0, %r1\nexit");
    same_on_both(
        "stw [%r10-8], 12\nmov %r2, 3\nlock fetch xor32 [%r10-8], %r2\nldxw %r1, [%r10-8]\nmov %r0, %r2\n"
        "add %r0, %r1\nexit");
}

// Found by fuzz_bytecode: a function's address (lddw src 4) used as a number.
TEST(Jit, RegressionFunctionAddressIsTheSameOpaqueValue) {
    same_on_both("lddw %r0, 0xffffffffffffffff, 4\ndiv %r0, -10\nexit");
    same_on_both("lddw %r1, 4, 4\nmov %r0, %r1\nrsh %r0, 32\nexit\nf: exit");
}

uint64_t call_twice(uint64_t fn, uint64_t arg, uint64_t, uint64_t, uint64_t, vm::CallContext* ctx) {
    const uint64_t a = ctx->invoke(ctx, fn, arg, 0, 0, 0, 0);
    if (ctx->fault != nullptr) {
        return 0;
    }
    return a + ctx->invoke(ctx, fn, arg, 0, 0, 0, 0);
}

TEST(Jit, HelpersRunCallbacksInJitCode) {
    vm::HelperTable h = helpers();
    ASSERT_TRUE(h.add(100, "call_twice", call_twice));
    const std::string prologue = "lddw %r1, 4, 4\nmov %r2, 20\ncall 100\nexit\n";
    // (Verified mode has no memory checks, so the trap inside a callback is an unknown helper.)
    for (const std::string body : {"f: mov %r0, %r1\nadd %r0, 1\nexit\n", "f: mov %r0, 1\ncall 99\nexit\n",
                                   "f: stdw [%r10-8], 3\nldxdw %r0, [%r10-8]\ncall local g\nexit\ng: exit\n"}) {
        const vm::Program p = program_of(prologue + body);
        auto code = JitProgram::compile(p, h);
        ASSERT_TRUE(code) << code.error().message();
        auto interp = vm::Interpreter::create(p, h);
        ASSERT_TRUE(interp);
        const vm::RunResult j = (*code)->run_buffer({});
        const vm::RunResult i = interp->run_buffer({}, {vm::Mode::Fast, 0});
        ASSERT_EQ(j.ok(), i.ok()) << body;
        if (i.ok()) {
            EXPECT_EQ(j.r0, i.r0) << body;
        } else {
            EXPECT_EQ(j.trap->message(), i.trap->message()) << body;
        }
    }
}

TEST(Jit, CodePagesAreNeverWritableAndExecutable) {
    Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(program_of("mov %r0, 1\nexit"), {});
    ASSERT_TRUE(code);
    const auto base = reinterpret_cast<uintptr_t>((*code)->code());
    std::ifstream maps("/proc/self/maps");
    std::string line;
    bool found = false;
    while (std::getline(maps, line)) {
        std::istringstream in(line);
        std::string range, perms;
        in >> range >> perms;
        const uintptr_t lo = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
        const uintptr_t hi = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
        if (base >= lo && base < hi) {
            found = true;
            EXPECT_EQ(perms.substr(0, 3), "r-x") << line;
        }
    }
    EXPECT_TRUE(found);
}

TEST(Jit, RunsClangCompiledXdpObjectsLikeTheInterpreter) {
    for (const char* variant : {"v3", "v4"}) {
        Expected<loader::Object> obj =
            loader::load_object_file(std::string(BPFVM_TEST_PROGS_DIR) + "/xdp_rewrite." + variant + ".o");
        ASSERT_TRUE(obj) << obj.error().message();
        std::vector<helpers::ProgramSource> sources;
        for (const auto& p : obj->programs) {
            sources.push_back({p.name, p.type, p.insns});
        }
        auto linked = helpers::LinkedObject::create(obj->maps, sources);
        ASSERT_TRUE(linked) << linked.error().message();
        const std::vector<uint8_t> packet = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
                                             0x81, 0x00, 0x00, 0x64, 0x08, 0x00, 0x45, 0x00, 0x00, 0x1c, 0x00, 0x01,
                                             0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 10,   0,    0,    1,    10,   0,
                                             0,    2,    0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00};
        for (const char* name : {"xdp_swap", "xdp_pop_vlan", "xdp_trim"}) {
            Expected<std::unique_ptr<JitProgram>> code =
                JitProgram::compile(*(*linked)->linked_program(name), (*linked)->runtime().helpers());
            ASSERT_TRUE(code) << code.error().message();
            Expected<const vm::Interpreter*> interp = (*linked)->program(name);
            ASSERT_TRUE(interp);
            auto run = [&](bool use_jit) {
                helpers::XdpFrame frame(packet);
                std::vector<vm::Region> regions = frame.regions();
                vm::RunInput in;
                in.r1 = reinterpret_cast<uintptr_t>(&frame.context());
                (*linked)->runtime().prepare(in, regions, vm::ProgramType::Xdp);
                const vm::RunResult r = use_jit ? (*code)->run(in) : (*interp)->run(in, {vm::Mode::Fast, 0});
                EXPECT_TRUE(r.ok()) << name << ": " << r.trap->message();
                return std::make_pair(r.r0, frame.packet());
            };
            EXPECT_EQ(run(true), run(false)) << variant << " " << name;
        }
    }
}

TEST(Jit, RunsBpfLoopAndForEachMapElemCallbacksFromClangObjects) {
    Expected<loader::Object> obj = loader::load_object_file(std::string(BPFVM_TEST_PROGS_DIR) + "/maps_tour.v4.o");
    ASSERT_TRUE(obj) << obj.error().message();
    std::vector<helpers::ProgramSource> sources;
    for (const auto& p : obj->programs) {
        sources.push_back({p.name, p.type, p.insns});
    }
    auto linked = helpers::LinkedObject::create(obj->maps, sources);
    ASSERT_TRUE(linked) << linked.error().message();
    for (const char* name : {"loop_sum", "weighted_sum"}) {
        auto code = JitProgram::compile(*(*linked)->linked_program(name), (*linked)->runtime().helpers());
        ASSERT_TRUE(code) << code.error().message();
        std::vector<uint8_t> ctx = {5, 0, 0, 0, 100, 0, 0, 0};
        std::vector<vm::Region> regions{vm::Region::of(std::span<uint8_t>(ctx), "ctx")};
        vm::RunInput in;
        in.r1 = reinterpret_cast<uintptr_t>(ctx.data());
        (*linked)->runtime().prepare(in, regions, vm::ProgramType::Syscall);
        const vm::RunResult r = (*code)->run(in);
        ASSERT_TRUE(r.ok()) << name << ": " << r.trap->message();
        EXPECT_EQ(r.r0, std::string(name) == "loop_sum" ? 10u * 1000 + 5 : (1u * 10 + 2 * 20 + 3 * 30) * 10 + 3)
            << name;
    }
}

}  // namespace
}  // namespace bpfvm::jit
