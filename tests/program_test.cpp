// Whole-program validation: each rule gives one precise error naming the pc.
#include "bpfvm/vm/program.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "bpfvm/vm/assembler.hpp"
#include "bpfvm/vm/files.hpp"
#include "bpfvm/vm/flow.hpp"

namespace bpfvm::vm {
namespace {

std::string error_of(std::vector<RawInsn> raw) {
    Expected<Program> p = Program::from_raw(std::move(raw));
    return p ? "accepted" : p.error().message();
}

std::string error_of_asm(std::string_view text) {
    Expected<std::vector<RawInsn>> raw = assemble(text);
    if (!raw) {
        return "asm: " + raw.error().message();
    }
    return error_of(*raw);
}

constexpr RawInsn kExit{0x95, 0, 0, 0, 0};

TEST(Program, AcceptsAMinimalProgram) {
    Expected<Program> p = Program::from_raw({{0xb7, 0, 0, 0, 7}, kExit});
    ASSERT_TRUE(p) << p.error().message();
    EXPECT_EQ(p->size(), 2u);
    EXPECT_EQ((*p)[0].op, Op::Mov64Imm);
    EXPECT_EQ(p->functions(), std::vector<uint32_t>{0});
}

TEST(Program, RejectsEmptyAndMisSizedBytecode) {
    EXPECT_EQ(Program::from_bytes({}).error().message(), "empty program");
    const std::vector<uint8_t> twelve(12, 0);
    EXPECT_EQ(Program::from_bytes(twelve).error().message(),
              "program is 12 bytes, not a multiple of the 8-byte instruction size");
}

TEST(Program, RejectsUnknownOpcodes) {
    EXPECT_EQ(error_of({{0x00, 0, 0, 0, 0}, kExit}), "pc 0: unknown opcode 0x00");
    EXPECT_EQ(error_of({kExit, {0xff, 0, 0, 0, 0}}), "pc 1: unknown opcode 0xff");
    EXPECT_EQ(error_of({{0x8c, 1, 0, 0, 0}, kExit}), "pc 0: unknown opcode 0x8c");  // neg has no X form
}

TEST(Program, RejectsIllegalSelectorValues) {
    EXPECT_EQ(error_of({{0x34, 1, 0, 2, 3}, kExit}),
              "pc 0: opcode 0x34 with offset 2: offset must be 0 (div32) or 1 (sdiv32)");
    EXPECT_EQ(error_of({{0xd4, 1, 0, 0, 8}, kExit}),
              "pc 0: opcode 0xd4 with imm 8: imm must be 16 (le16), 32 (le32) or 64 (le64)");
    EXPECT_EQ(error_of({{0xdb, 1, 2, 0, 0x02}, kExit}).substr(0, 45), "pc 0: opcode 0xdb with imm 2: imm must be 0 (");
    EXPECT_EQ(error_of({{0x85, 0, 3, 0, 1}, kExit}),
              "pc 0: opcode 0x85 with src 3: src must be 0 (call), 1 (call) or 2 (call)");
}

TEST(Program, RejectsNonZeroReservedFields) {
    EXPECT_EQ(error_of({{0x07, 1, 2, 0, 5}, kExit}), "pc 0: add: reserved src field must be 0, is 2");
    EXPECT_EQ(error_of({{0x0f, 1, 2, 4, 0}, kExit}), "pc 0: add: reserved offset field must be 0, is 4");
    EXPECT_EQ(error_of({{0x0f, 1, 2, 0, 9}, kExit}), "pc 0: add: reserved imm field must be 0, is 9");
    EXPECT_EQ(error_of({{0x95, 1, 0, 0, 0}}), "pc 0: exit: reserved dst field must be 0, is 1");
    EXPECT_EQ(error_of({{0x05, 0, 0, 0, 3}, kExit}), "pc 0: ja: reserved imm field must be 0, is 3");
}

TEST(Program, RejectsRegistersOutOfRange) {
    EXPECT_EQ(error_of({{0xb7, 11, 0, 0, 0}, kExit}), "pc 0: mov: dst register r11 does not exist (r0-r10)");
    EXPECT_EQ(error_of({{0xbf, 1, 12, 0, 0}, kExit}), "pc 0: mov: src register r12 does not exist (r0-r10)");
}

TEST(Program, RejectsWritesToR10) {
    EXPECT_EQ(error_of({{0x07, 10, 0, 0, 8}, kExit}), "pc 0: add: r10 is read-only");
    EXPECT_EQ(error_of({{0x79, 10, 1, 0, 0}, kExit}), "pc 0: ldxdw: r10 is read-only");
    EXPECT_EQ(error_of({{0xdb, 1, 10, 0, 0x01}, kExit}),
              "pc 0: lock fetch add: r10 is read-only (the fetched value would be written to it)");
    // r10 as a base register is fine.
    EXPECT_EQ(error_of({{0x7a, 10, 0, -8, 1}, kExit}), "accepted");
}

TEST(Program, RejectsBrokenLddw) {
    EXPECT_EQ(error_of({kExit, {0x18, 1, 0, 0, 1}}), "pc 1: lddw needs a second slot, but the program ends");
    EXPECT_EQ(error_of({{0x18, 1, 0, 0, 1}, {0x95, 0, 0, 0, 0}, kExit}),
              "pc 1: second slot of the lddw at pc 0 must have opcode, registers and offset 0");
    EXPECT_EQ(error_of({{0x18, 1, 0, 0, 1}, {0, 0, 0, 0, 2}, kExit}), "accepted");
}

TEST(Program, RejectsJumpsOutOfTheProgramOrIntoLddw) {
    EXPECT_EQ(error_of({{0x05, 0, 0, 5, 0}, kExit}), "pc 0: jump target pc 6 is outside the program (pc 0..1)");
    EXPECT_EQ(error_of({{0x05, 0, 0, -2, 0}, kExit}), "pc 0: jump target pc -1 is outside the program (pc 0..1)");
    EXPECT_EQ(error_of_asm("ja +1\nlddw %r0, 1\nexit"),
              "pc 0: jump target pc 2 is the second slot of the lddw at pc 1");
    EXPECT_EQ(error_of_asm("jeq %r1, 0, +1\nlddw %r0, 1\nexit"),
              "pc 0: jump target pc 2 is the second slot of the lddw at pc 1");
}

TEST(Program, RejectsLocalCallsToNonInstructions) {
    EXPECT_EQ(error_of_asm("call local +5\nexit"), "pc 0: call target pc 6 is outside the program (pc 0..1)");
    EXPECT_EQ(error_of_asm("call local +2\nexit\nlddw %r0, 1\nexit"),
              "pc 0: call target pc 3 is the second slot of the lddw at pc 2");
}

TEST(Program, RejectsFallingOffTheEnd) {
    EXPECT_EQ(error_of({{0xb7, 0, 0, 0, 0}}),
              "pc 0: the program can fall off its end (last instruction is mov, not exit or ja)");
    EXPECT_EQ(error_of_asm("jeq %r1, 0, +1\nexit\nmov %r0, 1"),
              "pc 2: the program can fall off its end (last instruction is mov, not exit or ja)");
    EXPECT_EQ(error_of_asm("mov %r0, 0\nja -2"), "accepted");  // a loop; termination is not validation's job
}

TEST(Program, KeepsControlInsideFunctions) {
    EXPECT_EQ(error_of_asm("call local f\nexit\nf:\nmov %r0, 1\nja -4\n"),
              "pc 3: jump target pc 0 is in another function (this one spans pc 2..3)");
    EXPECT_EQ(error_of_asm("call local f\nmov %r0, 1\nf:\nexit\n"),
              "pc 1: control can fall through into the function at pc 2");
    Expected<Program> p = Program::from_raw(*assemble("call local f\nexit\nf:\nmov %r0, 1\nexit\n"));
    ASSERT_TRUE(p) << p.error().message();
    EXPECT_EQ(p->functions(), (std::vector<uint32_t>{0, 2}));
}

uint32_t frame_bytes_of(std::string_view text) {
    Expected<std::vector<RawInsn>> raw = assemble(text);
    EXPECT_TRUE(raw) << raw.error().message();
    Expected<Program> p = Program::from_raw(*raw);
    EXPECT_TRUE(p) << p.error().message();
    return frame_bytes_used(*p);
}

TEST(Program, FrameBytesUsedIsTheDeepestConstantOffsetWhileR10StaysABase) {
    EXPECT_EQ(frame_bytes_of("mov %r0, 0\nexit"), 0u);
    EXPECT_EQ(frame_bytes_of("stdw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit"), 32u);
    EXPECT_EQ(frame_bytes_of("stb [%r10-33], 1\nmov %r0, 0\nexit"), 64u);
    EXPECT_EQ(frame_bytes_of("mov %r1, 1\nlock add [%r10-96], %r1\nmov %r0, 0\nexit"), 96u);
    EXPECT_EQ(frame_bytes_of("call local f\nexit\nf: stw [%r10-100], 1\nmov %r0, 0\nexit"), 128u);
    // deeper than a frame: the whole frame (the access itself traps in checked runs)
    EXPECT_EQ(frame_bytes_of("ldxdw %r0, [%r10-600]\nexit"), kStackFrameBytes);
}

TEST(Program, FrameBytesUsedIsTheWholeFrameOnceR10IsAValue) {
    for (const char* text : {
             "mov %r1, %r10\nmov %r0, 0\nexit",                        // copied
             "add %r0, %r10\nexit",                                     // in arithmetic
             "stxdw [%r10-8], %r10\nmov %r0, 0\nexit",                 // stored
             "mov %r1, 1\nlock add [%r1+0], %r10\nmov %r0, 0\nexit",  // added to memory
             "jeq %r10, 0, +0\nmov %r0, 0\nexit",                      // compared
             "jgt %r1, %r10, +0\nmov %r0, 0\nexit",
             "ldxdw %r0, [%r10+0]\nexit",  // at or above r10: a caller's frame in checked runs
             "ldxw %r0, [%r10-2]\nexit",
         }) {
        EXPECT_EQ(frame_bytes_of(text), kStackFrameBytes) << text;
    }
}

TEST(Program, PacksAndUnpacksLittleEndianSlots) {
    const RawInsn insn{0x18, 3, 1, -2, static_cast<int32_t>(0x89abcdef)};
    uint8_t bytes[8];
    pack(insn, bytes);
    const uint8_t expected[8] = {0x18, 0x13, 0xfe, 0xff, 0xef, 0xcd, 0xab, 0x89};
    EXPECT_EQ(0, std::memcmp(bytes, expected, 8));
    EXPECT_EQ(unpack(bytes), insn);
    EXPECT_EQ(to_u64(insn), 0x89abcdeffffe1318ull);
    EXPECT_EQ(from_u64(0x89abcdeffffe1318ull), insn);
}

}  // namespace
}  // namespace bpfvm::vm

namespace bpfvm::vm {
namespace {

TEST(Files, ReadFileReadsWholeFilesEvenWhenStatKnowsNoSize) {
    const std::string path = testing::TempDir() + "/bpfvm_read_file_test.bin";
    std::string big(200'000, 'x');
    big[199'999] = 'y';
    {
        std::FILE* f = std::fopen(path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        std::fwrite(big.data(), 1, big.size(), f);
        std::fclose(f);
    }
    Expected<std::vector<uint8_t>> bytes = read_file(path);
    ASSERT_TRUE(bytes) << bytes.error().message();
    EXPECT_EQ(std::string(bytes->begin(), bytes->end()), big);
    std::remove(path.c_str());

    Expected<std::vector<uint8_t>> proc = read_file("/proc/self/status");  // (stat says 0 bytes)
    ASSERT_TRUE(proc) << proc.error().message();
    EXPECT_NE(std::string(proc->begin(), proc->end()).find("Name:"), std::string::npos);

    EXPECT_EQ(read_file("/nonexistent/x").error().message(),
              "/nonexistent/x: cannot read: No such file or directory");
    EXPECT_EQ(read_file("/tmp").error().message(), "/tmp: is a folder, not a file");
}

}  // namespace
}  // namespace bpfvm::vm
