// The x86-64 JIT against the interpreter: traps with the same kind, pc and message, bpf-to-bpf
// frames, callx, helper faults, clang-compiled XDP objects, and code pages that are never
// writable and executable at once.
#include "bpfvm/jit/jit.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <random>
#include <set>
#include <sstream>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bpfvm/helpers/context.hpp"
#include "bpfvm/helpers/linked_object.hpp"
#include "analysis.hpp"
#include "bpfvm/jit/engine.hpp"
#include "bpfvm/loader/object.hpp"
#include "bpfvm/vm/assembler.hpp"
#include "bpfvm/vm/flow.hpp"
#include "random/random_program.hpp"
#include "test_support.hpp"

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

// The checked interpreter is the reference: the checked JIT must end every program the same way
// (same r0, memory and budget charged, or the same trap), and where it finished, both unchecked
// engines must too. Every engine runs on the same buffer, restored to `mem` before each run
// (programs see addresses, so traps name the same ones). Returns the reference result.
vm::RunResult same_on_all(std::string_view text, std::vector<uint8_t> mem = {}, uint64_t budget = 0,
                          const vm::HelperTable& table = helpers()) {
    const vm::Program p = program_of(text);
    Expected<Executable> ref = Executable::create(p, table, Engine::InterpChecked);
    EXPECT_TRUE(ref);
    std::vector<uint8_t> m = mem;
    const vm::RunResult want = ref->run_buffer(m, budget);
    const std::vector<uint8_t> ref_mem = m;
    for (Engine e : {Engine::JitChecked, Engine::Interp, Engine::Jit}) {
        if (!is_checked(e) && !want.ok()) {
            continue;
        }
        Expected<Executable> exe = Executable::create(p, table, e);
        EXPECT_TRUE(exe) << exe.error().message();
        std::copy(mem.begin(), mem.end(), m.begin());
        const vm::RunResult got = exe->run_buffer(m, budget);
        EXPECT_EQ(got.ok(), want.ok()) << to_string(e) << ": " << text
                                       << (got.trap ? "\ngot: " + got.trap->message() : "")
                                       << (want.trap ? "\nwant: " + want.trap->message() : "");
        if (got.ok() && want.ok()) {
            EXPECT_EQ(got.r0, want.r0) << to_string(e) << ": " << text;
        } else if (got.trap && want.trap) {
            EXPECT_EQ(got.trap->message(), want.trap->message()) << to_string(e) << ": " << text;
        }
        EXPECT_EQ(m, ref_mem) << to_string(e) << ": " << text;
        if (is_checked(e)) {
            EXPECT_EQ(got.instructions, want.instructions) << text;
        }
    }
    return want;
}

// same_on_all for every pair of an 8-byte value v and a value w, laid out as v's 8 bytes then
// w's low `w_bytes` bytes in 16 bytes of memory.
void same_on_all_pairs(std::string_view text, std::initializer_list<uint64_t> vs, std::initializer_list<uint64_t> ws,
                       std::size_t w_bytes) {
    for (const uint64_t v : vs) {
        for (const uint64_t w : ws) {
            std::vector<uint8_t> mem(16);
            std::memcpy(mem.data(), &v, 8);
            std::memcpy(mem.data() + 8, &w, w_bytes);
            same_on_all(text, mem);
        }
    }
}

TEST(Jit, HelpersGetR1ToR5AndKeepThem) {
    same_on_both(
        "mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 1\nadd %r0, %r1\nadd %r0, %r5\nexit");
}

// A callee sees its caller's r0 (and r6-r9) as the interpreter runs it: a division before the
// call (x86's div uses rax), a move of r0 only the callee reads, in both modes.
TEST(Jit, ACalleeSeesItsCallersR0) {
    for (const char* text : {
             "mov %r0, 40\nmov %r1, 7\nmod %r1, 3\ncall local f\nexit\nf: add %r0, 2\nexit",
             "mov %r0, 40\nmov %r1, 7\ndiv32 %r1, 3\ncall local f\nexit\nf: add %r0, %r1\nexit",
             "mov %r0, 5\ncall local f\nexit\nf: mov %r1, %r0\nmov %r0, 1\nadd %r0, %r1\nexit",
             "mov %r6, 3\nmov %r0, 9\ncall local f\nexit\nf: lsh %r0, %r6\nexit",
         }) {
        same_on_all(text);
    }
}

TEST(Jit, TrapsLikeTheInterpreter) {
    same_on_both("mov %r0, 1\ncall 99\nexit");   // unknown helper
    same_on_both("call 2\nexit");                // helper fault
    // ... after other calls, in a later function and through callx: the trap names the pc and
    // the helper of the call that faulted (one stub serves every call)
    same_on_both("call 1\ncall 1\nmov %r6, 1\ncall %r6\ncall local f\nexit\nf: call 1\ncall 2\nexit");
    same_on_both("call 1\nmov %r6, 2\ncall %r6\ncall 1\nexit");
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

// Engines zero only as much of a frame as a program can address (vm::frame_bytes_used): a
// program that reads deeper than it writes still sees zeros after another program, whose frame
// pointer escaped (so its whole frame is in play), left data there on the same thread.
TEST(Jit, AFrameZeroedOnlyAsDeepAsTheProgramAddressesStillReadsZeros) {
    const vm::Program dirty = program_of(
        "mov %r1, %r10\nlddw %r2, 0x5555555555555555\nstxdw [%r1-8], %r2\nstxdw [%r1-40], %r2\n"
        "stxdw [%r1-200], %r2\nstxdw [%r1-512], %r2\nmov %r0, 0\nexit");
    const vm::Program shallow = program_of(
        "ldxdw %r0, [%r10-40]\nldxdw %r1, [%r10-8]\nor %r0, %r1\nstdw [%r10-8], 7\nexit");
    ASSERT_EQ(vm::frame_bytes_used(dirty), vm::kStackFrameBytes);
    ASSERT_EQ(vm::frame_bytes_used(shallow), 64u);
    for (Engine e : available_engines()) {
        Expected<Executable> d = Executable::create(dirty, helpers(), e);
        Expected<Executable> s = Executable::create(shallow, helpers(), e);
        ASSERT_TRUE(d && s);
        for (int round = 0; round < 3; ++round) {
            ASSERT_TRUE(d->run_buffer({}, is_checked(e) ? 1000 : 0).ok());
            const vm::RunResult r = s->run_buffer({}, is_checked(e) ? 1000 : 0);
            ASSERT_TRUE(r.ok()) << to_string(e);
            EXPECT_EQ(r.r0, 0u) << to_string(e) << " round " << round;
        }
    }
}

TEST(Jit, LegacyPacketLoads) {
    same_on_both("mov %r6, %r1\nmov %r2, 1\nldindh %r2, 1\nexit", {0, 0, 0x12, 0x34});
    same_on_both("ldabsw 1\nmov %r0, 7\nexit", {0, 0, 0x12, 0x34});
}

// LD_IND's offset is (int32)(src + imm): every width at offsets from below the packet's start to
// past its end, through a 32-bit sum that wraps, and with src's upper half set (ignored), as the
// interpreter runs them; blinded too. Out of the packet the program ends and returns 0.
TEST(Jit, LegacyIndirectLoadsAtEveryOffset) {
    const std::vector<uint8_t> packet = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    for (const char* load : {"ldindb", "ldindh", "ldindw"}) {
        for (int64_t src : {int64_t{-6}, int64_t{-1}, int64_t{0}, int64_t{3}, int64_t{0x7fffffff},
                            int64_t{0x100000002}, int64_t{-0x80000000}}) {
            for (int32_t imm : {-3, -1, 0, 1, 4, 6, 7, 8, 9, 0x7fffffff}) {
                const std::string text = "lddw %r6, " + std::to_string(src) + "\nmov %r0, 77\n" + load + " %r6, " +
                                         std::to_string(imm) + "\nadd %r0, 1000\nexit";
                same_on_all(text, packet);
                const vm::Program p = program_of(text);
                JitOptions blind;
                blind.blind_constants = true;
                auto b = JitProgram::compile(p, {}, blind);
                ASSERT_TRUE(b) << b.error().message();
                std::vector<uint8_t> m1 = packet;
                std::vector<uint8_t> m2 = packet;
                const vm::RunResult want = vm::Interpreter::create(p, {})->run_buffer(m2, {vm::Mode::Checked, 0});
                EXPECT_EQ((*b)->run_buffer(m1).r0, want.r0) << text;
            }
        }
    }
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

// Found by fuzz_bytecode: a leaf program's frame (on the native stack) had r10 8 bytes off a
// multiple of 16 when it pushed an even number of registers; r10 is 16-byte aligned everywhere.
TEST(Jit, RegressionFramePointerIsSixteenByteAlignedOnEveryEngine) {
    const char* programs[] = {
        "mov %r0, %r10\nand %r0, 15\nexit",                          // pushes rbp: odd
        "mov %r9, 1\nmov %r0, %r10\nand %r0, 15\nexit",              // rbp, r15: even
        "mov %r6, 1\nmov %r9, 1\nmov %r0, %r10\nand %r0, 15\nexit",  // rbx, rbp, r15
        "mov %r6, 1\nmov %r7, 1\nmov %r9, 1\nmov %r0, %r10\nand %r0, 15\nexit",
    };
    for (const char* text : programs) {
        const vm::Program p = program_of(text);
        for (Engine e : available_engines()) {
            Expected<Executable> exe = Executable::create(p, helpers(), e);
            ASSERT_TRUE(exe) << exe.error().message();
            const vm::RunResult r = exe->run_buffer({});
            ASSERT_TRUE(r.ok()) << text;
            EXPECT_EQ(r.r0, 0u) << to_string(e) << ": " << text;
        }
    }
}

// Calls a leaf's function with garbage in every register that holds r0 or r6-r9 (rax, rbx and
// r13-r15), so that a register the code fails to clear shows.
#if defined(__clang__)
__attribute__((no_sanitize("function")))
#endif
[[gnu::noinline]] uint64_t
call_dirty(JitProgram::Function f, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5) {
    register uint64_t r8 asm("r8") = a5;
    register uint64_t fn asm("r11") = reinterpret_cast<uint64_t>(f);
    uint64_t out = 0;
    asm volatile(
        "mov %%rsp, %%r12\n\t"
        "sub $128, %%rsp\n\t"  // past the red zone
        "and $-16, %%rsp\n\t"
        "movabs $0x5a5a5a5a5a5a5a5a, %%rax\n\t"
        "mov %%rax, %%rbx\n\t"
        "mov %%rax, %%r13\n\t"
        "mov %%rax, %%r14\n\t"
        "mov %%rax, %%r15\n\t"
        "call *%%r11\n\t"
        "mov %%r12, %%rsp\n\t"
        : "=a"(out), "+D"(a1), "+S"(a2), "+d"(a3), "+c"(a4), "+r"(r8), "+r"(fn)
        :
        : "rbx", "r9", "r10", "r12", "r13", "r14", "r15", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
          "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    return out;
}

TEST(Jit, AVerifiedLeafIsAPlainFunctionOfR1ToR5) {
    struct Case {
        const char* text;
        uint64_t args[5];
    };
    const Case cases[] = {
        {"mov %r0, %r1\nadd %r0, %r2\nmul %r0, %r3\nsub %r0, %r4\nxor %r0, %r5\nexit", {1, 2, 3, 4, 5}},
        // r0 and r6-r9 start at 0 when read before they are written
        {"add %r0, %r6\nadd %r0, %r7\nadd %r0, %r8\nadd %r0, %r9\nadd %r0, 7\nexit", {0, 0, 0, 0, 0}},
        {"mov %r6, %r1\njeq %r2, 0, +1\nmov %r0, 3\nadd %r0, %r6\nexit", {10, 0, 0, 0, 0}},
        {"mov %r6, %r1\njeq %r2, 0, +1\nmov %r0, 3\nadd %r0, %r6\nexit", {10, 1, 0, 0, 0}},
        {"mov %r0, 0\nexit", {0, 0, 0, 0, 0}},
        // the frame is on the native stack and starts zeroed
        {"stxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\nldxdw %r1, [%r10-16]\nadd %r0, %r1\nexit", {42, 0, 0, 0, 0}},
    };
    for (const Case& c : cases) {
        const vm::Program p = program_of(c.text);
        Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(p, helpers());
        ASSERT_TRUE(code) << code.error().message();
        ASSERT_TRUE((*code)->leaf()) << c.text;
        ASSERT_NE((*code)->function(), nullptr) << c.text;
        Expected<vm::Interpreter> interp = vm::Interpreter::create(p, helpers());
        ASSERT_TRUE(interp);
        vm::RunInput in;
        in.r1 = c.args[0], in.r2 = c.args[1], in.r3 = c.args[2], in.r4 = c.args[3], in.r5 = c.args[4];
        const vm::RunResult want = interp->run(in, {vm::Mode::Fast, 0});
        ASSERT_TRUE(want.ok());
        EXPECT_EQ(call_dirty((*code)->function(), c.args[0], c.args[1], c.args[2], c.args[3], c.args[4]), want.r0)
            << c.text;
        EXPECT_EQ((*code)->run(in).r0, want.r0) << c.text;
    }
    // Not leaves: checked code, and programs that call.
    JitOptions checked;
    checked.checked = true;
    EXPECT_EQ((*JitProgram::compile(program_of("mov %r0, 0\nexit"), helpers(), checked))->function(), nullptr);
    EXPECT_EQ((*JitProgram::compile(program_of("call 1\nexit"), helpers()))->function(), nullptr);
    EXPECT_EQ((*JitProgram::compile(program_of("call local f\nexit\nf: mov %r0, 1\nexit"), helpers()))->function(), nullptr);
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
    ASSERT_TRUE(h.add(100, "call_twice", call_twice, test::kTakesAFunction));
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

// Callbacks run only through helpers that declare a function argument (ArgKind::Function; the
// JIT compiles callback entries only for programs that call one): a helper that does not, and
// runs one anyway, gets a fault, and the run ends with it as a HelperFault trap on every engine.
TEST(Jit, OnlyHelpersThatTakeAFunctionRunCallbacks) {
    const std::string text = "lddw %r1, 4, 4\nmov %r2, 20\ncall 100\nexit\nf: mov %r0, %r1\nexit";
    for (const bool declared : {true, false}) {
        vm::HelperTable h = helpers();
        ASSERT_TRUE(h.add(100, "call_twice", call_twice, declared ? test::kTakesAFunction : vm::HelperPrototype{}));
        EXPECT_EQ(vm::may_run_callbacks(program_of(text), h), declared);
        for (Engine e : available_engines()) {
            Expected<Executable> exe = Executable::create(program_of(text), h, e);
            ASSERT_TRUE(exe) << exe.error().message();
            const vm::RunResult r = exe->run_buffer({});
            if (declared) {
                ASSERT_TRUE(r.ok()) << to_string(e) << ": " << r.trap->message();
                EXPECT_EQ(r.r0, 40u) << to_string(e);
            } else {
                ASSERT_FALSE(r.ok()) << to_string(e);
                EXPECT_EQ(r.trap->kind, vm::TrapKind::HelperFault) << to_string(e);
                EXPECT_NE(r.trap->message().find(vm::kNoCallbacks), std::string::npos)
                    << to_string(e) << ": " << r.trap->message();
            }
        }
    }
    // callx may call any helper: its programs get callback entries.
    EXPECT_TRUE(vm::may_run_callbacks(program_of("mov %r6, 1\ncall %r6\nexit"), helpers()));
}

// 1 when the helper was called with the stack aligned as the SysV ABI requires (rsp + 8 a multiple
// of 16 at entry: the frame pointer pushed there is 16-byte aligned).
__attribute__((noinline)) uint64_t stack_aligned(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, vm::CallContext*) {
    return (reinterpret_cast<uintptr_t>(__builtin_frame_address(0)) % 16) == 0 ? 1 : 0;
}

// Found when a C function the checked JIT calls began to use aligned SSE stores: the callback
// entry called function bodies with rsp 8 bytes off. Helper calls from every kind of code (the
// program, a callee, a callback, a callback's callee) see an aligned stack, in both JIT modes.
TEST(Jit, RegressionHelpersAreCalledWithAnAlignedStack) {
    vm::HelperTable h = helpers();
    ASSERT_TRUE(h.add(100, "call_twice", call_twice, test::kTakesAFunction));
    ASSERT_TRUE(h.add(102, "stack_aligned", stack_aligned));
    const char* programs[] = {
        "call 102\nexit",
        "call local f\nexit\nf: call 102\nexit",
        "lddw %r1, 4, 4\nmov %r2, 0\ncall 100\nexit\nf: call 102\nexit",
        "lddw %r1, 4, 4\nmov %r2, 0\ncall 100\nexit\nf: call local g\nexit\ng: call 102\nexit",
    };
    for (const char* text : programs) {
        for (Engine e : available_engines()) {
            Expected<Executable> exe = Executable::create(program_of(text), h, e);
            ASSERT_TRUE(exe) << exe.error().message();
            const vm::RunResult r = exe->run_buffer({});
            ASSERT_TRUE(r.ok()) << to_string(e) << ": " << text << ": " << r.trap->message();
            EXPECT_EQ(r.r0, text[0] == 'l' ? 2u : 1u) << to_string(e) << ": " << text;
        }
    }
}

// A program may make a function's opaque address itself, without lddw: the first function (which
// nothing calls or names) passed to a helper as a callback runs as a callee, on every engine.
TEST(Jit, AForgedAddressOfTheFirstFunctionRunsAsACallback) {
    vm::HelperTable h = helpers();
    ASSERT_TRUE(h.add(100, "call_twice", call_twice, test::kTakesAFunction));
    // r1 = the address of pc 0, built from the tag; the callback run of pc 0 sees r1 = 0x12 and
    // returns it plus 1 (r6 written, so the callee saves it); the outer run returns 2 * 0x13 + 7.
    const char* text =
        "mov %r6, %r1\n"
        "jeq %r6, 0x12, +6\n"
        "lddw %r1, 0xca11bacc00000000\n"
        "mov %r2, 0x12\n"
        "call 100\n"
        "add %r0, 7\n"
        "exit\n"
        "mov %r0, %r6\n"
        "add %r0, 1\n"
        "exit";
    for (Engine e : available_engines()) {
        Expected<Executable> exe = Executable::create(program_of(text), h, e);
        ASSERT_TRUE(exe) << exe.error().message();
        const vm::RunResult r = exe->run_buffer({});
        ASSERT_TRUE(r.ok()) << to_string(e) << ": " << r.trap->message();
        EXPECT_EQ(r.r0, 2u * 0x13 + 7) << to_string(e);
    }
}

uint64_t call_once(uint64_t fn, uint64_t arg, uint64_t, uint64_t, uint64_t, vm::CallContext* ctx) {
    const uint64_t r0 = ctx->invoke(ctx, fn, arg, 0, 0, 0, 0);
    return ctx->fault != nullptr ? 0 : r0;
}

// Found by fuzz_bytecode (with a helper that runs callbacks): a callback that runs itself as a
// callback nested without end and overflowed the native stack, on every engine. A callback takes a
// call frame as a bpf-to-bpf call does, and a chain of them stops at 8 frames.
TEST(Jit, RegressionCallbacksNestAtMostEightFramesDeep) {
    vm::HelperTable h = helpers();
    ASSERT_TRUE(h.add(101, "call_once", call_once, test::kTakesAFunction));
    // f(n) = n ? 1 + f(n - 1), run as a callback : 0; the program runs f(N) as a callback: N + 2
    // frames in all.
    auto text = [](int n) {
        return "lddw %r1, 4, 4\nmov %r2, " + std::to_string(n) +
               "\ncall 101\nexit\n"
               "mov %r0, 0\njeq %r1, 0, +6\nmov %r2, %r1\nsub %r2, 1\nlddw %r1, -5, 4\ncall 101\nadd %r0, 1\nexit";
    };
    // The fuzzer's program: the first function runs itself as a callback, forever.
    const std::string forever = "jeq %r1, 244, +5\nlddw %r1, 0xca11bacc00000000\nmov %r2, 5\ncall 101\nexit\nmov %r0, 1\nexit";
    for (Engine e : available_engines()) {
        for (int n : {0, 6}) {
            Expected<Executable> exe = Executable::create(program_of(text(n)), h, e);
            ASSERT_TRUE(exe) << exe.error().message();
            const vm::RunResult r = exe->run_buffer({});
            ASSERT_TRUE(r.ok()) << to_string(e) << " " << n << ": " << r.trap->message();
            EXPECT_EQ(r.r0, static_cast<uint64_t>(n)) << to_string(e);
        }
        for (const std::string& program : {text(7), forever}) {
            Expected<Executable> exe = Executable::create(program_of(program), h, e);
            ASSERT_TRUE(exe) << exe.error().message();
            const vm::RunResult r = exe->run_buffer({});
            ASSERT_FALSE(r.ok()) << to_string(e);
            EXPECT_EQ(r.trap->kind, vm::TrapKind::HelperFault) << to_string(e);
            EXPECT_NE(r.trap->message().find("helper call_once: the callback would nest deeper than 8 call frames"),
                      std::string::npos)
                << to_string(e) << ": " << r.trap->message();
        }
    }
}

// ---- checked mode ---------------------------------------------------------------------------

TEST(JitChecked, StrayLoadsAndStoresTrapWithPcAndAddress) {
    const std::vector<uint8_t> buf(16, 0xab);
    // Past the end of the input, before it, one byte over its end, far away, and at addresses
    // whose end wraps around or that are "negative".
    EXPECT_EQ(same_on_all("ldxdw %r0, [%r1+16]\nexit", buf).trap->kind, vm::TrapKind::OutOfBounds);
    same_on_all("ldxb %r0, [%r1-1]\nexit", buf);
    same_on_all("ldxw %r0, [%r1+13]\nexit", buf);
    same_on_all("stw [%r1+13], 1\nexit", buf);
    same_on_all("lddw %r1, 0x7f0000001000\nldxdw %r0, [%r1]\nexit", buf);
    same_on_all("mov %r1, -4\nldxdw %r0, [%r1]\nexit", buf);
    same_on_all("mov %r1, -1\nstxb [%r1], %r1\nexit", buf);
    same_on_all("lddw %r1, 0x8000000000000000\nldxb %r0, [%r1]\nexit", buf);
    // In bounds, through the cache, then out.
    same_on_all("ldxdw %r0, [%r1+8]\nldxdw %r2, [%r1]\nadd %r0, %r2\nldxdw %r2, [%r1+9]\nexit", buf);
    // The message names the pc, the width, the direction and the address.
    const vm::RunResult r = same_on_all("mov %r0, 0\nstxh [%r1+15], %r0\nexit", buf);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->pc, 1u);
    EXPECT_TRUE(r.trap->write);
    EXPECT_EQ(r.trap->size, 2u);
}

TEST(JitChecked, StackRulesAreTheInterpreters) {
    // Below the frame, above the top of the stack, and a frame that has returned.
    same_on_all("ldxdw %r0, [%r10-520]\nexit");
    same_on_all("ldxb %r0, [%r10]\nexit");
    same_on_all("mov %r1, %r10\nadd %r1, -513\nldxb %r0, [%r1]\nexit");
    // A callee may use its caller's frame through r10 + something, and a pointer into it.
    same_on_all(
        "stdw [%r10-8], 7\nmov %r1, %r10\ncall local f\nexit\nf: ldxdw %r0, [%r10+504]\n"
        "ldxdw %r2, [%r1-8]\nadd %r0, %r2\nexit");
    // After the callee returns, its frame is no longer the program's (the caches forget it).
    same_on_all(
        "call local f\nldxdw %r0, [%r0]\nexit\nf: mov %r0, %r10\nadd %r0, -8\n"
        "ldxdw %r1, [%r0]\nexit");
    same_on_all(
        "call local f\nstdw [%r0], 1\nexit\nf: mov %r0, %r10\nadd %r0, -8\n"
        "stdw [%r0], 2\nexit");
}

TEST(JitChecked, ReadOnlyRegionsAndMisalignedAtomicsTrap) {
    const std::vector<uint8_t> ro(16, 3);
    const vm::Region region = vm::Region::of(std::span<const uint8_t>(ro), "rodata");
    for (const char* text :
         {"ldxdw %r0, [%r1+8]\nexit", "stb [%r1+1], 1\nexit", "ldxb %r0, [%r1]\nstxb [%r1], %r0\nexit"}) {
        const vm::Program p = program_of(text);
        vm::RunInput in;
        in.r1 = region.begin;
        in.regions = std::span<const vm::Region>(&region, 1);
        auto a = Executable::create(p, helpers(), Engine::InterpChecked);
        auto b = Executable::create(p, helpers(), Engine::JitChecked);
        ASSERT_TRUE(a && b);
        const vm::RunResult want = a->run(in);
        const vm::RunResult got = b->run(in);
        ASSERT_EQ(got.ok(), want.ok()) << text;
        if (!want.ok()) {
            EXPECT_EQ(got.trap->kind, vm::TrapKind::ReadOnly);
            EXPECT_EQ(got.trap->message(), want.trap->message());
        } else {
            EXPECT_EQ(got.r0, want.r0);
        }
    }
    same_on_all("mov %r2, 1\nlock add [%r1+4], %r2\nexit", std::vector<uint8_t>(16));
    same_on_all("mov %r2, 1\nlock fetch add32 [%r10-6], %r2\nexit");
    same_on_all("mov %r2, 1\nlock xchg [%r1+8], %r2\nmov %r0, %r2\nexit", std::vector<uint8_t>(16));
    same_on_all("mov %r2, 1\nlock xchg [%r1+16], %r2\nexit", std::vector<uint8_t>(16));
}

TEST(JitChecked, BudgetStopsLoopsAndChargesAsTheInterpreter) {
    const char* loop = "mov %r0, 0\nl: add %r0, 1\njlt %r0, 100, l\nexit";
    // 1 at the entry, 3 (body and exit) at each of the 100 arrivals at the loop header: a budget
    // of exactly that finishes, one less traps at the header.
    const vm::RunResult ok = same_on_all(loop, {}, 301);
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok.instructions, 301u);
    const vm::RunResult short_by_one = same_on_all(loop, {}, 300);
    ASSERT_FALSE(short_by_one.ok());
    EXPECT_EQ(short_by_one.trap->pc, 1u);
    auto jit = Executable::create(program_of("l: ja l\nexit"), {}, Engine::JitChecked);
    ASSERT_TRUE(jit);
    const vm::RunResult r = jit->run_buffer({}, 1'000'000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, vm::TrapKind::BudgetExhausted);
    EXPECT_EQ(r.trap->message(), "pc 0: instruction budget of 1000000 exhausted");
    // Recursion through calls is bounded by the call depth; loops in a callee by the budget.
    same_on_all("call local f\nexit\nf: mov %r0, 1\ng: add %r0, 1\nja g\nexit", {}, 5000);
}

// Found by fuzz_bytecode: a legacy packet load out of the packet ends the run. What the budget
// charged ahead for the rest is not given back, on either engine.
TEST(JitChecked, RegressionPacketLoadThatEndsTheRunIsChargedAsInTheInterpreter) {
    const vm::RunResult r = same_on_all("ldxw %r0, [%r1]\nldabsw 14483488\nexit", std::vector<uint8_t>(8));
    EXPECT_EQ(r.instructions, 3u);
}

TEST(JitChecked, BudgetTrapsWhereTheInterpreterTraps) {
    // Every budget short of the run's charge stops both engines at the same charge point, with
    // the same charge taken.
    const vm::Program p = program_of(
        "mov %r0, 0\nl: add %r0, 1\njset %r0, 1, +2\nadd %r0, 1\nadd %r0, 1\njlt %r0, 30, l\n"
        "call local f\nexit\nf: mov %r1, 2\nexit");
    auto interp = Executable::create(p, {}, Engine::InterpChecked);
    auto jit = Executable::create(p, {}, Engine::JitChecked);
    ASSERT_TRUE(interp && jit);
    const vm::RunResult full = interp->run_buffer({});
    ASSERT_TRUE(full.ok());
    EXPECT_TRUE(jit->run_buffer({}, full.instructions).ok());
    std::set<uint32_t> pcs;
    for (uint64_t budget = 1; budget < full.instructions; ++budget) {
        const vm::RunResult want = interp->run_buffer({}, budget);
        const vm::RunResult got = jit->run_buffer({}, budget);
        ASSERT_FALSE(want.ok());
        ASSERT_FALSE(got.ok());
        EXPECT_EQ(want.trap->kind, vm::TrapKind::BudgetExhausted);
        EXPECT_EQ(got.trap->message(), want.trap->message()) << "budget " << budget;
        pcs.insert(want.trap->pc);
    }
    EXPECT_EQ(pcs, (std::set<uint32_t>{1, 8}));  // the loop header, the function (the entry costs 1)
}

TEST(JitChecked, CallbacksSpendTheBudgetAndTrapInside) {
    vm::HelperTable h = helpers();
    ASSERT_TRUE(h.add(100, "call_twice", call_twice, test::kTakesAFunction));
    const std::string prologue = "lddw %r1, 4, 4\nmov %r2, 20\ncall 100\nexit\n";
    same_on_all(prologue + "f: mov %r0, %r1\nl: add %r0, 1\njlt %r0, 1000, l\nexit\n", {}, 0, h);
    same_on_all(prologue + "f: mov %r0, %r1\nl: add %r0, 1\njlt %r0, 1000, l\nexit\n", {}, 2000, h);
    same_on_all(prologue + "f: ldxdw %r0, [%r1]\nexit\n", {}, 0, h);
    same_on_all(prologue + "f: stdw [%r10-8], 3\nldxdw %r0, [%r10-8]\nexit\n", {}, 0, h);
}

// A callback called when the caller's charge has spent the budget to the last instruction gets
// none: it stops at its entry on both engines (the interpreter used to lend it one, enough for a
// callback of one instruction; found by fuzz_bytecode). Every budget, the same end.
TEST(JitChecked, ACallbackGetsNoBudgetOnceTheCallerSpentIt) {
    vm::HelperTable h = helpers();
    ASSERT_TRUE(h.add(100, "call_twice", call_twice, test::kTakesAFunction));
    const vm::Program p = program_of("lddw %r1, 4, 4\nmov %r2, 20\ncall 100\nexit\nf: exit\n");
    auto interp = Executable::create(p, h, Engine::InterpChecked);
    auto jit = Executable::create(p, h, Engine::JitChecked);
    ASSERT_TRUE(interp && jit);
    const vm::RunResult full = interp->run_buffer({});
    ASSERT_TRUE(full.ok());
    EXPECT_EQ(full.instructions, 6u);  // 4 in the caller, 1 in each callback
    for (uint64_t budget = 1; budget <= full.instructions; ++budget) {
        const vm::RunResult want = interp->run_buffer({}, budget);
        const vm::RunResult got = jit->run_buffer({}, budget);
        ASSERT_EQ(want.ok(), got.ok()) << "budget " << budget;
        EXPECT_EQ(want.ok(), budget == full.instructions) << "budget " << budget;
        if (!want.ok()) {
            EXPECT_EQ(got.trap->message(), want.trap->message()) << "budget " << budget;
            EXPECT_EQ(got.instructions, want.instructions) << "budget " << budget;
        }
    }
    // Spent by the caller's charge: the first callback stops at its entry.
    const vm::RunResult spent = interp->run_buffer({}, 4);
    ASSERT_FALSE(spent.ok());
    EXPECT_EQ(spent.trap->message(), "pc 5: instruction budget of 0 exhausted");
}

TEST(JitChecked, HelpersSeeOnlyTheEnteredFrames) {
    // add_all reads nothing; a helper that checks a pointer sees the stack region the run has.
    vm::HelperTable h = helpers();
    ASSERT_TRUE(h.add(101, "touch", [](uint64_t p, uint64_t, uint64_t, uint64_t, uint64_t, vm::CallContext* ctx) {
        return uint64_t{ctx->allowed(p, 8, false) ? 1u : 0u};
    }));
    same_on_all("mov %r1, %r10\nadd %r1, -8\ncall 101\nexit", {}, 0, h);
    same_on_all("mov %r1, %r10\nadd %r1, -520\ncall 101\nexit", {}, 0, h);
    same_on_all("call local f\nexit\nf: mov %r1, %r10\nadd %r1, 504\ncall 101\nexit", {}, 0, h);
}

bool contains(const uint8_t* code, std::size_t size, std::span<const uint8_t> pattern) {
    return std::search(code, code + size, pattern.begin(), pattern.end()) != code + size;
}

// Legacy packet loads' offsets are constants too (found when LD_IND's lowering changed).
// ---- checked mode's windows: loops whose accesses walk memory run without checks ------------

// Whether checked mode made a window for a loop of the program (its listing names the copy).
bool has_window(std::string_view text) {
    JitOptions o;
    o.checked = true;
    o.keep_listing = true;
    Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(program_of(text), helpers(), o);
    EXPECT_TRUE(code) << code.error().message();
    return code && (*code)->listing().find("; window copy of the loop at ") != std::string::npos;
}

std::vector<uint8_t> bytes_from(uint8_t first, std::size_t n) {
    std::vector<uint8_t> b(n);
    for (std::size_t i = 0; i < n; ++i) {
        b[i] = static_cast<uint8_t>(first + 7 * i);
    }
    return b;
}

// Every budget short of what the run needs stops the checked JIT where and as the checked
// interpreter stops, with the same memory; the whole budget finishes both.
void every_budget_agrees(std::string_view text, const std::vector<uint8_t>& mem) {
    const vm::Program p = program_of(text);
    auto interp = Executable::create(p, helpers(), Engine::InterpChecked);
    auto jit = Executable::create(p, helpers(), Engine::JitChecked);
    ASSERT_TRUE(interp && jit);
    std::vector<uint8_t> a = mem;
    const vm::RunResult full = interp->run_buffer(a);
    std::vector<uint8_t> b = mem;
    for (uint64_t budget = 1; budget <= full.instructions + 1; ++budget) {
        // (the same buffer for both: trap messages name addresses)
        a = mem;
        const vm::RunResult want = interp->run_buffer(a, budget);
        b = a;
        a = mem;
        const vm::RunResult got = jit->run_buffer(a, budget);
        ASSERT_EQ(got.ok(), want.ok()) << "budget " << budget;
        if (want.ok()) {
            EXPECT_EQ(got.r0, want.r0) << "budget " << budget;
            EXPECT_EQ(got.instructions, want.instructions) << "budget " << budget;
        } else {
            EXPECT_EQ(got.trap->message(), want.trap->message()) << "budget " << budget;
        }
        EXPECT_EQ(a, b) << "budget " << budget;
    }
}

const char* const kByteSum =
    "mov %r0, 0\nmov %r2, 0\n"
    "l: mov %r3, %r1\nadd %r3, %r2\nldxb %r3, [%r3]\nadd %r0, %r3\nadd %r2, 1\njne %r2, 64, l\nexit";

TEST(JitWindows, AStridedLoopRunsWithoutChecksAndChargesTheBudgetAsTheInterpreter) {
    EXPECT_TRUE(has_window(kByteSum));
    const vm::RunResult r = same_on_all(kByteSum, bytes_from(3, 64));
    ASSERT_TRUE(r.ok());
    every_budget_agrees(kByteSum, bytes_from(3, 64));
}

// A small window's copy is laid out 2 or 4 times, charging an iteration per copy at the first
// copy's header: loops left from each copy after every number of iterations, at every budget,
// have the same result, memory, trap and charge as the interpreter. The first is entered in its
// middle, as clang lays out strcmp's; in it, a copy's jump back falls into the next copy (its
// condition inverted, to a stub with what the step does on its way out): the second has a move
// sunk past that jump, which only the way out makes, and the third is the second with a longer
// body (laid out twice). The fourth ends in `if (c) goto out; goto top` (one step, inverted: at
// the seam, the jump goes out on c again). The fifth goes back three times an iteration: an
// iteration starts three copies on from the last one.
std::string padded(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) {
        s += "xor %r6, " + std::to_string(i + 1) + "\n";
    }
    return s;
}

TEST(JitWindows, AnUnrolledCopyChargesEachIterationOnEveryWayOut) {
    const std::string sunk =
        "mov %r2, %r1\nadd %r2, 32\nmov %r0, 0\nmov %r6, 0\nja check\n"
        "body: add %r0, 1\nmov %r3, 1\nldxb %r4, [%r1]\njeq %r4, 0, out\nadd %r1, 1\nadd %r2, 1\n";
    const std::string sunk_check =
        "check: ldxb %r5, [%r2]\nmov %r3, %r5\njeq %r5, %r4, body\n"
        "out: lsh %r0, 8\nadd %r0, %r4\nlsh %r0, 8\nadd %r0, %r3\nadd %r0, %r6\nexit";
    const struct {
        std::string text;
        const char* copies;
        const char* seam;  // the first copy's jump out at its end, or null
    } cases[] = {
        {"mov %r2, %r1\nadd %r2, 32\nmov %r0, 0\nja check\n"
         "body: add %r0, 1\nldxb %r4, [%r1]\njeq %r4, 0, out\nadd %r1, 1\nadd %r2, 1\n"
         "check: ldxb %r5, [%r2]\njeq %r5, %r4, body\n"
         "out: lsh %r0, 8\nadd %r0, %r4\nexit",
         "4", "jne "},
        {sunk + sunk_check, "4", "jne "},
        {sunk + padded(20) + sunk_check, "2", "jne "},
        {"mov %r0, 0\nmov %r2, 0\nl: mov %r3, %r1\nadd %r3, %r2\nldxb %r3, [%r3]\nadd %r0, %r3\n"
         "jeq %r3, 0, out\nadd %r2, 1\njeq %r2, 40, out\nja l\nout: exit",
         "4", "je "},
        {"mov %r0, 0\nmov %r2, %r1\nh: ldxb %r4, [%r2]\nadd %r0, %r4\nja x\n"
         "m1: add %r2, 1\njne %r4, 0, h\nexit\n"
         "m2: add %r0, 3\nja y\nx: add %r0, 1\nja m2\ny: lsh %r0, 1\nja m1",
         "4", nullptr},
    };
    for (const auto& c : cases) {
        const std::string& text = c.text;
        JitOptions o;
        o.checked = true;
        o.keep_listing = true;
        Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(program_of(text), helpers(), o);
        ASSERT_TRUE(code) << code.error().message();
        const std::string& listing = (*code)->listing();
        const std::size_t copy = listing.find(std::string(", without checks, ") + c.copies + " times");
        ASSERT_NE(copy, std::string::npos) << listing;
        if (c.seam != nullptr) {
            // The first copy's last step: the compare, then a jump out, not one back.
            const std::size_t seam = listing.find("goto -0x", copy);
            ASSERT_NE(seam, std::string::npos) << listing;
            const std::size_t jump = listing.find("\nj", seam);
            ASSERT_NE(jump, std::string::npos) << listing;
            EXPECT_EQ(listing.substr(jump + 1, std::strlen(c.seam)), c.seam) << listing;
        }
        for (std::size_t stop = 0; stop < 11; ++stop) {
            // Equal halves up to `stop`, where either the first string ends or the second differs.
            for (bool zero : {false, true}) {
                std::vector<uint8_t> mem(64, 5);
                mem[stop] = zero ? 0 : 6;
                mem[32 + stop] = zero ? 0 : 7;
                same_on_all(text, mem);
                every_budget_agrees(text, mem);
            }
        }
    }
}

TEST(JitWindows, AWalkOffTheEndOfItsRegionTrapsWhereTheInterpreterTraps) {
    // Upwards by 1 past the end, by 8 with an offset, downwards below the start, and a store.
    for (const char* text : {
             "mov %r0, 0\nmov %r2, 0\nl: mov %r3, %r1\nadd %r3, %r2\nldxb %r3, [%r3]\nadd %r0, %r3\n"
             "add %r2, 1\njne %r2, 100, l\nexit",
             "mov %r0, 0\nmov %r2, %r1\nl: ldxdw %r3, [%r2+4]\nadd %r0, %r3\nadd %r2, 8\n"
             "jne %r3, 12345, l\nexit",
             "mov %r0, 0\nmov %r2, 56\nl: mov %r3, %r1\nadd %r3, %r2\nldxdw %r4, [%r3]\nadd %r0, %r4\n"
             "add %r2, -8\njsge %r2, -16, l\nexit",
             "mov %r2, 0\nl: mov %r3, %r1\nadd %r3, %r2\nstw [%r3+2], 9\nadd %r2, 4\njlt %r2, 80, l\nexit",
         }) {
        EXPECT_TRUE(has_window(text)) << text;
        const vm::RunResult r = same_on_all(text, bytes_from(1, 64));
        ASSERT_FALSE(r.ok()) << text;
        EXPECT_EQ(r.trap->kind, vm::TrapKind::OutOfBounds) << text;
        every_budget_agrees(text, bytes_from(1, 64));
    }
}

TEST(JitWindows, StoresGetAWindowOnlyInAWritableRegion) {
    const char* copy =
        "mov %r2, 0\nl: mov %r3, %r1\nadd %r3, %r2\nldxb %r4, [%r3]\nstxb [%r3+32], %r4\n"
        "add %r2, 1\njne %r2, 32, l\nldxdw %r0, [%r1+40]\nexit";
    EXPECT_TRUE(has_window(copy));
    EXPECT_TRUE(same_on_all(copy, bytes_from(5, 64)).ok());
    // The same copy into read-only memory traps at the store, on both checked engines.
    const std::vector<uint8_t> ro = bytes_from(9, 64);
    const vm::Region region = vm::Region::of(std::span<const uint8_t>(ro), "rodata");
    vm::RunInput in;
    in.r1 = region.begin;
    in.regions = std::span<const vm::Region>(&region, 1);
    auto a = Executable::create(program_of(copy), helpers(), Engine::InterpChecked);
    auto b = Executable::create(program_of(copy), helpers(), Engine::JitChecked);
    ASSERT_TRUE(a && b);
    const vm::RunResult want = a->run(in);
    const vm::RunResult got = b->run(in);
    ASSERT_FALSE(want.ok());
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.trap->kind, vm::TrapKind::ReadOnly);
    EXPECT_EQ(got.trap->message(), want.trap->message());
}

TEST(JitWindows, AThirtyTwoBitIndexThatWrapsLeavesTheWindow) {
    // w2 runs from 0xfffffff0 up and wraps to 0 after 16 iterations: r5 + w2 walks r1 + 0..15,
    // then jumps 4 GiB below. Without the guard the copy would go on reading r1 + 16...
    const char* text =
        "lddw %r5, 0xffffffff00000010\nadd %r5, %r1\nmov32 %r2, -16\nmov %r0, 0\nmov %r4, 20\n"
        "l: mov %r3, %r5\nmov32 %r6, %r2\nadd %r3, %r6\nldxb %r3, [%r3]\nadd %r0, %r3\nadd32 %r2, 1\n"
        "add %r4, -1\njne %r4, 0, l\nexit";
    EXPECT_TRUE(has_window(text));
    const vm::RunResult r = same_on_all(text, bytes_from(2, 32));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, vm::TrapKind::OutOfBounds);
    every_budget_agrees(text, bytes_from(2, 32));
    // Counting to 16 only, it finishes.
    std::string sixteen = text;
    sixteen.replace(sixteen.find("mov %r4, 20"), 11, "mov %r4, 16");
    EXPECT_TRUE(same_on_all(sixteen, bytes_from(2, 32)).ok());
}

TEST(JitWindows, AnIndexCopiedFromTheCounterIsCheckedAtEntry) {
    // As clang rotates strcmp's loop: the header loads at r1 + r0, and r0 is set from the counter
    // r5 before r5 steps; the window holds only if r0 = r5 - 1 on entry.
    const std::string body =
        "ja b\na: mov32 %r0, %r5\nadd32 %r5, 1\nb: mov %r2, %r1\nadd %r2, %r0\nldxb %r3, [%r2]\n"
        "add %r7, %r3\njne %r3, 0, a\nmov %r0, %r7\nexit";
    const std::string rotated = "mov32 %r5, 1\nmov %r0, 0\nmov %r7, 0\n" + body;
    // (here r0 starts 9 behind: without the entry check the window would run 9 iterations long)
    const std::string off_by_some = "mov32 %r5, 10\nmov %r0, 0\nmov %r7, 0\n" + body;
    EXPECT_TRUE(has_window(rotated));
    std::vector<uint8_t> with_zero = bytes_from(1, 48);
    with_zero[40] = 0;
    with_zero[3] = 0xff;
    for (const std::string& text : {rotated, off_by_some}) {
        EXPECT_TRUE(same_on_all(text, with_zero).ok()) << text;
        std::vector<uint8_t> no_zero(48, 1);
        const vm::RunResult r = same_on_all(text, no_zero);  // walks off the end
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.trap->kind, vm::TrapKind::OutOfBounds);
        every_budget_agrees(text, with_zero);
    }
}

TEST(JitWindows, LoadsFromTwoRegionsInOneLoop) {
    // The stack and the buffer through the one load cache: the window's setup finds both.
    const char* text =
        "stdw [%r10-64], 1\nstdw [%r10-8], 2\nmov %r4, %r10\nadd %r4, -64\nmov %r0, 0\nmov %r2, 0\n"
        "l: mov %r3, %r1\nadd %r3, %r2\nldxb %r3, [%r3]\nmov %r5, %r4\nadd %r5, %r2\nldxb %r5, [%r5]\n"
        "add %r0, %r3\nadd %r0, %r5\nadd %r2, 1\njne %r2, 64, l\nexit";
    EXPECT_TRUE(has_window(text));
    EXPECT_TRUE(same_on_all(text, bytes_from(4, 64)).ok());
    every_budget_agrees(text, bytes_from(4, 64));
    // Past the top of the stack, the second load traps.
    std::string far = text;
    far.replace(far.find("jne %r2, 64, l"), 14, "jne %r2, 65, l");
    EXPECT_FALSE(same_on_all(far, bytes_from(4, 96)).ok());
}

// The window's proof follows one path back to the header; a second way back that the code fuses
// into one step with the path's jump (`if (c) goto header; r2 = 1000; goto header`, a cmov and a
// jump) must not run in the copy: it moves the index the proof counts on.
TEST(JitWindows, ASecondWayBackFusedIntoThePathsJumpGetsNoWindow) {
    const char* text =
        "mov %r2, 0\nmov %r0, 0\nh: mov %r3, %r1\nadd %r3, %r2\nldxb %r4, [%r3]\nadd %r0, %r4\n"
        "add %r2, 1\njne %r4, 0x55, h\nmov %r2, 1000\nja h\nexit";
    std::vector<uint8_t> mem = bytes_from(1, 64);
    mem[5] = 0x55;
    const vm::RunResult r = same_on_all(text, mem);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, vm::TrapKind::OutOfBounds);
    EXPECT_EQ(r.trap->pc, 4u);
}

// Found by fuzz_bytecode: a `goto +0` on a window's path jumps to the next instruction, which the
// copy had no label for (the compile stopped on an assertion).
TEST(JitWindows, RegressionAGotoToTheNextInstructionOnThePath) {
    const char* text = "mov32 %r5, 16775937\nmov %r0, 0\nja +0\nmov32 %r0, %r5\nldxb %r1, [%r7]\njne %r3, 46, -6\nexit";
    const vm::RunResult r = same_on_all(text, {}, 1000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, vm::TrapKind::OutOfBounds);
    const char* walking =
        "mov %r0, 0\nmov %r2, 0\nl: mov %r3, %r1\nja +0\nadd %r3, %r2\nldxb %r3, [%r3]\nadd %r0, %r3\n"
        "add %r2, 1\njne %r2, 64, l\nexit";
    EXPECT_TRUE(has_window(walking));
    EXPECT_TRUE(same_on_all(walking, bytes_from(3, 64)).ok());
}

TEST(JitWindows, LoopsThatCannotBeProvedKeepTheirChecks) {
    // A pointer chase, an address from a multiply, a helper call, an atomic, an inner loop.
    for (const char* text : {
             "mov %r2, %r1\nl: ldxdw %r2, [%r2]\njne %r2, 0, l\nexit",
             "mov %r2, 0\nl: mov %r3, %r2\nmul %r3, 3\nadd %r3, %r1\nldxb %r0, [%r3]\nadd %r2, 1\n"
             "jne %r2, 8, l\nexit",
             "mov %r6, 0\nl: mov %r3, %r1\nadd %r3, %r6\nldxb %r0, [%r3]\ncall 1\nadd %r6, 1\n"
             "jne %r6, 8, l\nexit",
             "mov %r2, 0\nmov %r4, 1\nl: mov %r3, %r1\nadd %r3, %r2\nlock add [%r3], %r4\nadd %r2, 8\n"
             "jne %r2, 32, l\nexit",
         }) {
        EXPECT_FALSE(has_window(text)) << text;
        same_on_all(text, std::vector<uint8_t>(64));
    }
}

// A short forward branch over writes of one register becomes a cmov (Fused::Select): both ways,
// every skipped form and width, on a register whose upper half is set, as the interpreter runs it.
TEST(Jit, BranchesOverOneRegistersWritesSelectLikeTheInterpreter) {
    const char* skipped[] = {
        "mov32 %r3, 7",           "mov %r3, -7",          "mov32 %r3, 0",         "or32 %r3, 8",
        "or %r3, 8",              "add32 %r3, -1",        "rsh32 %r3, 4",         "arsh %r3, 60",
        "lsh32 %r3, 31",          "xor %r3, -1",          "and32 %r3, 0xff",      "mov32 %r3, %r4",
        "mov %r3, %r4",           "mov32 %r3, %r4\nrsh32 %r3, 16", "mov %r3, %r4\nsub %r3, 9",
        "mov32 %r3, %r3",
    };
    const char* conditions[] = {"jgt %r2, 3", "jle %r2, 3", "jset %r2, 4", "jset32 %r2, 2", "jslt %r2, %r4",
                                "jne32 %r2, 5", "jeq %r3, 0"};
    for (const char* body : skipped) {
        const std::string code = body;
        const int lines = 1 + static_cast<int>(std::count(code.begin(), code.end(), '\n'));
        for (const char* cond : conditions) {
            const std::string text = std::string("lddw %r3, 0x123456789abcdef0\nlddw %r4, 0xfedcba9876543210\n"
                                                 "mov %r2, 5\n") +
                                     cond + ", +" + std::to_string(lines) + "\n" + code +
                                     "\nmov %r0, %r3\nexit";
            same_on_all(text);
            has_window(text);  // (compiles in checked mode with a listing too)
            // ... and `if (c) goto t; <writes>; goto t`
            const std::string to_t = std::string("lddw %r3, 0x123456789abcdef0\nlddw %r4, 0xfedcba9876543210\n"
                                                 "mov %r2, 5\n") +
                                     cond + ", t\n" + code + "\nja t\nmov %r3, 1\nt: mov %r0, %r3\nexit";
            same_on_all(to_t);
        }
    }
}

// The verified-mode listing of a program's code (instructions only, one per line).
std::string verified_listing(std::string_view text) {
    JitOptions o;
    o.keep_listing = true;
    Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(program_of(text), helpers(), o);
    EXPECT_TRUE(code) << code.error().message();
    return code ? (*code)->listing() : std::string();
}

// Selects whose register holds a value known from the instruction before (Fused::Select's
// shorter forms): `rX = rY` then `if rY < 2^k skip; rX = rY; rX >>= k` shifts rX in place, with
// the shift's zero flag as the condition; `rX = 0|1` then `if c skip; rX = 1|0` is a setcc. Each
// at both widths, every way of writing the limit, at the values around it and with the upper
// half set, as the interpreter runs it.
TEST(Jit, SelectsOnAValueKnownFromTheInstructionBeforeMatchTheInterpreter) {
    struct Shape {
        const char* jump;  // with %r4 compared to the limit L, skipping the writes
        int64_t offset;    // L = 2^k + offset
    };
    const Shape shapes[] = {{"jlt", 0}, {"jle", -1}, {"jge", 0}, {"jgt", -1}};
    for (const bool w64 : {false, true}) {
        const std::string s = w64 ? "" : "32";
        for (const unsigned k : std::vector<unsigned>{1, 8, 16, 30, 31}) {
            for (const Shape& shape : shapes) {
                const int64_t limit = (int64_t{1} << k) + shape.offset;
                const std::string jump = std::string(shape.jump) + s + " %r4, " + std::to_string(static_cast<int32_t>(limit));
                // In place after a copy; in r11 after something else; on the compared register itself.
                const std::string in_place = "mov" + s + " %r3, %r4\n" + jump + ", +2\nmov" + s + " %r3, %r4\nrsh" +
                                             s + " %r3, " + std::to_string(k) + "\n";
                const std::string in_r11 = "mov" + s + " %r3, %r4\nor" + s + " %r3, 1\n" + jump + ", +2\nmov" + s +
                                           " %r3, %r4\nrsh" + s + " %r3, " + std::to_string(k) + "\n";
                const std::string itself = "mov %r3, %r4\n" + jump + ", +1\nrsh" + s + " %r4, " +
                                           std::to_string(k) + "\nmov %r3, %r4\n";
                for (const std::string& body : {in_place, in_r11, itself}) {
                    const std::string text = "ldxdw %r4, [%r1]\n" + body + "mov %r0, %r3\nexit";
                    const std::string code = verified_listing(text);
                    // The shift's flags, where the immediate is the limit (a 64-bit compare sign-extends
                    // 2^31 to another value: a compare then).
                    const bool exact = !w64 || limit <= INT32_MAX;
                    EXPECT_EQ(code.find("cmp ") == std::string::npos, exact) << text << code;
                    const uint64_t l = static_cast<uint64_t>(limit);
                    for (const uint64_t v : {uint64_t{0}, uint64_t{1}, l - 1, l, l + 1, l + 2, uint64_t{0xffffffff},
                                             uint64_t{0x100000000}, l | 0xffff000000000000, ~uint64_t{0}}) {
                        std::vector<uint8_t> mem(8);
                        std::memcpy(mem.data(), &v, 8);
                        same_on_all(text, mem);
                    }
                }
            }
        }
    }
    // setcc: r3 = 1 (or 0), then r3 = 0 (or 1) unless the condition holds.
    for (const char* cond : {"jgt %r4, 9", "jle32 %r4, 9", "jset %r4, 4", "jslt %r4, %r2", "jeq32 %r4, 0"}) {
        for (const char* values : {"mov32 %r3, 1\n", "mov %r3, 0\n"}) {
            const bool one = values[std::strlen(values) - 2] == '1';
            const std::string text = std::string("ldxdw %r4, [%r1]\nmov %r2, -3\n") + values + cond + ", +1\nmov" +
                                     (one ? "32" : "") + " %r3, " + (one ? "0" : "1") + "\nmov %r0, %r3\nexit";
            EXPECT_NE(verified_listing(text).find("set"), std::string::npos) << text;
            for (const uint64_t v : {uint64_t{0}, uint64_t{4}, uint64_t{9}, uint64_t{10}, uint64_t{0x100000000},
                                     ~uint64_t{0}, uint64_t{0x8000000000000004}}) {
                std::vector<uint8_t> mem(8);
                std::memcpy(mem.data(), &v, 8);
                same_on_all(text, mem);
            }
        }
    }
}

// An ALU instruction before a conditional jump, writing a register the jump's target does not
// read, is lowered after the jump (on the path that reads it): as clang's loops leave a value for
// their exit before the back edge. Both paths, as the interpreter runs them; not where the
// target reads it, the jump compares it, or another path enters in between.
TEST(Jit, AnInstructionOnlyTheFallThroughReadsIsLoweredAfterTheJump) {
    // r2 = r4 is read after the loop, not at its top (which writes r2 first).
    const char* loop =
        "mov %r0, 0\nmov %r5, 0\ntop: mov %r2, 7\nadd %r5, 1\nldxb %r4, [%r1]\nmov %r2, %r4\n"
        "jlt %r5, 3, top\nadd %r0, %r2\nadd %r0, %r5\nexit";
    const std::string code = verified_listing(loop);
    const std::size_t jump = code.find("jb ");
    const std::size_t move = code.find("mov rsi, rcx");
    ASSERT_NE(jump, std::string::npos) << code;
    EXPECT_NE(move, std::string::npos) << code;
    EXPECT_GT(move, jump) << code;
    for (uint8_t v : {0, 5, 255}) {
        same_on_all(loop, std::vector<uint8_t>{v, 1, 2, 3});
    }
    // Kept in place: the target reads r2; the jump compares r2; a label lies in between.
    for (const char* text : {
             "mov %r0, 1\nmov %r6, 0\ntop: ldxb %r4, [%r1]\nmov %r2, %r4\njgt %r4, 3, t\nstxb [%r1+1], %r4\n"
             "add %r6, 1\njlt %r6, 3, top\nt: add %r0, %r2\nexit",
             "mov %r0, 1\nmov %r6, 0\ntop: ldxb %r4, [%r1]\nmov %r2, %r4\njgt %r2, 3, t\nstxb [%r1+1], %r2\n"
             "add %r6, 1\njlt %r6, 3, top\nt: mov %r0, %r4\nexit",
             "mov %r0, 1\nmov %r6, 0\ntop: ldxb %r4, [%r1]\njeq %r4, 2, m\nstxb [%r1+1], %r4\nmov %r2, %r4\n"
             "m: jgt %r4, 3, t\nadd %r6, 1\njlt %r6, 3, top\nadd %r0, %r2\nt: exit",
         }) {
        const std::string c = verified_listing(text);
        const std::size_t j = c.find("ja ");
        const std::size_t m = c.find("mov rsi, rcx");
        ASSERT_NE(j, std::string::npos) << c;
        ASSERT_NE(m, std::string::npos) << c;
        EXPECT_LT(m, j) << text << c;
        for (uint8_t v : {0, 2, 3, 4, 200}) {
            same_on_all(text, std::vector<uint8_t>{v, 1, 2, 3});
        }
    }
}

// What a select knows of its register's value from the steps before it, through the targets of
// other selects that only they jump to: a known 0 or 1 becomes a setcc, an `or` of bits the
// register cannot have a lea. Not where another jump lands in between, nor once the bit may be
// set; every input around the conditions, as the interpreter runs them.
TEST(Jit, SelectsUseWhatIsKnownOfTheirRegisterFromTheStepsBefore) {
    const std::string head = "ldxw %r8, [%r1]\nmov32 %r7, 1\nmov32 %r4, 1\nlsh32 %r4, 4\n";
    // r7 = 1 passes a select on r3 (whose target only it jumps to); r4's bit 3 is clear, then set.
    const std::string body =
        "jgt32 %r8, 9, +1\nmov32 %r3, 5\njgt32 %r8, 1, +1\nmov32 %r7, 0\n"
        "jlt %r8, 100, +1\nor32 %r4, 8\njlt %r8, 50, +1\nor32 %r4, 8\n";
    const std::string tail = "mov %r0, %r7\nlsh %r0, 8\nadd %r0, %r4\nlsh %r0, 8\nadd %r0, %r3\nexit";
    const std::string known = "mov %r3, 2\n" + head + body + tail;
    // The same with a second jump landing at the first select's target: nothing known past it.
    const std::string joined = "mov %r3, 2\n" + head + "jeq %r8, 3, t\njgt32 %r8, 9, t\nmov32 %r3, 5\n" +
                               "t: jgt32 %r8, 1, +1\nmov32 %r7, 0\n" + tail;
    const std::string code = verified_listing(known);
    EXPECT_NE(code.find("setae r13b"), std::string::npos) << code;  // (w8 > 1 as w8 >= 2)
    const std::size_t lea = code.find("lea r11d, [rcx+8]");
    EXPECT_NE(lea, std::string::npos) << code;
    EXPECT_EQ(code.find("lea r11d, [rcx+8]", lea + 1), std::string::npos) << code;  // (bit 3 may be set)
    EXPECT_EQ(verified_listing(joined).find("set"), std::string::npos) << verified_listing(joined);
    for (const std::string& text : {known, joined}) {
        for (uint32_t v : {0u, 1u, 2u, 3u, 9u, 10u, 49u, 50u, 99u, 100u, 0xffffffffu}) {
            std::vector<uint8_t> mem(8);
            std::memcpy(mem.data(), &v, 4);
            same_on_all(text, mem);
        }
    }
}

// Two selects of one condition (the register unchanged in between) share its compare: the
// second, with what it needs of the steps between, is lowered right after the first and tests the
// flags the first left. The condition may be written again as it was, inverted, or as x >= K + 1
// for x > K; not where the register changes in between, or at another width. log2's shape too:
// the first select's shift is the test, the second a setcc of its zero flag. Each program at the
// values around its bound, as the interpreter runs it.
TEST(Jit, SelectsOfOneConditionShareItsCompare) {
    const std::string head = "ldxdw %r8, [%r1]\nldxw %r4, [%r1+8]\nmov32 %r3, 1\njlt %r8, 100, +1\nmov32 %r3, 0\n"
                             "add32 %r3, 5\nxor32 %r4, 3\nlsh32 %r4, 4\n";
    const std::string tail = "or32 %r4, 8\nmov %r0, %r3\nlsh %r0, 32\nadd %r0, %r4\nexit";
    struct Case {
        std::string second;  // the second select's jump (over `or32 %r4, 8`), and what comes before it
        int compares;        // of r8 in the listing
    };
    const Case cases[] = {
        {"jlt %r8, 100, +1\n", 1},
        {"jge %r8, 100, +1\n", 1},             // inverted
        {"jgt %r8, 99, +1\n", 1},              // x > 99: !(x < 100)
        {"jle %r8, 99, +1\n", 1},              // x <= 99: x < 100
        {"jge32 %r8, 100, +1\n", 2},           // another width
        {"jge %r8, 101, +1\n", 2},             // another bound
        {"add %r8, 1\njge %r8, 100, +1\n", 2},  // the register changes in between
    };
    for (const Case& c : cases) {
        const std::string text = head + c.second + tail;
        const std::string code = verified_listing(text);
        std::size_t compares = 0;
        for (std::size_t at = code.find("r14"); at != std::string::npos; at = code.find("r14", at + 1)) {
            const std::size_t line = code.rfind('\n', at) + 1;
            compares += code.compare(line, 4, "cmp ") == 0 && code.compare(line + 4, 3, "r14") == 0 ? 1 : 0;
        }
        EXPECT_EQ(compares, static_cast<std::size_t>(c.compares)) << text << code;
        same_on_all_pairs(text, {0, 98, 99, 100, 101, 0x100000063, 0x100000064, ~uint64_t{0}},
                          {0, 0xf, 0x10, 0xffffffff}, 4);
    }
    // log2's first step: w3 = w8 >= 2^16 ? w8 >> 16 : w8 | 1, w4 = w8 > 0xffff.
    const std::string log2 =
        "ldxw %r8, [%r1]\nmov32 %r3, %r8\nor32 %r3, 1\njlt32 %r8, 0x10000, +2\nmov32 %r3, %r8\nrsh32 %r3, 16\n"
        "mov32 %r5, %r3\nmov32 %r4, 1\njgt32 %r8, 0xffff, +1\nmov32 %r4, 0\n"
        "mov %r0, %r4\nlsh %r0, 32\nadd %r0, %r5\nexit";
    const std::string code = verified_listing(log2);
    EXPECT_EQ(code.find("cmp r14d"), std::string::npos) << code;
    EXPECT_NE(code.find("setne cl"), std::string::npos) << code;
    for (const uint32_t v : {0u, 1u, 0xfffeu, 0xffffu, 0x10000u, 0x10001u, 0xffffffffu}) {
        std::vector<uint8_t> mem(8);
        std::memcpy(mem.data(), &v, 4);
        same_on_all(log2, mem);
    }
}

// clang's `y += a < b` (`x = 1; if (a >= b) goto +1; x = 0; y += x`, x dead after the add): the
// add takes the carry flag of the compare (adc 0, or sbb -1 for 1 - CF) with no setcc. Only a
// condition on the carry flag, an add lowered right after the select, x not read again, and no
// other way into the add. log2's loop, whose last add is lowered in the copy of the loop's top
// block, also shares three compares (SelectsOfOneConditionShareItsCompare). At the values around
// the bounds, as the interpreter runs them.
TEST(Jit, SelectsAddTheirCarry) {
    const std::string head = "ldxdw %r2, [%r1]\nldxdw %r5, [%r1+8]\nmov %r0, 7\nmov32 %r4, 1\n";
    struct Case {
        std::string rest;
        const char* expect;  // in the listing
        bool setcc;
    };
    const Case cases[] = {
        {"jgt %r2, 9, +1\nmov32 %r4, 0\nadd %r0, %r4\nexit", "sbb rax, -1", false},     // r2 >= 10: 1 - CF
        {"jge %r2, 10, +1\nmov32 %r4, 0\nadd32 %r0, %r4\nexit", "sbb eax, -1", false},  // 32 bits
        {"jlt %r2, 10, +1\nmov32 %r4, 0\nadd %r0, %r4\nexit", "adc rax, 0", false},     // CF
        {"jlt %r2, 10, +1\nmov32 %r4, 0\nadd %r0, %r4\nadd %r0, %r4\nexit", "setb cl", true},  // read again
        {"jeq %r2, 10, +1\nmov32 %r4, 0\nadd %r0, %r4\nexit", "sete cl", true},         // not the carry
        {"jslt %r2, 10, +1\nmov32 %r4, 0\nadd %r0, %r4\nexit", "setl cl", true},
        {"jgt %r2, 9, +1\nmov32 %r4, 0\nadd %r5, %r4\nmov %r0, %r5\nexit", "sbb r8, -1", false},
        {"jgt %r2, 9, +1\nmov32 %r4, 0\nadd %r4, %r0\nmov %r0, %r4\nexit", "setae cl", true},  // x += y
        // another way into the add: r4 may be 1 or what the setcc made
        {"jeq %r5, 3, +2\njgt %r2, 9, +1\nmov32 %r4, 0\nadd %r0, %r4\nexit", "setae cl", true},
    };
    for (const Case& c : cases) {
        const std::string text = head + c.rest;
        const std::string code = verified_listing(text);
        EXPECT_NE(code.find(c.expect), std::string::npos) << text << code;
        EXPECT_EQ(code.find("\nset") != std::string::npos, c.setcc) << text << code;
        same_on_all_pairs(text, {0, 9, 10, 11, ~uint64_t{0}}, {3, 4}, 8);
    }
    // The log2 workload's loop (bench/workloads/log2.c as clang compiles it), on 16 values.
    const std::string log2 =
        "mov %r2, 0\nmov %r0, 0\nja +4\nadd32 %r4, %r7\nadd %r0, %r4\nadd %r2, 4\njeq %r2, 64, +34\n"
        "mov %r3, %r1\nadd %r3, %r2\nldxw %r8, [%r3]\nmov32 %r3, %r8\nor32 %r3, 1\njlt32 %r8, 65536, +2\n"
        "mov32 %r3, %r8\nrsh32 %r3, 16\nmov32 %r5, %r3\njlt32 %r3, 256, +2\nmov32 %r5, %r3\nrsh32 %r5, 8\n"
        "mov32 %r6, %r5\njlt32 %r5, 16, +2\nmov32 %r6, %r5\nrsh32 %r6, 4\nmov32 %r7, 1\nmov32 %r4, 1\n"
        "jgt32 %r8, 65535, +1\nmov32 %r4, 0\nmov32 %r8, %r6\njlt32 %r6, 4, +2\nmov32 %r8, %r6\nrsh32 %r8, 2\n"
        "jgt32 %r8, 1, +1\nmov32 %r7, 0\nlsh32 %r4, 4\njlt32 %r3, 256, +1\nor32 %r4, 8\njlt32 %r5, 16, +1\n"
        "or32 %r4, 4\njlt32 %r6, 4, -36\nor32 %r4, 2\nja -38\nexit";
    const std::string code = verified_listing(log2);
    EXPECT_NE(code.find("sbb ecx, -1"), std::string::npos) << code;
    std::size_t compares = 0;
    for (std::size_t at = code.find("\ncmp "); at != std::string::npos; at = code.find("\ncmp ", at + 1)) {
        ++compares;
    }
    EXPECT_EQ(compares, 3u) << code;  // the loop's test (twice: before and in the copy), w8 > 1
    std::mt19937 rng(7);
    for (int round = 0; round < 20; ++round) {
        std::vector<uint8_t> mem(64);
        for (std::size_t i = 0; i < mem.size(); i += 4) {
            const uint32_t bits = rng() % 33;  // values of every length, and at the bounds
            uint32_t v = bits == 32 ? rng() : (rng() & ((uint32_t{1} << bits) - 1)) | (bits > 0 ? uint32_t{1} << (bits - 1) : 0);
            if (round % 4 == 0) {
                v = (uint32_t{1} << (rng() % 32)) - (rng() % 2);
            }
            std::memcpy(mem.data() + i, &v, 4);
        }
        same_on_all(log2, mem);
    }
}

// A select on `>` or `<=` (unsigned) tests a condition that reads one flag group, which Intel
// runs as one uop where `a` and `be` take two: against an immediate c as `>= c + 1` or `< c + 1`,
// against 0 as `!= 0` or `== 0`, against a register with the operands swapped. Where c + 1 is no
// immediate (c is the top of its range, or INT32_MAX for 64 bits) the compare stays as it was.
// Every form at the values around its bound, as the interpreter runs them.
TEST(Jit, UnsignedAboveSelectsTestOneFlagGroup) {
    struct Case {
        const char* cond;  // the jump, taken past `mov32 %r3, 0`
        const char* cmp;   // the compare expected, "" for none in particular
        const char* test;  // the setcc expected
    };
    const Case cases[] = {
        {"jgt32 %r4, 9", "cmp ecx, 10", "setae"},
        {"jle32 %r4, 9", "cmp ecx, 10", "setb"},
        {"jgt %r4, 127", "cmp rcx, 128", "setae"},
        {"jgt %r4, -2", "cmp rcx, -1", "setae"},
        {"jgt32 %r4, 0x7fffffff", "cmp ecx, -2147483648", "setae"},
        {"jgt32 %r4, 0", "test ecx, ecx", "setne"},
        {"jle %r4, 0", "test rcx, rcx", "sete"},
        {"jgt %r4, %r2", "cmp rsi, rcx", "setb"},
        {"jle32 %r4, %r2", "cmp esi, ecx", "setae"},
        {"jgt %r4, 0x7fffffff", "cmp rcx, 2147483647", "seta"},
        {"jgt32 %r4, -1", "", "seta"},
        {"jle %r4, -1", "", "setbe"},
    };
    for (const Case& c : cases) {
        const std::string text = std::string("ldxdw %r4, [%r1]\nldxdw %r2, [%r1+8]\nmov32 %r3, 1\n") + c.cond +
                                 ", +1\nmov32 %r3, 0\nmov %r0, %r3\nexit";
        const std::string code = verified_listing(text);
        EXPECT_NE(code.find(std::string(c.cmp)), std::string::npos) << text << code;
        EXPECT_NE(code.find(std::string(c.test) + " "), std::string::npos) << text << code;
        for (const uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{9}, uint64_t{10}, uint64_t{11}, uint64_t{127},
                                 uint64_t{128}, uint64_t{0x7fffffff}, uint64_t{0x80000000}, uint64_t{0xfffffffe},
                                 uint64_t{0xffffffff}, uint64_t{0x100000000}, uint64_t{0x10000000a},
                                 ~uint64_t{1}, ~uint64_t{0}}) {
            for (const uint64_t w : {uint64_t{0}, uint64_t{10}, v, v + 1, v - 1}) {
                std::vector<uint8_t> mem(16);
                std::memcpy(mem.data(), &v, 8);
                std::memcpy(mem.data() + 8, &w, 8);
                same_on_all(text, mem);
            }
        }
    }
}

// `rX = 1` whose value only a later setcc-select of rX reads (rX = c ? 1 : 0) is lowered as
// `xor rX, rX`: the setcc writes the low byte, the upper bits only need to be clear. Not where
// anything on the way reads or writes rX (natively too: a shift by a register writes rcx, r4),
// leaves (a jump), is entered (a label), or where the select's jump compares rX itself; every
// case as the interpreter runs it.
TEST(Jit, AOneOnlyASetccReadsIsAZeroIdiom) {
    const std::string head = "ldxdw %r2, [%r1]\nldxdw %r5, [%r1+8]\nmov %r0, 7\n";
    // (r4 read twice at the end: one add of r4, where r4 is dead after it, would take the carry
    // flag in place of the setcc; SelectsAddTheirCarry)
    const std::string tail = "jgt %r2, 9, +1\nmov32 %r4, 0\nadd %r0, %r4\nadd %r0, %r4\nexit";
    struct Case {
        std::string between;  // after `mov32 %r4, 1`, before the select
        bool setcc;           // the select sets r4's low byte (r4 is known to be 1 at it)
        bool zeroed;
    };
    const Case cases[] = {
        {"", true, true},
        {"mov %r3, %r2\nadd %r3, 3\nstxdw [%r1+16], %r3\n", true, true},
        {"jgt %r5, 3, +1\nmov %r3, 1\nmov %r0, %r3\n", true, true},  // a select not on r4
        {"add %r0, %r4\n", true, false},                                 // reads r4
        {"stxdw [%r1+16], %r4\n", true, false},                          // stores r4
        {"jeq %r5, 3, +2\n", true, false},                               // a jump leaves (past the select)
        {"lsh %r5, %r2\nmov %r0, %r5\n", false, false},                 // writes rcx natively
        {"ja +0\n", false, false},                                       // a label (its target)
    };
    for (const Case& c : cases) {
        const std::string text = head + "mov32 %r4, 1\n" + c.between + tail;
        const std::string code = verified_listing(text);
        EXPECT_EQ(code.find("setae cl") != std::string::npos, c.setcc) << text << code;  // (against 10)
        EXPECT_EQ(code.find("xor ecx, ecx") != std::string::npos, c.zeroed) << text << code;
        for (const uint64_t v : {uint64_t{0}, uint64_t{9}, uint64_t{10}, ~uint64_t{0}}) {
            for (const uint64_t w : {uint64_t{3}, uint64_t{4}, uint64_t{63}}) {
                std::vector<uint8_t> mem(24);
                std::memcpy(mem.data(), &v, 8);
                std::memcpy(mem.data() + 8, &w, 8);
                same_on_all(text, mem);
            }
        }
    }
    // The select's jump compares r4 itself: it must see the 1.
    const std::string self = head + "mov32 %r4, 1\njgt %r4, 0, +1\nmov32 %r4, 0\nadd %r0, %r4\nexit";
    EXPECT_EQ(verified_listing(self).find("xor ecx, ecx"), std::string::npos) << verified_listing(self);
    EXPECT_EQ(same_on_all(self, std::vector<uint8_t>(24)).r0, 8u);  // 7 + 1
}

// In a loop busy with shifts, cmovs and branches (Intel runs those on two ports), shifts by 4-6
// become two leas; elsewhere and for other processors they stay shifts. Results as the
// interpreter's either way, at every shift count and width.
TEST(Jit, ShiftsInALoopBusyOnTheShiftPortsAreLeasOnIntel) {
    for (const std::string shift : {"lsh %r3, 4", "lsh32 %r3, 5", "lsh %r3, 6", "lsh32 %r3, 7", "lsh %r3, 2"}) {
        const std::string text =
            "mov %r0, 0\nmov %r2, 0\n"
            "top: ldxw %r3, [%r1]\nadd %r3, %r2\n"
            "jlt32 %r3, 0x100, +2\nmov32 %r4, %r3\nrsh32 %r4, 8\n"
            "jlt32 %r4, 0x10, +1\nrsh32 %r4, 4\n" +
            shift + "\nadd %r0, %r3\nadd %r0, %r4\nadd %r2, 77\njlt %r2, 7000, top\nexit";
        const vm::Program p = program_of(text);
        const unsigned k = static_cast<unsigned>(std::stoul(shift.substr(shift.find(", ") + 2)));
        for (const auto tuning : {JitOptions::Tuning::Intel, JitOptions::Tuning::Other}) {
            JitOptions o;
            o.keep_listing = true;
            o.tuning = tuning;
            Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(p, helpers(), o);
            ASSERT_TRUE(code) << code.error().message();
            const std::string& listing = (*code)->listing();
            const bool leas = tuning == JitOptions::Tuning::Intel && k <= 6;
            EXPECT_EQ(listing.find("shl ") == std::string::npos, leas) << text << listing;
            for (const uint32_t v : {0u, 5u, 0x1234u, 0xfffffu, 0x80000000u, 0xffffffffu}) {
                std::vector<uint8_t> a(8);
                std::memcpy(a.data(), &v, 4);
                std::vector<uint8_t> b = a;
                const vm::RunResult got = (*code)->run_buffer(a);
                const vm::RunResult want = vm::Interpreter::create(p, helpers())->run_buffer(b, {vm::Mode::Checked, 0});
                ASSERT_TRUE(got.ok() && want.ok()) << text;
                EXPECT_EQ(got.r0, want.r0) << text << " " << v;
            }
        }
    }
}

// A loop over the input's bytes that stops at the first zero or after 12: the zero at each of the
// first 14 bytes (the last two past where the count stops it), on every engine, as the
// interpreter runs it.
void runs_out_at_every_byte(const char* text) {
    for (std::size_t zero = 0; zero < 14; ++zero) {
        std::vector<uint8_t> mem(16, 3);
        if (zero < mem.size()) {
            mem[zero] = 0;
        }
        same_on_all(text, mem);
    }
}

// A constant move only a loop's exit reads (`r2 = 0` at the top of a loop that writes r2 again
// before reading it) runs on the exit's edge: a stub makes it and goes on to the exit. Every trip
// count and both ways out, in both modes, as the interpreter runs them.
TEST(Jit, AConstantOnlyALoopsExitReadsIsMovedToTheExit) {
    const char* text =
        "mov %r0, 0\nmov %r5, 0\n"
        "top: mov %r2, 0\nldxb %r4, [%r1]\nadd %r1, 1\nadd %r5, 1\njeq %r4, 0, out\n"
        "mov %r2, %r4\nadd %r0, %r2\njlt %r5, 12, top\n"
        "out: add %r0, %r2\nadd %r0, %r5\nexit";
    const std::string code = verified_listing(text);
    // The move is after the loop's code, in the stub (the last `xor esi, esi`, after the exit).
    const std::size_t move = code.find("xor esi, esi");
    ASSERT_NE(move, std::string::npos) << code;
    EXPECT_GT(move, code.find("ret")) << code;
    runs_out_at_every_byte(text);
}

// Two such moves ahead of the same jump out: one goes to the exit's stub, the other stays in the
// loop; both values reach the exit, on every way out and trip count.
TEST(Jit, TwoConstantsOnlyOneExitReadsBothReachIt) {
    const char* text =
        "mov %r0, 0\nmov %r5, 0\n"
        "top: mov %r2, 7\nmov %r3, 9\nldxb %r4, [%r1]\nadd %r1, 1\nadd %r5, 1\njeq %r4, 0, out\n"
        "mov %r2, %r4\nmov %r3, %r4\nadd %r0, %r2\nadd %r0, %r3\njlt %r5, 12, top\n"
        "out: lsh %r2, 8\nadd %r0, %r2\nadd %r0, %r3\nadd %r0, %r5\nexit";
    const std::string code = verified_listing(text);
    // At most one of the two after the exit's `ret`, in the stub.
    const std::size_t ret = code.find("ret");
    ASSERT_NE(ret, std::string::npos) << code;
    const bool r2_moved = code.find("mov esi, 7", ret) != std::string::npos;
    const bool r3_moved = code.find("mov edx, 9", ret) != std::string::npos;
    EXPECT_FALSE(r2_moved && r3_moved) << code;
    runs_out_at_every_byte(text);
}

// An lddw that still names a map or variable (src 1-6) is refused with its pc, wherever it is;
// resolved ones (src 0, code addresses) compile.
TEST(Jit, UnresolvedMapLoadsAreRefusedWithTheirPc) {
    for (const char* text : {"lddw %r1, 3, 1\nmov %r0, 0\nexit", "mov %r0, 0\nlddw %r2, 5\nlddw %r1, 3, 2\nexit"}) {
        Expected<vm::Program> p = vm::Program::from_raw(*vm::assemble(text));
        ASSERT_TRUE(p) << p.error().message();
        Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(*p, {});
        ASSERT_FALSE(code) << text;
        const std::string at = std::string(text).rfind("mov", 0) == 0 ? "pc 3" : "pc 0";
        EXPECT_EQ(code.error().message().rfind(at + ": lddw with src", 0), 0u) << code.error().message();
    }
    EXPECT_TRUE(JitProgram::compile(program_of("lddw %r1, 0x123456789\nmov %r0, %r1\nexit"), {}));
}

// A load into a register only the next conditional jump reads is the compare's memory operand
// (verified mode): every load width against both compare widths, every condition, the loaded
// value on either side and against an immediate, at values around the signs of each width, as
// the interpreter runs them; fused where the other operand fits the load's width.
TEST(Jit, ALoadOnlyAJumpReadsIsComparedInMemoryLikeTheInterpreter) {
    const char* widths[] = {"b", "h", "w", "dw"};
    const char* conditions[] = {"jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle"};
    const uint64_t values[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000,
                               0xffffffff, 0x100000000, 0x8000000000000000, ~uint64_t{0}};
    auto memory = [&](uint64_t a, uint64_t b) {
        std::vector<uint8_t> m(16);
        std::memcpy(m.data(), &a, 8);
        std::memcpy(m.data() + 8, &b, 8);
        return m;
    };
    for (unsigned w = 0; w < 4; ++w) {
        for (const char* c : conditions) {
            for (const char* cw : {"", "32"}) {
                // In a loop (where the lowering looks for it), leaving it when the jump is taken.
                const std::string top = "mov %r6, 0\ntop: ";
                const std::string load = std::string("ldx") + widths[w] + " %r3, [%r1+8]\n";
                const std::string other = std::string("ldx") + widths[w] + " %r2, [%r1]\n";  // fits
                const std::string tail =
                    ", t\nadd %r6, 1\njlt %r6, 3, top\nmov %r0, 1\nexit\nt: mov %r0, 2\nexit";
                const std::string programs[] = {
                    top + other + load + c + cw + " %r2, %r3" + tail,  // the loaded value second
                    top + other + load + c + cw + " %r3, %r2" + tail,  // ... first
                    top + "ldxdw %r2, [%r1]\n" + load + c + cw + " %r2, %r3" + tail,  // r2 may not fit
                    top + load + c + cw + " %r3, 0x7f" + tail,
                    top + load + c + cw + " %r3, -1" + tail,
                };
                for (std::size_t k = 0; k < std::size(programs); ++k) {
                    const std::string& text = programs[k];
                    const unsigned lw = 1u << w;
                    const unsigned cwb = std::string(cw) == "32" ? 4 : 8;
                    const bool fits = k < 2 || k == 3 || lw >= cwb;
                    // Fused: the load's address is in the compare.
                    const std::string code = verified_listing(text);
                    const std::size_t at = code.find("[rdi+8]");
                    const std::size_t line = code.rfind('\n', at) + 1;
                    EXPECT_EQ(at != std::string::npos && code.substr(line, at - line).find("cmp ") != std::string::npos, fits)
                        << text << "\n" << code;
                    for (const uint64_t a : values) {
                        for (const uint64_t b : {uint64_t{0}, uint64_t{0x7f}, uint64_t{0x80}, uint64_t{0xff}, ~uint64_t{0},
                                                 uint64_t{0x80000000}, a}) {
                            same_on_all(text, memory(a, b));
                        }
                    }
                }
            }
        }
    }
    // Checked mode checks the load's whole width where the compare reads less of it, and names
    // the load: 8 bytes at +12 of 16 trap, though the 32-bit compare reads 4 of them.
    for (const char* text : {"mov %r6, 0\ntop: ldxdw %r3, [%r1+12]\njeq32 %r3, 5, t\nadd %r6, 1\njlt %r6, 3, top\n"
                             "mov %r0, 1\nexit\nt: mov %r0, 2\nexit",
                             "mov %r6, 0\ntop: ldxw %r2, [%r1]\nldxdw %r3, [%r1+12]\njgt32 %r2, %r3, t\n"
                             "add %r6, 1\njlt %r6, 3, top\nmov %r0, 1\nexit\nt: exit"}) {
        const vm::RunResult r = same_on_all(text, memory(1, 2));
        ASSERT_TRUE(r.trap.has_value()) << text;
        EXPECT_EQ(r.trap->kind, vm::TrapKind::OutOfBounds) << text;
    }
}

// A loop entered in its middle (clang's layout: `goto body; top: ...; if (c) goto exit; body:
// ...; goto top`) goes back through a copy of its top block, whose jump is inverted to stay in
// the loop: one branch per iteration. Every trip count, and exits of the
// copy to a label that follows and to one that does not, as the interpreter runs them.
TEST(Jit, ALoopsBackJumpRunsACopyOfTheBlockItGoesTo) {
    const std::string loop =
        "mov %r0, 0\nmov %r2, 0\nldxb %r3, [%r1]\nja body\n"
        "top: add %r0, %r2\nadd %r2, 1\njge %r2, %r3, out\n"
        "body: mul %r0, 3\nadd %r0, 1\nja top\n";
    for (const std::string& text : {loop + "out: exit", loop + "mov %r0, 1\nout: add %r0, 7\nexit"}) {
        const std::string code = verified_listing(text);
        // The block at `top` is lowered twice: in place and before the back jump.
        std::size_t copies = 0;
        for (std::size_t at = code.find("; 4: r0 += r2"); at != std::string::npos; at = code.find("; 4: r0 += r2", at + 1)) {
            ++copies;
        }
        EXPECT_EQ(copies, 2u) << text << code;
        for (uint8_t n : {0, 1, 2, 5, 40}) {
            same_on_all(text, std::vector<uint8_t>{n, 0, 0, 0});
        }
    }
}

// A backward jump is a loop only when code the top reaches can jump back (a cycle): clang also
// jumps back to a block several paths share (an exit), which runs once and gets none of a loop's
// treatment (alignment padding, exit moves, a copy of its top). Both shapes, a cycle whose way back
// is behind a forward jump, and a scan that must give up (a jump back before the top), as the
// interpreter runs them.
TEST(Jit, OnlyBackwardJumpsThatCloseACycleAreLoops) {
    struct Case {
        std::string text;
        bool cycle;  // at the target of the backward jumps, label `top`
    };
    const Case cases[] = {
        {"mov %r0, 0\nldxb %r2, [%r1]\nja start\ntop: add %r0, 7\nexit\n"
         "start: jeq %r2, 0, top\nadd %r0, 1\njeq %r2, 1, top\nexit",
         false},
        {"mov %r0, 0\nldxb %r2, [%r1]\ntop: add %r0, 1\njgt %r0, 9, out\nja back\nout: exit\n"
         "back: jlt %r0, %r2, top\nexit",
         true},
        {"mov %r0, 0\nldxb %r2, [%r1]\nja start\nbefore: add %r0, 3\nexit\ntop: add %r0, 7\n"
         "jeq %r0, 99, before\nexit\nstart: jeq %r2, 0, top\nexit",
         true},  // (the scan meets a jump back before the top: taken as a cycle)
    };
    for (const Case& c : cases) {
        const vm::Program p = program_of(c.text);
        jit::Facts facts;
        jit::analyse(p, facts);
        ASSERT_FALSE(facts.loop_ends.empty()) << c.text;
        std::size_t top = 0;
        for (const auto& [t, end] : facts.loop_ends) {
            top = std::max<std::size_t>(top, t);
        }
        EXPECT_NE(facts.boundary[top] & jit::Facts::kLoop, 0) << c.text;
        EXPECT_EQ((facts.boundary[top] & jit::Facts::kCycle) != 0, c.cycle) << c.text;
        // Only a cycle's top is aligned.
        const std::string code = verified_listing(c.text);
        EXPECT_EQ(code.find("align") != std::string::npos, c.cycle) << c.text << code;
        for (uint8_t n : {0, 1, 2, 5}) {
            same_on_all(c.text, std::vector<uint8_t>{n, 0, 0, 0});
        }
    }
}

// A loop whose top block many gotos go back to (each case of a switch ends in `goto top`): up to
// 16 gotos each run a copy of the block; with more, none does (the copies would cost more compile
// time and code than the jump each saves), and every case jumps back to the block itself. Both
// as the interpreter runs them.
TEST(Jit, AtMostSixteenGotosCopyTheBlockTheyGoBackTo) {
    for (int cases : {2, 16, 17, 64}) {
        std::string text = "mov %r0, 0\nmov %r2, 0\nja body\ntop: add %r0, %r2\nadd %r2, 1\njge %r2, 100, out\n"
                           "body: mov %r4, %r2\nmod %r4, " + std::to_string(cases) + "\n";
        for (int k = 0; k + 1 < cases; ++k) {
            text += "jeq %r4, " + std::to_string(k) + ", c" + std::to_string(k) + "\n";
        }
        for (int k = cases - 1; k >= 0; --k) {
            text += "c" + std::to_string(k) + ": add %r0, " + std::to_string(7 * k + 1) + "\nja top\n";
        }
        text += "out: exit";
        const std::string code = verified_listing(text);
        std::size_t copies = 0;
        for (std::size_t at = code.find("; 3: r0 += r2"); at != std::string::npos; at = code.find("; 3: r0 += r2", at + 1)) {
            ++copies;
        }
        EXPECT_EQ(copies, cases <= 16 ? 1u + static_cast<std::size_t>(cases) : 1u) << cases << " cases\n" << code;
        same_on_all(text, std::vector<uint8_t>{0, 0, 0, 0});
    }
}

// Found by the kernel oracle's random programs: a division keeps rax and rdx only where r0 and
// r3 are still read, but the plan compares r3 in place of a copy of it made for the compare; the
// division in between must count as writing r3, or the compare reads the remainder.
TEST(Jit, RegressionADivisionBetweenACopyAndItsCompareKeepsTheCopiedRegister) {
    for (const char* op : {"mod", "div", "mod32", "div32"}) {
        const std::string text = std::string("mov %r0, 0\nmov %r3, 7\nmov %r1, 100\nmov %r2, %r3\n") + op +
                                 " %r1, 3\njgt %r2, 5, l\nexit\nl: mov %r0, %r1\nexit";
        EXPECT_TRUE(same_on_all(text).ok()) << text;
        const std::string r0 = std::string("mov %r0, 9\nmov %r1, 100\nmov %r2, %r0\n") + op +
                               " %r1, 3\njgt %r2, 5, l\nmov %r0, 0\nexit\nl: mov %r0, %r1\nexit";
        EXPECT_TRUE(same_on_all(r0).ok()) << r0;
    }
}

TEST(Jit, ConstantBlindingCoversLegacyPacketLoadOffsets) {
    const vm::Program p = program_of("mov %r6, 0x3c3c3c3c\nldindb %r6, 0x3c3c3c3c\nldabsb 0x3c3c3c3c\nexit");
    const uint8_t pattern[] = {0x3c, 0x3c, 0x3c, 0x3c};
    for (bool checked : {false, true}) {
        JitOptions blind;
        blind.checked = checked;
        blind.blind_constants = true;
        auto b = JitProgram::compile(p, {}, blind);
        ASSERT_TRUE(b);
        // (The mov's immediate is blinded too; the code must hold the pattern nowhere.)
        EXPECT_FALSE(contains(static_cast<const uint8_t*>((*b)->code()), (*b)->code_size(), pattern));
    }
    // And the loads still read what they should.
    for (const char* text : {"ldabsb 2\nexit", "mov %r6, 1\nldindh %r6, 2\nexit", "ldabsw 9\nexit"}) {
        const vm::Program q = program_of(text);
        JitOptions blind;
        blind.blind_constants = true;
        auto b = JitProgram::compile(q, {}, blind);
        auto plain = JitProgram::compile(q, {});
        ASSERT_TRUE(b && plain);
        std::vector<uint8_t> m1 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
        std::vector<uint8_t> m2 = m1;
        EXPECT_EQ((*b)->run_buffer(m1).r0, (*plain)->run_buffer(m2).r0) << text;
    }
}

TEST(Jit, ConstantBlindingLeavesNoChosenImmediateInTheCode) {
    const char* text =
        "mov %r0, 0x3c3c3c3c\nadd %r0, 0x3c3c3c3c\nxor32 %r0, 0x3c3c3c3c\nmul %r0, 0x3c3c3c3c\n"
        "div %r0, 0x3c3c3c3c\njeq %r0, 0x3c3c3c3c, +0\njset32 %r0, 0x3c3c3c3c, +0\nstw [%r10-4], 0x3c3c3c3c\n"
        "stdw [%r1], 0x3c3c3c3c\nlddw %r2, 0x3c3c3c3c3c3c3c3c\nadd %r0, %r2\nldxw %r3, [%r10-4]\n"
        "add %r0, %r3\nexit";
    const vm::Program p = program_of(text);
    const uint8_t pattern[] = {0x3c, 0x3c, 0x3c, 0x3c};
    for (bool checked : {false, true}) {
        JitOptions plain;
        plain.checked = checked;
        JitOptions blind = plain;
        blind.blind_constants = true;
        auto a = JitProgram::compile(p, {}, plain);
        auto b = JitProgram::compile(p, {}, blind);
        auto c = JitProgram::compile(p, {}, blind);
        ASSERT_TRUE(a && b && c);
        EXPECT_TRUE(contains(static_cast<const uint8_t*>((*a)->code()), (*a)->code_size(), pattern));
        EXPECT_FALSE(contains(static_cast<const uint8_t*>((*b)->code()), (*b)->code_size(), pattern));
        // Fresh keys per compile: two blinded compiles differ.
        EXPECT_NE(std::memcmp((*b)->code(), (*c)->code(), std::min((*b)->code_size(), (*c)->code_size())), 0);
        std::vector<uint8_t> m1(8), m2(8), m3(8);
        const vm::RunResult ra = (*a)->run_buffer(m1);
        const vm::RunResult rb = (*b)->run_buffer(m2);
        ASSERT_TRUE(ra.ok() && rb.ok());
        EXPECT_EQ(ra.r0, rb.r0);
        EXPECT_EQ(m1, m2);
        EXPECT_EQ(m1[3], 0x3c);
    }
}

TEST(Jit, ConstantBlindingKeepsResultsOnRandomPrograms) {
    // Every ALU/jump/store form with an immediate, through the random programs.
    JitOptions blind;
    blind.blind_constants = true;
    for (uint64_t seed = 1; seed <= 300; ++seed) {
        Expected<vm::Program> p = vm::Program::from_raw(test::random_program(seed));
        ASSERT_TRUE(p);
        for (bool checked : {false, true}) {
            blind.checked = checked;
            auto code = JitProgram::compile(*p, test::mix_helpers(), blind);
            auto interp = vm::Interpreter::create(*p, test::mix_helpers());
            ASSERT_TRUE(code && interp);
            std::vector<uint8_t> a = test::random_buffer(seed, 64);
            std::vector<uint8_t> b = a;
            const vm::RunResult j = (*code)->run_buffer(a);
            const vm::RunResult i = interp->run_buffer(b, {vm::Mode::Checked, 0});
            ASSERT_TRUE(j.ok() && i.ok()) << seed;
            EXPECT_EQ(j.r0, i.r0) << seed;
            EXPECT_EQ(a, b) << seed;
        }
    }
}

// One line of /proc/self/maps.
struct Mapping {
    uintptr_t lo = 0;
    uintptr_t hi = 0;
    std::string perms;
    std::string device;
    std::string inode;
};
std::vector<Mapping> mappings() {
    std::vector<Mapping> out;
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        std::istringstream in(line);
        std::string range, offset;
        Mapping m;
        in >> range >> m.perms >> offset >> m.device >> m.inode;
        m.lo = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
        m.hi = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
        out.push_back(m);
    }
    return out;
}

// The code's pages are read-execute, and no mapping of the file they come from (if any) is
// writable: no alias to write the code through either.
TEST(Jit, CodePagesAreNeverWritableAndExecutable) {
    Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(program_of("mov %r0, 1\nexit"), {});
    ASSERT_TRUE(code);
    const auto base = reinterpret_cast<uintptr_t>((*code)->code());
    const std::vector<Mapping> all = mappings();
    const auto it = std::find_if(all.begin(), all.end(), [&](const Mapping& m) { return base >= m.lo && base < m.hi; });
    ASSERT_NE(it, all.end());
    EXPECT_EQ(it->perms.substr(0, 3), "r-x");
    if (it->inode != "0") {
        for (const Mapping& m : all) {
            if (m.device == it->device && m.inode == it->inode) {
                EXPECT_EQ(m.perms[1], '-') << "a writable mapping of the code's file at " << std::hex << m.lo;
            }
        }
    }
}

// The code lies within 2 GiB of the library's own code (and so of a program linking it, and of
// its helpers): calls between them are to a neighbour, which Intel cores predict as cheaply as a
// call inside one binary (a far one cost an empty program's round trip about 1 ns more).
TEST(Jit, CodeLiesNearTheLibrary) {
    Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(program_of("mov %r0, 1\nexit"), {});
    ASSERT_TRUE(code);
    const auto here = reinterpret_cast<uintptr_t>(&JitProgram::compile);
    const auto at = reinterpret_cast<uintptr_t>((*code)->code());
    const uintptr_t distance = at > here ? at - here : here - at;
    EXPECT_LT(distance, uintptr_t{1} << 31) << std::hex << "code at 0x" << at << ", the library at 0x" << here;
}

// Code memory is reused as programs come and go (programs share pages): each program still runs
// its own code while others are freed and compiled around it.
TEST(Jit, ProgramsCompiledAndFreedAroundOthersKeepTheirCode) {
    std::vector<std::unique_ptr<JitProgram>> live(64);
    std::vector<uint64_t> want(64);
    std::mt19937 rng(7);
    std::set<uintptr_t> addresses;
    for (unsigned round = 0; round < 2000; ++round) {
        const std::size_t k = rng() % live.size();
        const uint64_t v = rng() % 100000;
        // Programs of different lengths, so that freed ranges are split and merged.
        std::string text;
        for (unsigned i = 0; i < 1 + v % 40; ++i) {
            text += "mov %r0, " + std::to_string(v) + "\n";
        }
        Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(program_of(text + "exit"), {});
        ASSERT_TRUE(code) << code.error().message();
        live[k] = std::move(*code);
        want[k] = v;
        addresses.insert(reinterpret_cast<uintptr_t>(live[k]->code()));
        if (round % 97 == 0) {
            for (std::size_t i = 0; i < live.size(); ++i) {
                if (live[i]) {
                    ASSERT_EQ(live[i]->run(vm::RunInput{}).r0, want[i]) << round << " " << i;
                }
            }
        }
    }
    for (std::size_t i = 0; i < live.size(); ++i) {
        ASSERT_EQ(live[i]->run(vm::RunInput{}).r0, want[i]) << i;
    }
    EXPECT_LT(addresses.size(), 2000u);  // freed memory was used again
}

// A child process keeps running the code it inherited while its parent frees that program and
// compiles others (which must not be written where the child's copy runs), and the child can
// compile and run programs of its own.
TEST(Jit, AForkedChildRunsItsInheritedCodeWhileTheParentCompilesMore) {
    Expected<std::unique_ptr<JitProgram>> inherited = JitProgram::compile(program_of("mov %r0, 42\nexit"), {});
    ASSERT_TRUE(inherited);
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        char c = 0;
        const bool go = read(ready[0], &c, 1) == 1;  // the parent has compiled over the freed range
        const uint64_t r0 = (*inherited)->run(vm::RunInput{}).r0;
        Expected<std::unique_ptr<JitProgram>> own = JitProgram::compile(program_of("mov %r0, 8\nexit"), {});
        const bool ok = go && r0 == 42 && own && (*own)->run(vm::RunInput{}).r0 == 8;
        _exit(ok ? 0 : 1);
    }
    inherited->reset();
    std::vector<std::unique_ptr<JitProgram>> more;
    for (int i = 0; i < 32; ++i) {
        Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(program_of("mov %r0, 7\nexit"), {});
        ASSERT_TRUE(code);
        more.push_back(std::move(*code));
    }
    ASSERT_EQ(write(ready[1], "x", 1), 1);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    for (const auto& code : more) {
        EXPECT_EQ(code->run(vm::RunInput{}).r0, 7u);
    }
    close(ready[0]);
    close(ready[1]);
}

// Where memory files are refused (a sandbox: here a seccomp filter that fails memfd_create), code
// goes into an anonymous mapping made read-execute after it is written, and runs the same.
TEST(Jit, WithoutMemoryFilesCodeIsWrittenBeforeItsPagesBecomeExecutable) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        struct sock_filter filter[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),  // seccomp_data.nr
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_memfd_create, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {static_cast<unsigned short>(std::size(filter)), filter};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
            _exit(2);
        }
        Expected<std::unique_ptr<JitProgram>> code = JitProgram::compile(program_of("mov %r0, 5\nexit"), {});
        if (!code || (*code)->run(vm::RunInput{}).r0 != 5) {
            _exit(1);
        }
        const auto base = reinterpret_cast<uintptr_t>((*code)->code());
        for (const Mapping& m : mappings()) {
            if (base >= m.lo && base < m.hi) {
                _exit(m.perms.substr(0, 3) == "r-x" && m.inode == "0" ? 0 : 3);
            }
        }
        _exit(4);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
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
