// Assembler and disassembler for the conformance dialect (and the llvm-objdump syntax, output
// only). The instruction forms come from the opcode table.
//
// Dialect (as the bpf_conformance files write it), one instruction or label per line:
//   mov %r0, 1          add32 %r1, %r2        neg %r3          be16 %r1
//   ldxw %r0, [%r1+4]   stdw [%r10-8], 7      stxb [%r1], %r2  lddw %r0, 0x1122334455667788
//   lock fetch add32 [%r10-8], %r1            lock cmpxchg [%r10-8], %r1
//   ja +2   jeq %r1, 0x10, L1   ja32 -1   call 5   call local func1   call %r2   call runtime 7
//   ldabsw 12   ldindh %r2, 4   exit   call runtime ID[, BTF_OBJECT_INDEX]
// Labels end in ':'; `exit` also names the first exit instruction unless defined. Comments
// start with '#'. Extension: `lddw %rN, IMM, SRC` writes a pseudo lddw (src 1-6).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/program.hpp"

namespace bpfvm::vm {

// Assembles text into instruction slots. Errors name `source`:line:column. The result is
// encoded but not validated as a program (negative tests assemble invalid programs on purpose);
// call Program::from_raw to validate.
Expected<std::vector<RawInsn>> assemble(std::string_view text, std::string_view source = "<input>");

enum class Syntax : uint8_t {
    Conformance,  // the dialect above; the output assembles back to the same bytes
    Llvm,         // llvm-objdump -d's C-like text: "r0 = *(u32 *)(r1 + 0x4)"
};

// One instruction (pc is used for nothing but symbolic output).
std::string format_instruction(const Instruction& insn, Syntax syntax);

// A whole program, one instruction per line. With Syntax::Llvm each line is
// "<pc>:\t<hex bytes>\t<text>" like llvm-objdump -d; with Syntax::Conformance it is plain text
// that assembles back to the same bytes.
std::string disassemble(const Program& program, Syntax syntax);

// Text a caller adds around instructions: lines printed before the instruction at a pc (source
// lines, labels) and a comment after it (what a map reference names). Indexed by pc; missing or
// empty entries add nothing.
struct Annotations {
    std::vector<std::string> before;
    std::vector<std::string> comment;
};
std::string disassemble(const Program& program, Syntax syntax, const Annotations& annotations);

}  // namespace bpfvm::vm
