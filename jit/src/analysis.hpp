// What the JIT knows about a program before lowering it (private to jit/, shared by the back
// ends): which registers are still read after each instruction, where control enters other than
// from the instruction before, how wide each register's value can be, and which neighbouring
// instructions lower together (the plan).
//
// Everything here is about bpfvm's semantics, not a verifier's: programs may be unverified, so
// the analyses assume nothing the checked interpreter does not enforce (r1-r5 keep their values
// across helper calls, a callee sees its caller's r0 and r6-r9, a function's exit may be read by
// a caller).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "bpfvm/vm/program.hpp"

namespace bpfvm::jit {

// A register's value fits in 8, 16 or 32 bits (zero-extended), or may use all 64.
enum class Width : uint8_t {
    W8,
    W16,
    W32,
    W64,
};

struct Facts {
    // Bit k set: rk (k < 10) may be read after the instruction at pc, on some path.
    std::vector<uint16_t> live_after;
    // ... and may be read from pc on (before the instruction at pc runs); slot n: none.
    std::vector<uint16_t> live_in;
    // Control enters pc other than by falling through from the instruction before it: kTarget (a
    // jump or call lands there), kEntry (a function starts there), or both; zero elsewhere.
    // kLoop (with kTarget): a backward jump lands there, the top of a loop as laid out.
    // Instructions lower together only when no boundary lies inside them.
    std::vector<uint8_t> boundary;
    static constexpr uint8_t kTarget = 1;
    static constexpr uint8_t kEntry = 2;
    static constexpr uint8_t kLoop = 4;
    // kMulti (with kTarget): more than one jump or call lands there (else exactly one does).
    static constexpr uint8_t kMulti = 8;
    // kCycle (with kLoop): control may come back to the loop top from it (a backward jump that
    // code reachable from the top takes), so the top runs more than once; without it the
    // backward jump is only layout (clang's blocks shared by several paths, say a common exit).
    // Taken as a cycle where that is not worked out (long or many loops).
    static constexpr uint8_t kCycle = 16;
    // The known width of each register before the instruction at pc: 3 bits per register, a
    // thermometer code (W8 = 000, W16 = 001, W32 = 011, W64 = 111; see width()).
    std::vector<uint64_t> widths;
    bool main_is_called = false;  // the first function is also a call or callback target
    std::size_t main_end = 0;     // the first pc past the first function
    // The pcs of the calls of any kind (helpers, callx, local calls, kernel functions) and legacy
    // packet loads, descending; calls_or_packet: there is one.
    std::vector<uint32_t> calls;
    bool calls_or_packet = false;
    // Per function (in Program::functions() order), bit k set: the function's own instructions
    // may write rk (what its calls write of r6-r9, they restore).
    std::vector<uint16_t> function_writes;
    // Per loop top (kLoop, with or without kCycle): (top, the last backward jump to it), in no
    // particular order.
    std::vector<std::pair<uint32_t, uint32_t>> loop_ends;
    // The pcs whose opcode may start one of the plan's patterns, descending (found by the first
    // liveness round, so that the plan visits only those, without a test per instruction).
    std::vector<uint32_t> plan_starts;

    [[nodiscard]] bool live(std::size_t pc, unsigned reg) const { return ((live_after[pc] >> reg) & 1) != 0; }
    [[nodiscard]] bool live_into(std::size_t pc, unsigned reg) const { return ((live_in[pc] >> reg) & 1) != 0; }
    [[nodiscard]] Width width(std::size_t pc, unsigned reg) const {
        const auto t = static_cast<unsigned>(widths[pc] >> (3 * reg));
        return static_cast<Width>((t & 1) + ((t >> 1) & 1) + ((t >> 2) & 1));
    }
};

// Fills `facts` for the program (reusing its vectors' memory).
void analyse(const vm::Program& program, Facts& facts);

// How an instruction is lowered. The fused forms stand for the instructions from pc up to and
// including pc + span - 1, which are `Covered` (no code of their own); none of those but the
// first is a boundary.
enum class Fused : uint8_t {
    Alone,       // lowered by itself
    Covered,     // part of an earlier instruction's fusion
    Nothing,     // changes nothing (an `and` or a 32-bit self-move of a value that already fits)
    Address,     // `rX = rY; rX += rZ|imm; memory op on [rX + off]` (span 3), or `rX += rZ|imm;
                 // memory op on [rX + off]` (span 2), rX dead afterwards or the load's
                 // destination: the memory op on [rY + rZ|imm + off]
    AddMove,     // `rX = rY; rX += rZ|imm` (same width): rX = rY + rZ|imm in one instruction
    ZeroExtend,  // `rX = rY; rX &= 0xff|0xffff`: rX = the low byte or half of rY
    Inverted,    // `if (c) goto pc + 2; goto T`: if (!c) goto T
    Select,      // `if (c) goto pc + 1 + k; <k = span - 1 instructions>` where those are `rX = imm`,
                 // `rX op= imm`, `rX = rY`, or `rX = rY; rX op= imm` (ALU immediates without
                 // division or multiplication): rX = value unless c, with a cmov instead of a branch;
                 // with disp = 1, `if (c) goto T; <those>; goto T` (one more instruction): the
                 // same, then goto T
    AddTo,       // `rA = rB` where an earlier `rB = rA; rB += imm` (AddMove, now Nothing) left
                 // rB = rA + imm, nothing in between touched rA or read rB, and rB is dead
                 // afterwards: rA += imm (an increment clang spreads over three instructions)
};

struct Step {
    Fused kind = Fused::Alone;
    uint8_t span = 1;
    // Address and AddMove: the operands. `index` is a register number, or -1 with the constant
    // in `disp` (for Address, disp also holds the memory op's offset).
    uint8_t base = 0;
    int8_t index = -1;
    int32_t disp = 0;
    // Conditional jumps (Alone or Inverted): the register compared in place of dst, when dst was
    // a copy of it made only for the compare (that move is then Nothing); kNoRegister if none.
    uint8_t compare = kNoRegister;
    static constexpr uint8_t kNoRegister = 0xff;
};

struct PlanOptions {
    bool fold_immediates = true;  // false with constant blinding: no chosen constant in the code
};

// Fills `steps`, one per pc (reusing the vector's memory).
void plan(const vm::Program& program, const Facts& facts, const PlanOptions& options, std::vector<Step>& steps);

}  // namespace bpfvm::jit
