// The interpreter's own behaviour beyond the conformance suite: traps in checked mode, the two
// modes agreeing, helpers and their context, bpf-to-bpf frames, legacy packet loads.
#include "bpfvm/vm/interpreter.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "bpfvm/vm/assembler.hpp"
#include "test_support.hpp"

namespace bpfvm::vm {
namespace {

Interpreter make(std::string_view text, const HelperTable& helpers = {}) {
    Expected<std::vector<RawInsn>> raw = assemble(text);
    EXPECT_TRUE(raw) << raw.error().message();
    Expected<Program> p = Program::from_raw(*raw);
    EXPECT_TRUE(p) << p.error().message();
    Expected<Interpreter> i = Interpreter::create(*p, helpers);
    EXPECT_TRUE(i) << i.error().message();
    return std::move(*i);
}

RunResult checked(const Interpreter& interp, std::span<uint8_t> mem = {}, uint64_t budget = 0) {
    return interp.run_buffer(mem, RunOptions{Mode::Checked, budget});
}

TEST(Interpreter, BothModesAgreeOnResults) {
    const Interpreter interp = make(
        "mov %r0, 0\n"
        "mov %r3, 0\n"
        "loop: ldxb %r4, [%r1]\n"
        "add %r0, %r4\n"
        "lsh %r0, 3\n"
        "add %r1, 1\n"
        "add %r3, 1\n"
        "jlt %r3, %r2, loop\n"
        "exit\n");
    std::array<uint8_t, 16> a{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    std::array<uint8_t, 16> b = a;
    const RunResult c = interp.run_buffer(a, {Mode::Checked, 0});
    const RunResult f = interp.run_buffer(b, {Mode::Fast, 0});
    ASSERT_TRUE(c.ok() && f.ok());
    EXPECT_EQ(c.r0, f.r0);
    EXPECT_NE(c.r0, 0u);
    // Charged in checked mode: 2 at the entry, then at each arrival at the loop header the longest
    // path to the next charge point or exit (the body and the exit: 7).
    EXPECT_EQ(c.instructions, 2u + 16u * 7u);
    EXPECT_EQ(f.instructions, 0u);
}

TEST(Interpreter, TrapsOnOutOfBoundsLoadWithPcAndAddress) {
    const Interpreter interp = make("ldxw %r0, [%r1+6]\nexit");
    std::array<uint8_t, 8> mem{};
    const RunResult r = checked(interp, mem);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, TrapKind::OutOfBounds);
    EXPECT_EQ(r.trap->pc, 0u);
    EXPECT_EQ(r.trap->address, reinterpret_cast<uintptr_t>(mem.data()) + 6);
    EXPECT_EQ(r.trap->size, 4u);
    EXPECT_FALSE(r.trap->write);
    EXPECT_NE(r.trap->message().find("pc 0: out-of-bounds 4-byte load from 0x"), std::string::npos)
        << r.trap->message();
}

TEST(Interpreter, TrapsOnStoresToHostMemory) {
    // An unverified program tries to write through a forged pointer.
    const Interpreter interp = make("lddw %r1, 0x1000\nstdw [%r1], 7\nexit");
    const RunResult r = checked(interp);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, TrapKind::OutOfBounds);
    EXPECT_EQ(r.trap->pc, 2u);
    EXPECT_EQ(r.trap->address, 0x1000u);
    EXPECT_TRUE(r.trap->write);
}

TEST(Interpreter, StackIsBoundedAbove) {
    const Interpreter ok = make("stdw [%r10-512], 1\nldxdw %r0, [%r10-512]\nexit");
    EXPECT_EQ(checked(ok).r0, 1u);
    const Interpreter above = make("stdw [%r10], 1\nexit");  // r10 points just past the stack
    const RunResult r = checked(above);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, TrapKind::OutOfBounds);
}

// Found by fuzz_bytecode: memory below the innermost frame holds what earlier runs left there, so
// checked runs may not touch it (results must not depend on history).
TEST(Interpreter, StackBelowTheInnermostFrameIsOutOfBounds) {
    const RunResult r = checked(make("lddw %r1, 0x9999\nlock cmpxchg [%r10-1032], %r1\nexit"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, TrapKind::OutOfBounds);
    EXPECT_EQ(r.trap->pc, 2u);
    EXPECT_EQ(checked(make("stdw [%r10-520], 1\nexit")).trap->kind, TrapKind::OutOfBounds);
    // A callee's frame is 512 bytes lower, and the caller's stays reachable from it.
    EXPECT_TRUE(checked(make("call local f\nexit\nf: stdw [%r10-8], 1\nstdw [%r10+8], 2\nexit")).ok());
}

TEST(Interpreter, ReadOnlyRegionsRefuseStores) {
    const Interpreter interp = make("ldxb %r0, [%r1]\nstb [%r1], 9\nexit");
    const std::array<uint8_t, 4> rodata{42, 0, 0, 0};
    const Region region = Region::of(std::span<const uint8_t>(rodata), "rodata");
    RunInput in;
    in.r1 = region.begin;
    in.regions = std::span<const Region>(&region, 1);
    const RunResult r = interp.run(in, {Mode::Checked, 0});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, TrapKind::ReadOnly);
    EXPECT_EQ(r.trap->pc, 1u);
    EXPECT_NE(r.trap->message().find("read-only region 'rodata'"), std::string::npos) << r.trap->message();
}

TEST(Interpreter, BudgetStopsAnInfiniteLoop) {
    // Charged 1 at the entry, then 2 per arrival at the loop: 999 paid, the next 2 do not fit.
    const Interpreter interp = make("mov %r0, 0\nloop: add %r0, 1\nja loop\n");
    const RunResult r = checked(interp, {}, 1000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, TrapKind::BudgetExhausted);
    EXPECT_EQ(r.trap->pc, 1u);
    EXPECT_EQ(r.instructions, 999u);
    EXPECT_EQ(r.trap->message(), "pc 1: instruction budget of 1000 exhausted");
}

TEST(Interpreter, BudgetIsChargedAheadForTheLongestPath) {
    // Straight-line code is paid for at the entry: a budget one short stops it before it starts.
    const Interpreter line = make("mov %r0, 1\nmov %r0, 2\nexit");
    EXPECT_TRUE(checked(line, {}, 3).ok());
    EXPECT_EQ(checked(line, {}, 3).instructions, 3u);
    EXPECT_EQ(checked(line, {}, 2).trap->kind, TrapKind::BudgetExhausted);
    EXPECT_EQ(checked(line, {}, 2).trap->pc, 0u);
    // A branch around two instructions: the short path (2 executed) still pays for the long one.
    const Interpreter branch = make("jeq %r1, 0, +2\nmov %r0, 1\nmov %r0, 2\nexit");
    const RunResult r = checked(branch, {}, 4);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.instructions, 4u);
    EXPECT_FALSE(checked(branch, {}, 3).ok());
    // A function pays at its entry, each time it is called.
    const Interpreter calls = make("call local f\ncall local f\nexit\nf: mov %r0, 1\nexit");
    EXPECT_EQ(checked(calls, {}, 0).instructions, 3u + 2u * 2u);
    const RunResult short_of_second = checked(calls, {}, 6);
    ASSERT_FALSE(short_of_second.ok());
    EXPECT_EQ(short_of_second.trap->pc, 3u);
}

uint64_t add_all(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, CallContext* ctx) {
    return a + b + c + d + e + reinterpret_cast<uint64_t>(ctx->user);
}

uint64_t faulty(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    ctx->fault = "refused";
    return 0;
}

// A helper that checks the pointer it is given, as kernel-like helpers must.
uint64_t read_u64(uint64_t ptr, uint64_t, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    if (!ctx->allowed(ptr, 8, false)) {
        return static_cast<uint64_t>(-14);  // -EFAULT
    }
    uint64_t v;
    std::memcpy(&v, reinterpret_cast<const void*>(ptr), 8);
    return v;
}

TEST(Interpreter, HelpersReceiveR1ToR5AndTheUserPointer) {
    HelperTable helpers;
    ASSERT_TRUE(helpers.add(1, "add_all", add_all));
    const Interpreter interp =
        make("mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 1\nexit", helpers);
    RunInput in;
    in.user = reinterpret_cast<void*>(100);
    EXPECT_EQ(interp.run(in, {Mode::Checked, 0}).r0, 115u);
    EXPECT_EQ(interp.run(in, {Mode::Fast, 0}).r0, 115u);
}

TEST(Interpreter, HelpersCanCheckPointersAgainstTheRegions) {
    HelperTable helpers;
    ASSERT_TRUE(helpers.add(2, "read_u64", read_u64));
    const Interpreter stack = make("stdw [%r10-8], 77\nmov %r1, %r10\nadd %r1, -8\ncall 2\nexit", helpers);
    EXPECT_EQ(checked(stack).r0, 77u);
    const Interpreter wild = make("lddw %r1, 0x1234\ncall 2\nexit", helpers);
    EXPECT_EQ(checked(wild).r0, static_cast<uint64_t>(-14));
}

TEST(Interpreter, UnknownHelperTrapsInBothModes) {
    const Interpreter interp = make("mov %r0, 1\ncall 99\nexit");
    for (Mode mode : {Mode::Checked, Mode::Fast}) {
        const RunResult r = interp.run_buffer({}, {mode, 0});
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.trap->kind, TrapKind::UnknownHelper);
        EXPECT_EQ(r.trap->pc, 1u);
        EXPECT_EQ(r.trap->message(), "pc 1: call to unknown helper 99");
    }
}

TEST(Interpreter, HelperFaultBecomesATrap) {
    HelperTable helpers;
    ASSERT_TRUE(helpers.add(3, "faulty", faulty));
    const RunResult r = checked(make("call 3\nexit", helpers));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, TrapKind::HelperFault);
    EXPECT_EQ(r.trap->message(), "pc 0: helper faulty: refused");
}

TEST(Interpreter, CallxCallsTheHelperWhoseIdIsInTheRegister) {
    HelperTable helpers;
    ASSERT_TRUE(helpers.add(1, "add_all", add_all));
    const Interpreter interp = make(
        "mov %r1, 40\nmov %r2, 2\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\n"
        "mov %r6, 1\ncall %r6\nexit",
        helpers);
    EXPECT_EQ(checked(interp).r0, 42u);
    const Interpreter bad = make("mov %r6, 7\ncall %r6\nexit", helpers);
    const RunResult r = checked(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->message(), "pc 1: callx target r6 = 7 is not a registered helper");
}

TEST(Interpreter, KernelFunctionCallsTrap) {
    const RunResult r = checked(make("call runtime 1234\nexit"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, TrapKind::UnsupportedCall);
}

TEST(Interpreter, LocalCallsGetTheirOwnFrameAndKeepCalleeSavedRegisters) {
    const Interpreter interp = make(
        "mov %r6, 6\n"
        "stdw [%r10-8], 100\n"
        "mov %r1, %r10\n"
        "call local f\n"
        "ldxdw %r2, [%r10-8]\n"  // the callee wrote into its own frame, not ours
        "add %r0, %r2\n"
        "add %r0, %r6\n"  // r6 restored after the call
        "exit\n"
        "f:\n"
        "stdw [%r10-8], 1\n"
        "ldxdw %r0, [%r1-8]\n"  // the caller's slot, through a pointer
        "mov %r6, 999\n"
        "exit\n");
    for (Mode mode : {Mode::Checked, Mode::Fast}) {
        EXPECT_EQ(interp.run_buffer({}, {mode, 0}).r0, 100u + 100u + 6u);
    }
}

TEST(Interpreter, EveryFrameStartsZeroedSoRunsDoNotSeeEachOther) {
    // Reads a slot before writing it, in the main frame and in a callee's frame.
    const Interpreter interp = make(
        "ldxdw %r0, [%r10-8]\n"
        "stdw [%r10-8], 0x1234\n"
        "call local f\n"
        "exit\n"
        "f:\n"
        "ldxdw %r1, [%r10-16]\n"
        "stdw [%r10-16], 0x77\n"
        "add %r0, %r1\n"
        "exit\n");
    for (int round = 0; round < 3; ++round) {
        for (Mode mode : {Mode::Checked, Mode::Fast}) {
            EXPECT_EQ(interp.run_buffer({}, {mode, 0}).r0, 0u) << "round " << round;
        }
    }
}

TEST(Interpreter, CallDepthIsLimitedTo8Frames) {
    // Each level calls the next; 7 nested calls fit (8 frames), the 8th traps.
    std::string text;
    for (int i = 0; i < 8; ++i) {
        text += "f" + std::to_string(i) + ": call local f" + std::to_string(i + 1) + "\nexit\n";
    }
    text += "f8: mov %r0, 1\nexit\n";
    const RunResult deep = checked(make(text));
    ASSERT_FALSE(deep.ok());
    EXPECT_EQ(deep.trap->kind, TrapKind::CallDepthExceeded);
    EXPECT_EQ(deep.trap->pc, 14u);

    std::string fits;
    for (int i = 0; i < 7; ++i) {
        fits += "f" + std::to_string(i) + ": call local f" + std::to_string(i + 1) + "\nexit\n";
    }
    fits += "f7: mov %r0, 1\nexit\n";
    EXPECT_EQ(checked(make(fits)).r0, 1u);
}

TEST(Interpreter, RecursionEndsInATrapNotACrash) {
    const RunResult r = checked(make("f: call local f\nexit"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, TrapKind::CallDepthExceeded);
}

TEST(Interpreter, MisalignedAtomicsTrapInCheckedMode) {
    const RunResult r = checked(make("stdw [%r10-16], 0\nmov %r1, 1\nlock add [%r10-12], %r1\nexit"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, TrapKind::Misaligned);
    EXPECT_EQ(r.trap->pc, 2u);
}

TEST(Interpreter, LegacyPacketLoadsReadBigEndianAndEndTheProgramWhenOutOfRange) {
    const Interpreter interp = make("mov %r6, %r1\nmov %r2, 1\nldindh %r2, 1\nexit");
    std::array<uint8_t, 4> pkt{0x00, 0x00, 0x12, 0x34};
    EXPECT_EQ(checked(interp, pkt).r0, 0x1234u);
    const Interpreter abs = make("ldabsw 1\nmov %r0, 7\nexit");  // bytes 1..4 of a 4-byte packet
    const RunResult r = checked(abs, pkt);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.r0, 0u);
}

TEST(Interpreter, UnresolvedMapLoadsAreRefusedAtCreation) {
    Expected<Program> p = Program::from_raw(*assemble("lddw %r1, 3, 1\nmov %r0, 0\nexit"));
    ASSERT_TRUE(p);
    Expected<Interpreter> i = Interpreter::create(*p, {});
    ASSERT_FALSE(i);
    EXPECT_EQ(i.error().message(), "pc 0: lddw with src 1 refers to a map or variable that no loader resolved");
}

uint64_t call_twice(uint64_t fn, uint64_t arg, uint64_t, uint64_t, uint64_t, CallContext* ctx) {
    const uint64_t a = ctx->invoke(ctx, fn, arg, 0, 0, 0, 0);
    if (ctx->fault != nullptr) {
        return 0;
    }
    return a + ctx->invoke(ctx, fn, arg, 0, 0, 0, 0);
}

TEST(Interpreter, HelpersRunCallbacksAndCallbackTrapsKeepTheirPc) {
    HelperTable helpers;
    ASSERT_TRUE(helpers.add(100, "call_twice", call_twice, test::kTakesAFunction));
    const std::string prologue = "lddw %r1, 4, 4\nmov %r2, 20\ncall 100\nexit\n";  // f is at pc 5
    const Interpreter ok = make(prologue + "f: mov %r0, %r1\nadd %r0, 1\nexit\n", helpers);
    for (Mode mode : {Mode::Checked, Mode::Fast}) {
        EXPECT_EQ(ok.run_buffer({}, {mode, 0}).r0, 42u);
    }
    const Interpreter bad = make(prologue + "f: ldxdw %r0, [%r1]\nexit\n", helpers);
    const RunResult r = checked(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.trap->kind, TrapKind::OutOfBounds);
    EXPECT_EQ(r.trap->pc, 5u);
    const Interpreter forged = make("mov %r1, 5\ncall 100\nexit\n", helpers);
    EXPECT_EQ(checked(forged).trap->message(),
              "pc 1: helper call_twice: the callback argument is not one of the program's functions");
    const Interpreter looping = make(prologue + "f: ja f\n", helpers);
    EXPECT_EQ(checked(looping, {}, 500).trap->kind, TrapKind::BudgetExhausted);  // the budget covers callbacks
}

TEST(HelperTable, RefusesDuplicateIdsAndNullFunctions) {
    HelperTable t;
    ASSERT_TRUE(t.add(1, "a", add_all));
    EXPECT_EQ(t.add(1, "b", add_all).error().message(), "helper 1: id already registered as 'a', cannot add 'b'");
    EXPECT_EQ(t.add(2, "c", nullptr).error().message(), "helper 2: no function given for 'c'");
    EXPECT_EQ(t.find(1)->name, "a");
    EXPECT_EQ(t.find(2), nullptr);
}

TEST(HelperTable, CopiesShareTheHelpersButAddingToOneLeavesTheOthersAsTheyWere) {
    HelperTable a;
    ASSERT_TRUE(a.add(3, "three", add_all));
    ASSERT_TRUE(a.add(1, "one", add_all));
    const HelperTable b = a;
    EXPECT_EQ(&b.all(), &a.all());  // shared, not copied
    ASSERT_TRUE(a.add(2, "two", add_all));
    EXPECT_EQ(a.all().size(), 3u);
    EXPECT_EQ(a.all()[1].name, "two");  // still sorted by id
    EXPECT_EQ(b.all().size(), 2u);
    EXPECT_EQ(b.find(2), nullptr);
    EXPECT_EQ(b.find(3)->name, "three");
    EXPECT_TRUE(HelperTable{}.all().empty());
}

}  // namespace
}  // namespace bpfvm::vm
