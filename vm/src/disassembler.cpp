#include <cstdio>

#include "bpfvm/vm/assembler.hpp"
#include "strings.hpp"

namespace bpfvm::vm {

namespace {

std::string reg(unsigned r) {
    return "%r" + std::to_string(r);
}

std::string signed_rel(int64_t v) {
    return (v < 0 ? "" : "+") + std::to_string(v);
}

std::string mem_operand(unsigned base, int16_t off) {
    if (off == 0) {
        return "[" + reg(base) + "]";
    }
    return "[" + reg(base) + (off < 0 ? "-" : "+") + std::to_string(off < 0 ? -int32_t(off) : int32_t(off)) + "]";
}

std::string conformance(const Instruction& insn) {
    const OpInfo& row = insn.info();
    const std::string m(row.mnemonic);
    switch (row.form) {
        case Form::AluImm:
            return m + " " + reg(insn.dst) + ", " + std::to_string(insn.imm);
        case Form::AluReg:
            return m + " " + reg(insn.dst) + ", " + reg(insn.src);
        case Form::AluUnary:
        case Form::Endian:
            return m + " " + reg(insn.dst);
        case Form::LoadMem:
            return m + " " + reg(insn.dst) + ", " + mem_operand(insn.src, insn.off);
        case Form::StoreImm:
            return m + " " + mem_operand(insn.dst, insn.off) + ", " + std::to_string(insn.imm);
        case Form::StoreReg:
        case Form::Atomic:
            return m + " " + mem_operand(insn.dst, insn.off) + ", " + reg(insn.src);
        case Form::LoadImm64:
            return m + " " + reg(insn.dst) + ", " + hex(insn.imm64()) +
                   (insn.src != 0 ? ", " + std::to_string(insn.src) : "");
        case Form::LoadAbs:
            return m + " " + std::to_string(insn.imm);
        case Form::LoadInd:
            return m + " " + reg(insn.src) + ", " + std::to_string(insn.imm);
        case Form::Jump:
            return m + " " + signed_rel(insn.off);
        case Form::Jump32:
            return m + " " + signed_rel(insn.imm);
        case Form::CondImm:
            return m + " " + reg(insn.dst) + ", " + std::to_string(insn.imm) + ", " + signed_rel(insn.off);
        case Form::CondReg:
            return m + " " + reg(insn.dst) + ", " + reg(insn.src) + ", " + signed_rel(insn.off);
        case Form::Call:
            return "call " + std::to_string(insn.imm);
        case Form::CallLocal:
            return "call local " + signed_rel(insn.imm);
        case Form::CallBtf:
            return "call runtime " + std::to_string(insn.imm) + (insn.off != 0 ? ", " + std::to_string(insn.off) : "");
        case Form::Callx:
            return "call " + reg(insn.dst);
        case Form::Exit:
            return "exit";
    }
    return "?";
}

// llvm-objdump prints immediates as hex with a sign: 0x7, -0x7.
std::string shex(int64_t v) {
    return v < 0 ? "-" + hex(0 - static_cast<uint64_t>(v)) : hex(static_cast<uint64_t>(v));
}
std::string rel_hex(int64_t v) {
    return (v < 0 ? "-" : "+") + hex(v < 0 ? 0 - static_cast<uint64_t>(v) : uint64_t(v));
}

std::string llvm_reg(unsigned r, bool w) {
    return (w ? "w" : "r") + std::to_string(r);
}

std::string llvm_mem(const char* type, unsigned base, int16_t off) {
    return std::string("*(") + type + " *)(r" + std::to_string(base) + (off < 0 ? " - " : " + ") +
           hex(off < 0 ? uint64_t(-int32_t(off)) : uint64_t(off)) + ")";
}

const char* utype(unsigned width) {
    switch (width) {
        case 1:
            return "u8";
        case 2:
            return "u16";
        case 4:
            return "u32";
        default:
            return "u64";
    }
}
const char* stype(unsigned width) {
    switch (width) {
        case 1:
            return "s8";
        case 2:
            return "s16";
        default:
            return "s32";
    }
}

const char* alu_operator(Sem sem) {
    switch (sem) {
        case Sem::Add:
            return "+=";
        case Sem::Sub:
            return "-=";
        case Sem::Mul:
            return "*=";
        case Sem::Div:
            return "/=";
        case Sem::Sdiv:
            return "s/=";
        case Sem::Or:
            return "|=";
        case Sem::And:
            return "&=";
        case Sem::Lsh:
            return "<<=";
        case Sem::Rsh:
            return ">>=";
        case Sem::Mod:
            return "%=";
        case Sem::Smod:
            return "s%=";
        case Sem::Xor:
            return "^=";
        case Sem::Mov:
        case Sem::Movsx:
            return "=";
        case Sem::Arsh:
            return "s>>=";
        case Sem::AtomicAdd:
            return "+=";
        case Sem::AtomicOr:
            return "|=";
        case Sem::AtomicAnd:
            return "&=";
        case Sem::AtomicXor:
            return "^=";
        case Sem::Jeq:
            return "==";
        case Sem::Jgt:
            return ">";
        case Sem::Jge:
            return ">=";
        case Sem::Jset:
            return "&";
        case Sem::Jne:
            return "!=";
        case Sem::Jsgt:
            return "s>";
        case Sem::Jsge:
            return "s>=";
        case Sem::Jlt:
            return "<";
        case Sem::Jle:
            return "<=";
        case Sem::Jslt:
            return "s<";
        case Sem::Jsle:
            return "s<=";
        case Sem::AtomicFetchAdd:
            return "add";
        case Sem::AtomicFetchOr:
            return "or";
        case Sem::AtomicFetchAnd:
            return "and";
        case Sem::AtomicFetchXor:
            return "xor";
        case Sem::Neg:
        case Sem::Le:
        case Sem::Be:
        case Sem::Bswap:
        case Sem::Lddw:
        case Sem::LdAbs:
        case Sem::LdInd:
        case Sem::Ldx:
        case Sem::Ldxs:
        case Sem::St:
        case Sem::Stx:
        case Sem::AtomicXchg:
        case Sem::AtomicCmpxchg:
        case Sem::Ja:
        case Sem::Call:
        case Sem::CallLocal:
        case Sem::CallBtf:
        case Sem::Callx:
        case Sem::Exit:
            break;
    }
    return "?";
}

std::string llvm(const Instruction& insn) {
    const OpInfo& row = insn.info();
    const bool w = row.width == 4;
    const std::string op = alu_operator(row.sem);
    switch (row.form) {
        case Form::AluImm:
            return llvm_reg(insn.dst, w) + " " + op + " " + shex(insn.imm);
        case Form::AluReg:
            if (row.sem == Sem::Movsx) {
                return llvm_reg(insn.dst, w) + " = (s" + std::to_string(insn.off) + ")" + llvm_reg(insn.src, w);
            }
            return llvm_reg(insn.dst, w) + " " + op + " " + llvm_reg(insn.src, w);
        case Form::AluUnary:
            return llvm_reg(insn.dst, w) + " = -" + llvm_reg(insn.dst, w);
        case Form::Endian: {
            const char* name = row.sem == Sem::Le ? "le" : row.sem == Sem::Be ? "be" : "bswap";
            return llvm_reg(insn.dst, false) + " = " + name + std::to_string(insn.imm) + " " +
                   llvm_reg(insn.dst, false);
        }
        case Form::LoadMem:
            return llvm_reg(insn.dst, false) + " = " +
                   llvm_mem(row.sem == Sem::Ldxs ? stype(row.width) : utype(row.width), insn.src, insn.off);
        case Form::StoreImm:
            return llvm_mem(utype(row.width), insn.dst, insn.off) + " = " + shex(insn.imm);
        case Form::StoreReg:
            return llvm_mem(utype(row.width), insn.dst, insn.off) + " = " + llvm_reg(insn.src, false);
        case Form::Atomic: {
            const std::string addr = "r" + std::to_string(insn.dst) + (insn.off < 0 ? " - " : " + ") +
                                     hex(insn.off < 0 ? uint64_t(-int32_t(insn.off)) : uint64_t(insn.off));
            const std::string src = llvm_reg(insn.src, w);
            if (row.sem == Sem::AtomicXchg) {
                return src + (w ? " = xchg32_32(" : " = xchg_64(") + addr + ", " + src + ")";
            }
            if (row.sem == Sem::AtomicCmpxchg) {
                return llvm_reg(0, w) + (w ? " = cmpxchg32_32(" : " = cmpxchg_64(") + addr + ", " + llvm_reg(0, w) +
                       ", " + src + ")";
            }
            if (row.sem == Sem::AtomicFetchAdd || row.sem == Sem::AtomicFetchOr || row.sem == Sem::AtomicFetchAnd ||
                row.sem == Sem::AtomicFetchXor) {
                return src + " = atomic_fetch_" + op + "((" + utype(row.width) + " *)(" + addr + "), " + src + ")";
            }
            return "lock " + llvm_mem(utype(row.width), insn.dst, insn.off) + " " + op + " " + src;
        }
        case Form::LoadImm64:
            if (insn.src != 0) {
                return "ld_pseudo\t" + llvm_reg(insn.dst, false) + ", " + hex(insn.src) + ", " +
                       hex(static_cast<uint32_t>(insn.imm));
            }
            return llvm_reg(insn.dst, false) + " = " + shex(static_cast<int64_t>(insn.imm64())) + " ll";
        case Form::LoadAbs:
            return std::string("r0 = *(") + utype(row.width) + " *)skb[" + shex(insn.imm) + "]";
        case Form::LoadInd:
            return std::string("r0 = *(") + utype(row.width) + " *)skb[r" + std::to_string(insn.src) + "]";
        case Form::Jump:
            return "goto " + rel_hex(insn.off);
        case Form::Jump32:
            return "gotol " + rel_hex(insn.imm);
        case Form::CondImm:
            return "if " + llvm_reg(insn.dst, w) + " " + op + " " + shex(insn.imm) + " goto " + rel_hex(insn.off);
        case Form::CondReg:
            return "if " + llvm_reg(insn.dst, w) + " " + op + " " + llvm_reg(insn.src, w) + " goto " +
                   rel_hex(insn.off);
        case Form::Call:
        case Form::CallLocal:
        case Form::CallBtf:
            return "call " + shex(insn.imm);
        case Form::Callx:
            return "callx " + llvm_reg(insn.dst, false);
        case Form::Exit:
            return "exit";
    }
    return "?";
}

}  // namespace

std::string format_instruction(const Instruction& insn, Syntax syntax) {
    switch (syntax) {
        case Syntax::Conformance:
            return conformance(insn);
        case Syntax::Llvm:
            return llvm(insn);
    }
    return "?";
}

std::string disassemble(const Program& program, Syntax syntax) {
    return disassemble(program, syntax, Annotations{});
}

std::string disassemble(const Program& program, Syntax syntax, const Annotations& annotations) {
    std::string out;
    const std::vector<uint8_t> bytes = program.bytes();
    for (std::size_t pc = 0; pc < program.size(); pc += program[pc].slots()) {
        const Instruction& insn = program[pc];
        if (pc < annotations.before.size() && !annotations.before[pc].empty()) {
            out += annotations.before[pc];
            out += "\n";
        }
        if (syntax == Syntax::Llvm) {
            char head[32];
            std::snprintf(head, sizeof head, "%8zu:\t", pc);
            out += head;
            for (std::size_t i = 0; i < 8u * insn.slots(); ++i) {
                char b[4];
                std::snprintf(b, sizeof b, i == 0 ? "%02x" : " %02x", bytes[8 * pc + i]);
                out += b;
            }
            out += "\t";
        }
        out += format_instruction(insn, syntax);
        if (pc < annotations.comment.size() && !annotations.comment[pc].empty()) {
            out += syntax == Syntax::Llvm ? "\t; " : "  # ";
            out += annotations.comment[pc];
        }
        out += "\n";
    }
    return out;
}

}  // namespace bpfvm::vm
