// The opcode table against an independent transcription of RFC 9669, Appendix A (STYLE.md,
// habit 3). The transcription below is typed from the RFC's opcode list, one predicate per
// opcode byte saying which field values are legal; it does not read opcodes.def. Every one of
// the 256 opcode bytes is probed with a grid of field values and must be accepted or rejected
// exactly as the transcription says.
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "bpfvm/vm/program.hpp"

namespace bpfvm::vm {
namespace {

struct Fields {
    unsigned dst;
    unsigned src;
    int off;
    int imm;
};
using Rule = std::function<bool(const Fields&)>;

bool reg(unsigned r) {
    return r <= 10;
}
bool wreg(unsigned r) {
    return r <= 9;
}  // r10 is read-only

// RFC 9669 Appendix A, by opcode byte. Comments give the RFC's description.
std::map<int, Rule> transcription() {
    std::map<int, Rule> t;
    // ALU / ALU64 with immediate: src 0, offset 0 (offset 1 = signed div/mod).
    const Rule alu_k = [](const Fields& f) { return wreg(f.dst) && f.src == 0 && f.off == 0; };
    const Rule alu_x = [](const Fields& f) { return wreg(f.dst) && reg(f.src) && f.off == 0 && f.imm == 0; };
    const Rule alu_k_signed = [](const Fields& f) { return wreg(f.dst) && f.src == 0 && (f.off == 0 || f.off == 1); };
    const Rule alu_x_signed = [](const Fields& f) {
        return wreg(f.dst) && reg(f.src) && (f.off == 0 || f.off == 1) && f.imm == 0;
    };
    for (int cls : {0x04, 0x07}) {
        for (int op : {0x00, 0x10, 0x20, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0}) {
            t[cls | op] = alu_k;         // add sub mul or and lsh rsh xor mov arsh, K
            t[cls | op | 0x08] = alu_x;  // same, X
        }
        t[cls | 0x30] = alu_k_signed;  // div (off 0) / sdiv (off 1)
        t[cls | 0x38] = alu_x_signed;
        t[cls | 0x90] = alu_k_signed;  // mod (off 0) / smod (off 1)
        t[cls | 0x98] = alu_x_signed;
        t[cls | 0x80] = [](const Fields& f) { return wreg(f.dst) && f.src == 0 && f.off == 0 && f.imm == 0; };  // neg
    }
    // movsx: 0xbc offset 8/16 (to 32 bits), 0xbf offset 8/16/32 (to 64 bits).
    t[0xbc] = [](const Fields& f) {
        return wreg(f.dst) && reg(f.src) && f.imm == 0 && (f.off == 0 || f.off == 8 || f.off == 16);
    };
    t[0xbf] = [](const Fields& f) {
        return wreg(f.dst) && reg(f.src) && f.imm == 0 && (f.off == 0 || f.off == 8 || f.off == 16 || f.off == 32);
    };
    // Byte swaps: le (0xd4), be (0xdc), bswap (0xd7); imm = 16, 32 or 64.
    for (int op : {0xd4, 0xdc, 0xd7}) {
        t[op] = [](const Fields& f) {
            return wreg(f.dst) && f.src == 0 && f.off == 0 && (f.imm == 16 || f.imm == 32 || f.imm == 64);
        };
    }
    // JMP / JMP32 conditional jumps, K and X forms.
    for (int cls : {0x05, 0x06}) {
        for (int op : {0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0}) {
            t[cls | op] = [](const Fields& f) { return reg(f.dst) && f.src == 0; };
            t[cls | op | 0x08] = [](const Fields& f) { return reg(f.dst) && reg(f.src) && f.imm == 0; };
        }
    }
    t[0x05] = [](const Fields& f) { return f.dst == 0 && f.src == 0 && f.imm == 0; };  // ja (offset)
    t[0x06] = [](const Fields& f) { return f.dst == 0 && f.src == 0 && f.off == 0; };  // gotol (imm)
    // call: src 0 helper by id, 1 local (imm = pc offset), 2 helper by BTF id.
    t[0x85] = [](const Fields& f) { return f.dst == 0 && f.src <= 2 && (f.src == 2 || f.off == 0); };
    t[0x8d] = [](const Fields& f) { return reg(f.dst) && f.src == 0 && f.off == 0 && f.imm == 0; };  // callx (dst)
    t[0x95] = [](const Fields& f) { return f.dst == 0 && f.src == 0 && f.off == 0 && f.imm == 0; };  // exit
    // lddw: src 0..6 (imm64, map fd, map value, variable, code, map idx, map value idx).
    t[0x18] = [](const Fields& f) { return wreg(f.dst) && f.src <= 6 && f.off == 0; };
    // Legacy packet access: ABS (src 0) and IND (src register), W/H/B; dst and offset 0.
    for (int op : {0x20, 0x28, 0x30}) {
        t[op] = [](const Fields& f) { return f.dst == 0 && f.src == 0 && f.off == 0; };
    }
    for (int op : {0x40, 0x48, 0x50}) {
        t[op] = [](const Fields& f) { return f.dst == 0 && reg(f.src) && f.off == 0; };
    }
    // LDX (W H B DW) and sign-extending LDX (W H B).
    for (int op : {0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91}) {
        t[op] = [](const Fields& f) { return wreg(f.dst) && reg(f.src) && f.imm == 0; };
    }
    for (int op : {0x62, 0x6a, 0x72, 0x7a}) {  // ST imm
        t[op] = [](const Fields& f) { return reg(f.dst) && f.src == 0; };
    }
    for (int op : {0x63, 0x6b, 0x73, 0x7b}) {  // STX
        t[op] = [](const Fields& f) { return reg(f.dst) && reg(f.src) && f.imm == 0; };
    }
    // Atomics, W (0xc3) and DW (0xdb): add/or/and/xor with or without FETCH, xchg, cmpxchg.
    for (int op : {0xc3, 0xdb}) {
        t[op] = [](const Fields& f) {
            const bool fetch_into_src =
                f.imm == 0x01 || f.imm == 0x41 || f.imm == 0x51 || f.imm == 0xa1 || f.imm == 0xe1;
            const bool known =
                f.imm == 0x00 || f.imm == 0x40 || f.imm == 0x50 || f.imm == 0xa0 || f.imm == 0xf1 || fetch_into_src;
            return known && reg(f.dst) && reg(f.src) && !(fetch_into_src && f.src == 10);
        };
    }
    return t;
}

TEST(OpcodeTable, MatchesRfc9669TranscriptionForAll256OpcodeBytes) {
    const std::map<int, Rule> rfc = transcription();
    const unsigned dsts[] = {0, 1, 9, 10, 11, 15};
    const unsigned srcs[] = {0, 1, 2, 3, 6, 7, 10, 11};
    const int offs[] = {0, 1, 8, 16, 32, -4, 5};
    const int imms[] = {0, 1, 7, -1, 16, 32, 64, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1, 0x10};
    const RawInsn second{};  // a valid second lddw slot
    unsigned checked = 0;
    for (int opcode = 0; opcode < 256; ++opcode) {
        auto it = rfc.find(opcode);
        for (unsigned dst : dsts) {
            for (unsigned src : srcs) {
                for (int off : offs) {
                    for (int imm : imms) {
                        const RawInsn raw{static_cast<uint8_t>(opcode), static_cast<uint8_t>(dst),
                                          static_cast<uint8_t>(src), static_cast<int16_t>(off), imm};
                        const bool expected = it != rfc.end() && it->second(Fields{dst, src, off, imm});
                        const bool actual = decode_one(raw, &second, 0).has_value();
                        ASSERT_EQ(actual, expected) << "opcode 0x" << std::hex << opcode << std::dec << " dst=" << dst
                                                    << " src=" << src << " off=" << off << " imm=" << imm;
                        ++checked;
                    }
                }
            }
        }
    }
    EXPECT_EQ(checked, 256u * 6 * 8 * 7 * 16);
}

TEST(OpcodeTable, EveryOpcodeByteOfTheTranscriptionIsInTheTable) {
    const std::map<int, Rule> rfc = transcription();
    for (int opcode = 0; opcode < 256; ++opcode) {
        EXPECT_EQ(is_known_opcode(static_cast<uint8_t>(opcode)), rfc.count(opcode) == 1) << "opcode " << opcode;
    }
}

TEST(OpcodeTable, RowsCarryConsistentWidthsAndGroups) {
    for (const OpInfo& row : kOpTable) {
        const uint8_t cls = row.opcode & 0x07;
        if (cls == 0x04) {  // ALU: 32-bit operand, except byte swaps whose width is the swap
            EXPECT_TRUE(row.width == 4 || row.form == Form::Endian) << row.name;
        }
        if (cls == 0x06) {
            EXPECT_EQ(row.width, 4) << row.name;
        }
        if (row.form == Form::LoadMem || row.form == Form::StoreImm || row.form == Form::StoreReg) {
            const unsigned size_bits = row.opcode & 0x18;  // RFC 9669 5.1: W=0x00 H=0x08 B=0x10 DW=0x18
            const unsigned expect = size_bits == 0x00 ? 4 : size_bits == 0x08 ? 2 : size_bits == 0x10 ? 1 : 8;
            EXPECT_EQ(row.width, expect) << row.name;
        }
    }
    EXPECT_EQ(info(Op::Callx).group, Group::Callx);
    EXPECT_EQ(info(Op::LdAbsW).group, Group::Packet);
    EXPECT_EQ(info(Op::AtomicCmpxchg32).group, Group::Atomic32);
    EXPECT_EQ(info(Op::Sdiv64Reg).group, Group::Divmul64);
}

}  // namespace
}  // namespace bpfvm::vm
