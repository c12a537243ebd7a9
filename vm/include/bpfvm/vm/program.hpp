// Instructions and programs: the only place raw instruction bytes are read (the trust boundary).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "bpfvm/vm/expected.hpp"
#include "bpfvm/vm/opcodes.hpp"

namespace bpfvm::vm {

inline constexpr unsigned kNumRegisters = 11;       // r0..r10
inline constexpr unsigned kFramePointer = 10;       // r10, read-only
inline constexpr unsigned kStackFrameBytes = 512;   // per frame
inline constexpr unsigned kMaxCallFrames = 8;       // main program + 7 nested local calls
inline constexpr std::size_t kMaxSlots = 1u << 20;  // 1M instruction slots

// One 8-byte instruction slot as encoded (RFC 9669, section 3): fields, not yet checked.
struct RawInsn {
    uint8_t opcode = 0;
    uint8_t dst = 0;  // low nibble of byte 1 (little-endian encoding)
    uint8_t src = 0;  // high nibble of byte 1
    int16_t off = 0;
    int32_t imm = 0;

    friend bool operator==(const RawInsn&, const RawInsn&) = default;
};

RawInsn unpack(const uint8_t bytes[8]);
void pack(const RawInsn& insn, uint8_t bytes[8]);
uint64_t to_u64(const RawInsn& insn);  // the slot as a little-endian 64-bit number
RawInsn from_u64(uint64_t slot);

// Sets the field that selects `row` among the rows sharing its opcode byte (offset for sdiv,
// imm for atomics and byte swaps, src for lddw and calls) and the opcode itself.
RawInsn with_selector(RawInsn insn, const OpInfo& row);

// A checked instruction. `op` names its row in the opcode table; every field the row does not
// use is zero. For lddw, imm64() is the whole 64-bit immediate; otherwise it is imm
// sign-extended. (16 bytes: the passes over a program read less memory than with a 64-bit field.)
struct Instruction {
    Op op{};
    uint8_t dst = 0;
    uint8_t src = 0;
    int16_t off = 0;
    int32_t imm = 0;
    uint32_t imm_hi = 0;  // the high half of imm64()

    [[nodiscard]] uint64_t imm64() const { return uint64_t{imm_hi} << 32 | static_cast<uint32_t>(imm); }
    [[nodiscard]] const OpInfo& info() const { return vm::info(op); }
    [[nodiscard]] unsigned slots() const { return info().form == Form::LoadImm64 ? 2 : 1; }
};
static_assert(sizeof(Instruction) == 16);

// A validated program. `insns` is indexed by slot (pc); the second slot of an lddw repeats
// the lddw and has `tail[pc]` set; no jump or call lands there.
class Program {
public:
    // Decodes and validates little-endian bytecode (a multiple of 8 bytes).
    static Expected<Program> from_bytes(std::span<const uint8_t> bytes);
    static Expected<Program> from_raw(std::vector<RawInsn> raw);

    [[nodiscard]] std::size_t size() const { return insns_.size(); }  // in slots
    [[nodiscard]] const Instruction& operator[](std::size_t pc) const { return insns_[pc]; }
    [[nodiscard]] const std::vector<Instruction>& instructions() const { return insns_; }
    [[nodiscard]] const std::vector<RawInsn>& raw() const { return raw_; }
    [[nodiscard]] bool is_tail(std::size_t pc) const { return tail_[pc] != 0; }
    [[nodiscard]] const std::vector<uint8_t>& tails() const { return tail_; }  // per slot: is_tail
    // Entry pc of every function: 0, then each bpf-to-bpf call target, ascending.
    [[nodiscard]] const std::vector<uint32_t>& functions() const { return functions_; }
    // A local call or a function address (lddw src 4) names pc 0: the first function may run as
    // a callee too.
    [[nodiscard]] bool first_function_is_named() const { return first_function_named_; }
    [[nodiscard]] std::vector<uint8_t> bytes() const;

private:
    std::vector<RawInsn> raw_;
    std::vector<Instruction> insns_;
    std::vector<uint8_t> tail_;
    std::vector<uint32_t> functions_;
    bool first_function_named_ = false;
};

// Decodes one slot (and its successor, for lddw) against the table without the whole-program
// rules; used by Program and by tools that show single instructions. `next` may be null.
Expected<Instruction> decode_one(const RawInsn& insn, const RawInsn* next, std::size_t pc);

// True for forms with a pc-relative target (jumps and local calls).
constexpr bool has_target(Form form) {
    return form == Form::Jump || form == Form::Jump32 || form == Form::CondImm || form == Form::CondReg ||
           form == Form::CallLocal;
}

// Target pc of a jump or local call at `pc` (may be out of range for unvalidated input).
inline int64_t branch_target(const Instruction& insn, std::size_t pc) {
    const int64_t next = static_cast<int64_t>(pc) + 1;
    const Form form = insn.info().form;
    if (form == Form::Jump || form == Form::CondImm || form == Form::CondReg) {
        return next + insn.off;
    }
    if (form == Form::Jump32 || form == Form::CallLocal) {
        return next + insn.imm;
    }
    return -1;
}

}  // namespace bpfvm::vm
