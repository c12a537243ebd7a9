#include "bpfvm/vm/program.hpp"

#include <algorithm>
#include <cstring>

#include "strings.hpp"

namespace bpfvm::vm {

RawInsn unpack(const uint8_t b[8]) {
    RawInsn r;
    r.opcode = b[0];
    r.dst = b[1] & 0x0f;
    r.src = b[1] >> 4;
    r.off = static_cast<int16_t>(uint16_t(b[2]) | uint16_t(b[3]) << 8);
    r.imm = static_cast<int32_t>(uint32_t(b[4]) | uint32_t(b[5]) << 8 | uint32_t(b[6]) << 16 | uint32_t(b[7]) << 24);
    return r;
}

void pack(const RawInsn& r, uint8_t b[8]) {
    const auto off = static_cast<uint16_t>(r.off);
    const auto imm = static_cast<uint32_t>(r.imm);
    b[0] = r.opcode;
    b[1] = static_cast<uint8_t>((r.dst & 0x0f) | (r.src << 4));
    b[2] = static_cast<uint8_t>(off);
    b[3] = static_cast<uint8_t>(off >> 8);
    b[4] = static_cast<uint8_t>(imm);
    b[5] = static_cast<uint8_t>(imm >> 8);
    b[6] = static_cast<uint8_t>(imm >> 16);
    b[7] = static_cast<uint8_t>(imm >> 24);
}

uint64_t to_u64(const RawInsn& insn) {
    uint8_t b[8];
    pack(insn, b);
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) {
        v = (v << 8) | b[i];
    }
    return v;
}

RawInsn from_u64(uint64_t slot) {
    uint8_t b[8];
    for (int i = 0; i < 8; ++i) {
        b[i] = static_cast<uint8_t>(slot >> (8 * i));
    }
    return unpack(b);
}

RawInsn with_selector(RawInsn insn, const OpInfo& row) {
    insn.opcode = row.opcode;
    switch (row.match) {
        case Match::Off:
            insn.off = static_cast<int16_t>(row.match_value);
            break;
        case Match::Imm:
            insn.imm = row.match_value;
            break;
        case Match::Src:
            insn.src = static_cast<uint8_t>(row.match_value);
            break;
        case Match::None:
            break;
    }
    return insn;
}

namespace {

std::string at_pc(std::size_t pc) {
    return "pc " + std::to_string(pc);
}

// Names the legal values of the selecting field for an opcode byte, e.g. "0 (div32) or 1 (sdiv32)".
std::string legal_values(uint8_t opcode) {
    const OpcodeRange r = kOpcodeIndex[opcode];
    std::string out;
    for (unsigned i = r.first; i < unsigned(r.first) + r.count; ++i) {
        if (!out.empty()) {
            out += i + 1 == unsigned(r.first) + r.count ? " or " : ", ";
        }
        const OpInfo& row = kOpTable[i];
        out += row.form == Form::Atomic && row.match_value > 9 ? hex(static_cast<uint32_t>(row.match_value))
                                                               : std::to_string(row.match_value);
        out += " (" + std::string(row.mnemonic) + ")";
    }
    return out;
}

const char* field_name(Match m) {
    switch (m) {
        case Match::Off:
            return "offset";
        case Match::Imm:
            return "imm";
        case Match::Src:
            return "src";
        case Match::None:
            break;
    }
    return "opcode";
}

bool fetches_into_src(Sem sem) {
    return sem == Sem::AtomicFetchAdd || sem == Sem::AtomicFetchOr || sem == Sem::AtomicFetchAnd ||
           sem == Sem::AtomicFetchXor || sem == Sem::AtomicXchg;
}

}  // namespace

Expected<Instruction> decode_one(const RawInsn& raw, const RawInsn* next, std::size_t pc) {
    if (!is_known_opcode(raw.opcode)) {
        return make_error(at_pc(pc), "unknown opcode " + hex2(raw.opcode));
    }
    const std::optional<Op> op = find_op(raw.opcode, raw.src, raw.off, raw.imm);
    const OpInfo& first = kOpTable[kOpcodeIndex[raw.opcode].first];
    if (!op) {
        const int64_t actual = first.match == Match::Off ? raw.off : first.match == Match::Imm ? raw.imm : raw.src;
        return make_error(at_pc(pc), "opcode " + hex2(raw.opcode) + " with " + field_name(first.match) + " " +
                                         std::to_string(actual) + ": " + field_name(first.match) + " must be " +
                                         legal_values(raw.opcode));
    }
    const OpInfo& row = info(*op);
    const FormFields f = fields_of(row.form);
    const std::string name(row.mnemonic);

    if (raw.dst >= kNumRegisters) {
        return make_error(at_pc(pc), name + ": dst register r" + std::to_string(raw.dst) + " does not exist (r0-r10)");
    }
    if (raw.src >= kNumRegisters && row.match != Match::Src) {
        return make_error(at_pc(pc), name + ": src register r" + std::to_string(raw.src) + " does not exist (r0-r10)");
    }
    if (!f.uses_dst && raw.dst != 0) {
        return make_error(at_pc(pc), name + ": reserved dst field must be 0, is " + std::to_string(raw.dst));
    }
    if (!f.uses_src && row.match != Match::Src && raw.src != 0) {
        return make_error(at_pc(pc), name + ": reserved src field must be 0, is " + std::to_string(raw.src));
    }
    if (!f.uses_off && row.match != Match::Off && raw.off != 0) {
        return make_error(at_pc(pc), name + ": reserved offset field must be 0, is " + std::to_string(raw.off));
    }
    if (!f.uses_imm && row.match != Match::Imm && raw.imm != 0) {
        return make_error(at_pc(pc), name + ": reserved imm field must be 0, is " + std::to_string(raw.imm));
    }
    if (f.writes_dst && raw.dst == kFramePointer) {
        return make_error(at_pc(pc), name + ": r10 is read-only");
    }
    if (fetches_into_src(row.sem) && raw.src == kFramePointer) {
        return make_error(at_pc(pc), name + ": r10 is read-only (the fetched value would be written to it)");
    }

    Instruction insn;
    insn.op = *op;
    insn.dst = raw.dst;
    insn.src = raw.src;
    insn.off = raw.off;
    insn.imm = raw.imm;
    insn.imm_hi = raw.imm < 0 ? 0xffffffffu : 0;  // (imm64(): imm sign-extended)
    if (row.form == Form::LoadImm64) {
        if (next == nullptr) {
            return make_error(at_pc(pc), "lddw needs a second slot, but the program ends");
        }
        if (next->opcode != 0 || next->dst != 0 || next->src != 0 || next->off != 0) {
            return make_error(at_pc(pc + 1), "second slot of the lddw at pc " + std::to_string(pc) +
                                                 " must have opcode, registers and offset 0");
        }
        insn.imm_hi = static_cast<uint32_t>(next->imm);
    }
    return insn;
}

Expected<Program> Program::from_bytes(std::span<const uint8_t> bytes) {
    if (bytes.empty()) {
        return make_error("", "empty program");
    }
    if (bytes.size() % 8 != 0) {
        return make_error(
            "", "program is " + std::to_string(bytes.size()) + " bytes, not a multiple of the 8-byte instruction size");
    }
    if (bytes.size() / 8 > kMaxSlots) {
        return make_error("", "program has " + std::to_string(bytes.size() / 8) +
                                  " instructions, more than the limit of " + std::to_string(kMaxSlots));
    }
    std::vector<RawInsn> raw(bytes.size() / 8);
    for (std::size_t i = 0; i < raw.size(); ++i) {
        raw[i] = unpack(bytes.data() + 8 * i);
    }
    return from_raw(std::move(raw));
}

Expected<Program> Program::from_raw(std::vector<RawInsn> raw) {
    const std::size_t n = raw.size();
    if (n == 0) {
        return make_error("", "empty program");
    }
    if (n > kMaxSlots) {
        return make_error("", "program has " + std::to_string(n) + " instructions, more than the limit of " +
                                  std::to_string(kMaxSlots));
    }
    Program p;
    p.insns_.resize(n);
    p.tail_.assign(n, 0);

    // Pass 1: each instruction on its own.
    for (std::size_t pc = 0; pc < n; ++pc) {
        Expected<Instruction> insn = decode_one(raw[pc], pc + 1 < n ? &raw[pc + 1] : nullptr, pc);
        if (!insn) {
            return insn.error();
        }
        p.insns_[pc] = *insn;
        if (insn->slots() == 2) {
            p.insns_[pc + 1] = *insn;
            p.tail_[pc + 1] = 1;
            ++pc;
        }
    }

    // Pass 2: branch targets, and the set of functions.
    std::vector<uint32_t> functions{0};
    for (std::size_t pc = 0; pc < n; ++pc) {
        if (p.tail_[pc]) {
            continue;
        }
        const Instruction& insn = p.insns_[pc];
        const bool function_address = insn.op == Op::LddwCodeAddr;  // a callback's address
        if (!has_target(insn.info().form) && !function_address) {
            continue;
        }
        const int64_t target = function_address ? static_cast<int64_t>(pc) + 1 + insn.imm : branch_target(insn, pc);
        const char* what = insn.info().form == Form::CallLocal ? "call target"
                           : function_address                  ? "function address"
                                                               : "jump target";
        if (target < 0 || target >= static_cast<int64_t>(n)) {
            return make_error(at_pc(pc), std::string(what) + " pc " + std::to_string(target) +
                                             " is outside the program (pc 0.." + std::to_string(n - 1) + ")");
        }
        if (p.tail_[static_cast<std::size_t>(target)]) {
            return make_error(at_pc(pc), std::string(what) + " pc " + std::to_string(target) +
                                             " is the second slot of the lddw at pc " + std::to_string(target - 1));
        }
        if (insn.info().form == Form::CallLocal || function_address) {
            functions.push_back(static_cast<uint32_t>(target));
            p.first_function_named_ = p.first_function_named_ || target == 0;
        }
    }
    std::sort(functions.begin(), functions.end());
    functions.erase(std::unique(functions.begin(), functions.end()), functions.end());

    // Pass 3: control stays inside its function and never falls off its end.
    for (std::size_t f = 0; f < functions.size(); ++f) {
        const std::size_t begin = functions[f];
        const std::size_t end = f + 1 < functions.size() ? functions[f + 1] : n;
        for (std::size_t pc = begin; pc < end; ++pc) {
            if (p.tail_[pc]) {
                continue;
            }
            const Instruction& insn = p.insns_[pc];
            const Form form = insn.info().form;
            if (form == Form::Jump || form == Form::Jump32 || form == Form::CondImm || form == Form::CondReg) {
                const auto target = static_cast<std::size_t>(branch_target(insn, pc));
                if (target < begin || target >= end) {
                    return make_error(at_pc(pc), "jump target pc " + std::to_string(target) +
                                                     " is in another function (this one spans pc " +
                                                     std::to_string(begin) + ".." + std::to_string(end - 1) + ")");
                }
            }
            const bool falls_through = form != Form::Exit && form != Form::Jump && form != Form::Jump32;
            if (falls_through && pc + insn.slots() >= end) {
                return make_error(at_pc(pc),
                                  end == n ? "the program can fall off its end (last instruction is " +
                                                 std::string(insn.info().mnemonic) + ", not exit or ja)"
                                           : "control can fall through into the function at pc " + std::to_string(end));
            }
        }
    }

    p.raw_ = std::move(raw);
    p.functions_ = std::move(functions);
    return p;
}

std::vector<uint8_t> Program::bytes() const {
    std::vector<uint8_t> out(raw_.size() * 8);
    for (std::size_t i = 0; i < raw_.size(); ++i) {
        pack(raw_[i], out.data() + 8 * i);
    }
    return out;
}

std::string_view to_string(Group group) {
    switch (group) {
        case Group::Base32:
            return "base32";
        case Group::Base64:
            return "base64";
        case Group::Atomic32:
            return "atomic32";
        case Group::Atomic64:
            return "atomic64";
        case Group::Divmul32:
            return "divmul32";
        case Group::Divmul64:
            return "divmul64";
        case Group::Packet:
            return "packet";
        case Group::Callx:
            return "callx";
    }
    return "?";
}

}  // namespace bpfvm::vm
