// The eBPF instruction set as data: enums and the constexpr table derived from opcodes.def.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace bpfvm::vm {

// Which field, besides the opcode byte, selects a row.
enum class Match : uint8_t {
    None,
    Off,
    Imm,
    Src,
};

// Operand shape. It decides which fields an encoding uses; every other field must be zero.
enum class Form : uint8_t {
    AluImm,     // dst = dst op imm                  dst written; src = 0
    AluReg,     // dst = dst op src                  dst written; imm = 0
    AluUnary,   // dst = op dst                      dst written; src = 0, imm = 0
    Endian,     // dst = swap(dst), width in imm     dst written; src = 0
    LoadMem,    // dst = *(src + off)                dst written; imm = 0
    StoreImm,   // *(dst + off) = imm                src = 0
    StoreReg,   // *(dst + off) = src                imm = 0
    Atomic,     // atomic op on *(dst + off) with src, operation in imm
    LoadImm64,  // dst = imm64 (two slots), source kind in src
    LoadAbs,    // r0 = ntoh(*(packet + imm))        dst = 0, src = 0 (legacy, RFC 9669 5.5)
    LoadInd,    // r0 = ntoh(*(packet + src + imm))  dst = 0 (legacy)
    Jump,       // pc += off                         dst = 0, src = 0, imm = 0
    Jump32,     // pc += imm                         dst = 0, src = 0, off = 0
    CondImm,    // if (dst cmp imm) pc += off        src = 0
    CondReg,    // if (dst cmp src) pc += off        imm = 0
    Call,       // helper call by id in imm          dst = 0, off = 0
    CallLocal,  // bpf-to-bpf call, pc += imm        dst = 0, off = 0
    CallBtf,    // kernel function by BTF id in imm  dst = 0 (off: BTF object index)
    Callx,      // helper call by id held in dst     src = 0, off = 0, imm = 0 (clang 19 puts
                //                                   the register in dst)
    Exit,       // return r0                         all fields 0
};

// The operation, shared by encodings that differ only in width or operand kind.
enum class Sem : uint8_t {
    Add,
    Sub,
    Mul,
    Div,
    Sdiv,
    Or,
    And,
    Lsh,
    Rsh,
    Neg,
    Mod,
    Smod,
    Xor,
    Mov,
    Movsx,  // source width in bits = off
    Arsh,
    Le,     // dst = htole(dst) of imm bits
    Be,     // dst = htobe(dst) of imm bits
    Bswap,  // dst = bswap(dst) of imm bits, unconditionally
    Lddw,
    LdAbs,
    LdInd,
    Ldx,
    Ldxs,  // sign-extending load
    St,
    Stx,
    AtomicAdd,
    AtomicFetchAdd,
    AtomicOr,
    AtomicFetchOr,
    AtomicAnd,
    AtomicFetchAnd,
    AtomicXor,
    AtomicFetchXor,
    AtomicXchg,
    AtomicCmpxchg,
    Ja,
    Jeq,
    Jgt,
    Jge,
    Jset,
    Jne,
    Jsgt,
    Jsge,
    Jlt,
    Jle,
    Jslt,
    Jsle,
    Call,
    CallLocal,
    CallBtf,
    Callx,
    Exit,
};

// Conformance groups (RFC 9669, section 2.2), plus callx.
enum class Group : uint8_t {
    Base32,
    Base64,
    Atomic32,
    Atomic64,
    Divmul32,
    Divmul64,
    Packet,
    Callx,
};

// One enumerator per legal encoding, in table order.
enum class Op : uint8_t {
#define X(NAME, OPCODE, MATCH, MVAL, MNEMONIC, FORM, SEM, WIDTH, GROUP, ISA) NAME,
#include "bpfvm/vm/opcodes.def"
#undef X
};

struct OpInfo {
    Op op;
    std::string_view name;  // enumerator name, for messages and tests
    uint8_t opcode;
    Match match;
    int32_t match_value;
    std::string_view mnemonic;
    Form form;
    Sem sem;
    uint8_t width;
    Group group;
    uint8_t isa;
};

inline constexpr std::array kOpTable = {
#define X(NAME, OPCODE, MATCH, MVAL, MNEMONIC, FORM, SEM, WIDTH, GROUP, ISA) \
    OpInfo{Op::NAME, #NAME, OPCODE, Match::MATCH, MVAL, MNEMONIC, Form::FORM, Sem::SEM, WIDTH, Group::GROUP, ISA},
#include "bpfvm/vm/opcodes.def"
#undef X
};

inline constexpr std::size_t kOpCount = kOpTable.size();

constexpr const OpInfo& info(Op op) {
    return kOpTable[static_cast<std::size_t>(op)];
}

namespace detail {
constexpr bool table_is_well_formed() {
    for (std::size_t i = 0; i < kOpCount; ++i) {
        const OpInfo& row = kOpTable[i];
        if (static_cast<std::size_t>(row.op) != i) {
            return false;
        }
        if (row.width != 1 && row.width != 2 && row.width != 4 && row.width != 8) {
            return false;
        }
        if (row.match == Match::None && row.match_value != 0) {
            return false;
        }
        if (i == 0) {
            continue;
        }
        const OpInfo& prev = kOpTable[i - 1];
        if (prev.opcode > row.opcode) {
            return false;  // rows are sorted by opcode byte
        }
        if (prev.opcode == row.opcode) {
            // Rows sharing an opcode byte must be told apart by the same field, in increasing order.
            if (prev.match == Match::None || prev.match != row.match || prev.match_value >= row.match_value) {
                return false;
            }
            if (prev.form == Form::LoadImm64 && row.form != Form::LoadImm64) {
                return false;
            }
        }
    }
    return true;
}
}  // namespace detail

static_assert(detail::table_is_well_formed(), "opcodes.def: rows must be sorted, unique and consistent");
static_assert(kOpCount < 256, "Op is a uint8_t");

// Index of the first row for each opcode byte and the number of rows, built at compile time.
struct OpcodeRange {
    uint8_t first;
    uint8_t count;
};

inline constexpr std::array<OpcodeRange, 256> kOpcodeIndex = [] {
    std::array<OpcodeRange, 256> index{};
    for (std::size_t i = 0; i < kOpCount; ++i) {
        OpcodeRange& r = index[kOpTable[i].opcode];
        if (r.count == 0) {
            r.first = static_cast<uint8_t>(i);
        }
        ++r.count;
    }
    return index;
}();

// True if some encoding uses this opcode byte.
constexpr bool is_known_opcode(uint8_t opcode) {
    return kOpcodeIndex[opcode].count != 0;
}

// The row for an opcode byte and the value of its selecting field, if the pair is legal.
constexpr std::optional<Op> find_op(uint8_t opcode, uint8_t src, int16_t off, int32_t imm) {
    const OpcodeRange r = kOpcodeIndex[opcode];
    for (unsigned i = r.first; i < unsigned(r.first) + r.count; ++i) {
        const OpInfo& row = kOpTable[i];
        switch (row.match) {
            case Match::None:
                return row.op;
            case Match::Off:
                if (off == row.match_value) {
                    return row.op;
                }
                break;
            case Match::Imm:
                if (imm == row.match_value) {
                    return row.op;
                }
                break;
            case Match::Src:
                if (src == row.match_value) {
                    return row.op;
                }
                break;
        }
    }
    return std::nullopt;
}

// Field usage derived from the form: what validation enforces and what the tools print.
struct FormFields {
    bool uses_dst;    // dst names a register (read or written)
    bool writes_dst;  // dst is written (so it may not be r10)
    bool uses_src;    // src names a register
    bool uses_off;    // off is a free operand (memory offset or jump offset)
    bool uses_imm;    // imm is a free operand
};

constexpr FormFields fields_of(Form form) {
    switch (form) {
        case Form::AluImm:
            return {true, true, false, false, true};
        case Form::AluReg:
            return {true, true, true, false, false};
        case Form::AluUnary:
            return {true, true, false, false, false};
        case Form::Endian:
            return {true, true, false, false, false};
        case Form::LoadMem:
            return {true, true, true, true, false};
        case Form::StoreImm:
            return {true, false, false, true, true};
        case Form::StoreReg:
            return {true, false, true, true, false};
        case Form::Atomic:
            return {true, false, true, true, false};
        case Form::LoadImm64:
            return {true, true, false, false, true};
        case Form::LoadAbs:
            return {false, false, false, false, true};
        case Form::LoadInd:
            return {false, false, true, false, true};
        case Form::Jump:
            return {false, false, false, true, false};
        case Form::Jump32:
            return {false, false, false, false, true};
        case Form::CondImm:
            return {true, false, false, true, true};
        case Form::CondReg:
            return {true, false, true, true, false};
        case Form::Call:
            return {false, false, false, false, true};
        case Form::CallLocal:
            return {false, false, false, false, true};
        case Form::CallBtf:
            return {false, false, false, true, true};
        case Form::Callx:
            return {true, false, false, false, false};
        case Form::Exit:
            return {false, false, false, false, false};
    }
    return {};
}

std::string_view to_string(Group group);

}  // namespace bpfvm::vm
