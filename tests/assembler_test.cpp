// Assembler: the conformance dialect, round trips through the disassembler, and errors at
// line:column.
#include "bpfvm/vm/assembler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "bpfvm/vm/conformance_file.hpp"
#include "test_support.hpp"

namespace bpfvm::vm {
namespace {

std::vector<RawInsn> asm_ok(std::string_view text) {
    Expected<std::vector<RawInsn>> r = assemble(text);
    EXPECT_TRUE(r) << r.error().message();
    return r ? *r : std::vector<RawInsn>{};
}

std::string asm_error(std::string_view text) {
    Expected<std::vector<RawInsn>> r = assemble(text, "t.s");
    return r ? "assembled" : r.error().message();
}

TEST(Assembler, EncodesEachOperandForm) {
    EXPECT_EQ(asm_ok("mov %r0, -1")[0], (RawInsn{0xb7, 0, 0, 0, -1}));
    EXPECT_EQ(asm_ok("add32 %r1, %r2")[0], (RawInsn{0x0c, 1, 2, 0, 0}));
    EXPECT_EQ(asm_ok("mov32 %r1, 0xffffffff")[0], (RawInsn{0xb4, 1, 0, 0, -1}));
    EXPECT_EQ(asm_ok("sdiv %r1, %r2")[0], (RawInsn{0x3f, 1, 2, 1, 0}));
    EXPECT_EQ(asm_ok("smod32 %r1, 3")[0], (RawInsn{0x94, 1, 0, 1, 3}));
    EXPECT_EQ(asm_ok("movsx1664 %r1, %r2")[0], (RawInsn{0xbf, 1, 2, 16, 0}));
    EXPECT_EQ(asm_ok("neg32 %r4")[0], (RawInsn{0x84, 4, 0, 0, 0}));
    EXPECT_EQ(asm_ok("be16 %r1")[0], (RawInsn{0xdc, 1, 0, 0, 16}));
    EXPECT_EQ(asm_ok("bswap64 %r1")[0], (RawInsn{0xd7, 1, 0, 0, 64}));
    EXPECT_EQ(asm_ok("ldxh %r0, [%r1+6]")[0], (RawInsn{0x69, 0, 1, 6, 0}));
    EXPECT_EQ(asm_ok("ldxsb %r0, [%r1-0x2]")[0], (RawInsn{0x91, 0, 1, -2, 0}));
    EXPECT_EQ(asm_ok("ldxdw %r0, [%r1+0xfffe]")[0], (RawInsn{0x79, 0, 1, -2, 0}));
    EXPECT_EQ(asm_ok("stw [%r10-8], 0x11223344")[0], (RawInsn{0x62, 10, 0, -8, 0x11223344}));
    EXPECT_EQ(asm_ok("stxb [%r1], %r2")[0], (RawInsn{0x73, 1, 2, 0, 0}));
    EXPECT_EQ(asm_ok("lock fetch xor32 [%r10-4], %r3")[0], (RawInsn{0xc3, 10, 3, -4, 0xa1}));
    EXPECT_EQ(asm_ok("lock cmpxchg [%r10-8], %r1")[0], (RawInsn{0xdb, 10, 1, -8, 0xf1}));
    EXPECT_EQ(asm_ok("ldabsh 12")[0], (RawInsn{0x28, 0, 0, 0, 12}));
    EXPECT_EQ(asm_ok("ldindb %r3, 2")[0], (RawInsn{0x50, 0, 3, 0, 2}));
    EXPECT_EQ(asm_ok("call 5")[0], (RawInsn{0x85, 0, 0, 0, 5}));
    EXPECT_EQ(asm_ok("call %r2")[0], (RawInsn{0x8d, 2, 0, 0, 0}));
    EXPECT_EQ(asm_ok("call runtime 77")[0], (RawInsn{0x85, 0, 2, 0, 77}));
    EXPECT_EQ(asm_ok("exit")[0], (RawInsn{0x95, 0, 0, 0, 0}));
    const std::vector<RawInsn> lddw = asm_ok("lddw %r3, 0x1122334455667788");
    ASSERT_EQ(lddw.size(), 2u);
    EXPECT_EQ(lddw[0], (RawInsn{0x18, 3, 0, 0, 0x55667788}));
    EXPECT_EQ(lddw[1], (RawInsn{0, 0, 0, 0, 0x11223344}));
    EXPECT_EQ(asm_ok("lddw %r1, 7, 1")[0], (RawInsn{0x18, 1, 1, 0, 7}));
}

TEST(Assembler, ResolvesLabelsAndRelativeOffsets) {
    const std::vector<RawInsn> r = asm_ok(
        "  jeq %r1, 0, done\n"
        "  lddw %r0, 1\n"
        "  ja32 done\n"
        "loop: add %r0, 1\n"
        "  jne32 %r0, %r2, loop  # back edge\n"
        "done:\n"
        "  call local f\n"
        "  ja +0\n"
        "  exit\n"
        "f: exit\n");
    ASSERT_EQ(r.size(), 10u);
    EXPECT_EQ(r[0].off, 5);   // to done (slot 6) from slot 0
    EXPECT_EQ(r[3].imm, 2);   // ja32 at slot 3 -> 6
    EXPECT_EQ(r[5].off, -2);  // jne32 at slot 5 -> loop (slot 4)
    EXPECT_EQ(r[6].imm, 2);   // call local at 6 -> f (slot 9)
    EXPECT_EQ(r[6].src, 1);
    EXPECT_EQ(asm_ok("jeq %r1, 0, exit\nmov %r0, 1\nexit")[0].off, 1);  // implicit label 'exit'
}

TEST(Assembler, ReportsErrorsAtLineAndColumn) {
    EXPECT_EQ(asm_error("mov %r0, 1\n  frob %r1\n"), "t.s:2:3: unknown instruction 'frob'");
    EXPECT_EQ(asm_error("mov %x0, 1"), "t.s:1:5: expected a register %r0..%r10, got '%x0'");
    EXPECT_EQ(asm_error("mov %r0, 0x100000000"), "t.s:1:10: immediate 0x100000000 does not fit in 32 bits");
    EXPECT_EQ(asm_error("mov %r0, -2147483649"), "t.s:1:10: immediate -2147483649 does not fit in 32 bits");
    EXPECT_EQ(asm_error("mov %r0"), "t.s:1:8: 'mov' needs 2 operands, got 1");
    EXPECT_EQ(asm_error("exit %r0"), "t.s:1:6: unexpected operand '%r0'");
    EXPECT_EQ(asm_error("ja nowhere"), "t.s:1:4: undefined label 'nowhere'");
    EXPECT_EQ(asm_error("a:\na:\nexit"), "t.s:2:1: label 'a' is defined twice");
    EXPECT_EQ(asm_error("ldxw %r0, [%r1+70000]"), "t.s:1:11: offset in '[%r1+70000]' does not fit in 16 bits");
    EXPECT_EQ(asm_error("ldxw %r0, %r1"), "t.s:1:11: expected a memory operand like [%r1+8], got '%r1'");
    EXPECT_EQ(asm_error("ja +40000"), "t.s:1:4: jump offset 40000 does not fit in 16 bits (use ja32)");
    EXPECT_EQ(asm_error("neg %r1, %r2"), "t.s:1:10: unexpected operand '%r2'");
    EXPECT_EQ(asm_error("lddw %r1, 1, 9"), "t.s:1:14: lddw source kind must be 0..6, got '9'");
    EXPECT_EQ(asm_error("call"), "t.s:1:5: 'call' needs a helper id, 'local TARGET', 'runtime ID' or a register");
    EXPECT_EQ(asm_error("lock frob [%r1], %r2"), "t.s:1:1: unknown instruction 'lock frob'");
}

// Every conformance program assembles, disassembles to the dialect, and assembles back to the
// same bytes.
TEST(Assembler, RoundTripsEveryConformanceProgram) {
    namespace fs = std::filesystem;
    unsigned files = 0;
    for (const auto& entry : fs::directory_iterator(BPFVM_CONFORMANCE_DIR)) {
        if (entry.path().extension() != ".data") {
            continue;
        }
        const std::string text = test::read_file(entry.path().string());
        Expected<ConformanceTest> t = parse_conformance(text, entry.path().filename().string());
        ASSERT_TRUE(t) << t.error().message();
        Expected<std::vector<RawInsn>> raw = t->instructions();
        ASSERT_TRUE(raw) << raw.error().message();
        Expected<Program> p = Program::from_raw(*raw);
        ASSERT_TRUE(p) << p.error().message();
        const std::string listing = disassemble(*p, Syntax::Conformance);
        Expected<std::vector<RawInsn>> again = assemble(listing, entry.path().filename().string());
        ASSERT_TRUE(again) << again.error().message() << "\n" << listing;
        EXPECT_EQ(*again, *raw) << entry.path() << "\n" << listing;
        ++files;
    }
    EXPECT_EQ(files, 313u);
}

// Every row of the opcode table survives disassemble -> assemble.
TEST(Assembler, RoundTripsEveryTableRow) {
    for (const OpInfo& row : kOpTable) {
        RawInsn raw{row.opcode, 0, 0, 0, 0};
        const FormFields f = fields_of(row.form);
        raw.dst = f.uses_dst ? 3 : 0;
        raw.src = f.uses_src ? 4 : 0;
        raw.off = f.uses_off ? -5 : 0;
        raw.imm = f.uses_imm ? 6 : 0;
        if (row.form == Form::Jump || row.form == Form::CondImm || row.form == Form::CondReg) {
            raw.off = 1;
        }
        raw = with_selector(raw, row);
        if (row.form == Form::CallLocal || row.form == Form::Jump32) {
            raw.imm = 1;  // a valid target: the first exit after the instruction
        }
        if (row.op == Op::LddwCodeAddr) {
            raw.imm = 2;  // the second exit: a function of its own
        }
        std::vector<RawInsn> prog{raw};
        if (row.form == Form::LoadImm64) {
            prog.push_back(RawInsn{0, 0, 0, 0, 9});
        }
        prog.push_back(RawInsn{0x95, 0, 0, 0, 0});
        prog.push_back(RawInsn{0x95, 0, 0, 0, 0});
        Expected<Program> p = Program::from_raw(prog);
        ASSERT_TRUE(p) << row.name << ": " << p.error().message();
        const std::string listing = disassemble(*p, Syntax::Conformance);
        Expected<std::vector<RawInsn>> again = assemble(listing);
        ASSERT_TRUE(again) << row.name << ": " << again.error().message() << "\n" << listing;
        EXPECT_EQ(*again, prog) << row.name << "\n" << listing;
    }
}

}  // namespace
}  // namespace bpfvm::vm
